"""Plausible wrong solutions of exercise 06 (gelu): (what, text in the solution, replacement, diagnosis)."""

DX = "return grad * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du)"

MISTAKES = [
    ("no 0.5", "return 0.5 * x * (1.0 + self.t)", "return x * (1.0 + self.t)", "factor 0.5"),
    ("x^2 in u", "C * (x + A * x * x * x)", "C * (x + A * x * x)", "not x^2"),
    ("product rule's second term missing", DX, "return grad * 0.5 * (1.0 + t)", "second term"),
    ("the 3 of x^3's derivative missing", "du = C * (1.0 + 3.0 * A * x * x)", "du = C * (1.0 + A * x * x)",
     "the 3"),
    ("tanh' without the square", "(1.0 - t * t)", "(1.0 - t)", "tanh(u)^2"),
    ("no chain rule", DX, "return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du + 0 * grad", "chain rule"),
    ("float64 constant", "C = math.sqrt(2.0 / math.pi)", "C = np.sqrt(np.float64(2.0) / math.pi)", "dtype float64"),
]
