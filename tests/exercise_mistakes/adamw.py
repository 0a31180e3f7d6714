"""Plausible wrong solutions of exercise 08 (adamw): (what, text in the solution, replacement, diagnosis)."""

MISTAKES = [
    ("L2 penalty instead of decoupled decay", "    p *= 1.0 - lr * wd\n", "    g = g + wd * p\n", "decoupled"),
    ("no bias correction of m", "step_size = lr / (1.0 - beta1 ** t)", "step_size = lr", "bias correction"),
    ("no bias correction of v", "denom = np.sqrt(v) / math.sqrt(1.0 - beta2 ** t) + eps", "denom = np.sqrt(v) + eps",
     "bias correction"),
    ("eps inside the square root", "denom = np.sqrt(v) / math.sqrt(1.0 - beta2 ** t) + eps",
     "denom = np.sqrt(v / (1.0 - beta2 ** t) + eps)", "eps"),
    ("not in place", "    p -= step_size * m / denom\n", "    p = p - step_size * m / denom\n", "in place"),
    ("v from g, not g squared", "v += (1.0 - beta2) * g * g", "v += (1.0 - beta2) * g", "g * g"),
    ("sign error", "p -= step_size * m / denom", "p += step_size * m / denom", "against the gradient"),
]
