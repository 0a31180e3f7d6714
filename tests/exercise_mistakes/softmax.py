"""Plausible wrong solutions of exercise 08 (softmax): (what, text in the solution, replacement, diagnosis)."""

FORWARD = "e = np.exp(x - x.max(axis=axis, keepdims=True))  # the largest exponent of each row is exp(0)"
BACKWARD = "return y * (grad - (grad * y).sum(axis=self.axis, keepdims=True))"

MISTAKES = [
    ("no max subtraction", FORWARD, "e = np.exp(x)", "subtract the max of each row"),
    ("one max for the whole array", FORWARD, "e = np.exp(x - x.max())", "each row's own max"),
    ("the last axis whatever axis says", FORWARD, "e = np.exp(x - x.max(axis=-1, keepdims=True))\n        axis = -1",
     "along `axis`"),
    ("max without keepdims", FORWARD, "e = np.exp(x - x.max(axis=axis))", "without keepdims=True"),
    ("diagonal of the Jacobian only", BACKWARD, "return grad * y * (1 - y)", "only the diagonal"),
    ("sum of g instead of g * y", BACKWARD, "return y * (grad - grad.sum(axis=self.axis, keepdims=True))",
     "the sum is of g * y"),
    ("sum over every axis", BACKWARD, "return y * (grad - (grad * y).sum())", "along the axis only"),
    ("sign error", BACKWARD, "return y * ((grad * y).sum(axis=self.axis, keepdims=True) - grad)", "sign is flipped"),
    ("float64 constant", "self.y = e / e.sum(axis=axis, keepdims=True)",
     "self.y = e * np.float64(1.0) / e.sum(axis=axis, keepdims=True)", "dtype float64"),
]
