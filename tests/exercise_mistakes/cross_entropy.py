"""Plausible wrong solutions of exercise 07 (cross_entropy): (what, text in the solution, replacement, diagnosis)."""

MISTAKES = [
    ("no max subtraction", "shifted = z - z.max(axis=-1, keepdims=True)", "shifted = z", "subtract the row maximum"),
    ("log of softmax without the log-sum-exp", "return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))",
     "return np.log(np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True))", "subtract the row maximum"),
    ("sum instead of mean", "return np.asarray(-self.logp[np.arange(N), t].sum() / N, dtype=z.dtype)",
     "return np.asarray(-self.logp[np.arange(N), t].sum(), dtype=z.dtype)", "mean over the N rows"),
    ("gradient not divided by N", "return dz * (grad / N), None", "return dz * grad, None", "divide the gradient by N"),
    ("onehot not subtracted", "dz[np.arange(N), self.t] -= 1.0  # p - onehot", "pass", "subtract 1 at the target"),
    ("upstream gradient ignored", "return dz * (grad / N), None", "return dz / N, None", "chain rule"),
    ("sign error", "dz[np.arange(N), self.t] -= 1.0  # p - onehot", "dz = -dz\n        dz[np.arange(N), self.t] += 1.0",
     "sign is flipped"),
]
