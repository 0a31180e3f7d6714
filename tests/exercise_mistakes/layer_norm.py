"""Plausible wrong solutions of exercise 04 (layer_norm): (what, text in the solution, replacement, diagnosis)."""

MISTAKES = [
    ("unbiased variance", "var = (centred * centred).mean(axis=-1, keepdims=True)",
     "var = x.var(axis=-1, ddof=1, keepdims=True)", "unbiased variance"),
    ("eps outside the square root", "self.rstd = 1.0 / np.sqrt(var + eps)", "self.rstd = 1.0 / (np.sqrt(var) + eps)",
     "inside the square root"),
    ("one-pass variance", "var = (centred * centred).mean(axis=-1, keepdims=True)",
     "var = (x * x).mean(axis=-1, keepdims=True) - mu * mu", "cancels catastrophically"),
    ("no bias", "return self.xhat * weight + bias", "return self.xhat * weight", "forgot the bias"),
    ("mean and variance treated as constants", "dx = self.rstd * (dxhat - dxhat.mean(axis=-1, keepdims=True)\n"
     "                          - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))", "dx = self.rstd * dxhat",
     "two mean terms"),
    ("variance term missing", "\n                          - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))", ")",
     "variance's term"),
    ("dweight not summed", "return dx, (grad * xhat).sum(axis=rows), grad.sum(axis=rows)",
     "return dx, grad * xhat, grad.sum(axis=rows)", "every axis but the last"),
    ("dweight summed over axis 0 only", "return dx, (grad * xhat).sum(axis=rows), grad.sum(axis=rows)",
     "return dx, (grad * xhat).sum(axis=0), grad.sum(axis=rows)", "not only axis 0"),
    ("gain forgotten in dx", "dxhat = grad * self.weight", "dxhat = grad", "dxhat = grad * weight"),
    ("float64 constant", "self.rstd = 1.0 / np.sqrt(var + eps)", "self.rstd = np.float64(1.0) / np.sqrt(var + eps)",
     "dtype float64"),
]
