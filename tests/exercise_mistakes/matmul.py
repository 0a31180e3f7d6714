"""Plausible wrong solutions of exercise 05 (matmul): (what, text in the solution, replacement, diagnosis)."""

RETURN = "return unbroadcast(da, a.shape), unbroadcast(db, b.shape)"

MISTAKES = [
    ("no unbroadcast of the shared weight", RETURN, "return unbroadcast(da, a.shape), db", "unbroadcast(db, b.shape)"),
    ("batch averaged", RETURN, "return unbroadcast(da, a.shape), db.mean(axis=tuple(range(db.ndim - b.ndim)))",
     "averaged"),
    ("b.T on a batch", "np.matmul(grad, b.swapaxes(-1, -2))", "np.matmul(grad, b.T)", "raised ValueError"),
    ("a.T on a batch", "np.matmul(a.swapaxes(-1, -2), grad)", "np.matmul(a.T, grad)", "raised ValueError"),
    ("dB transposed", "db = np.matmul(a.swapaxes(-1, -2), grad)",
     "db = np.matmul(grad.swapaxes(-1, -2), a)", "its transpose"),
    ("sign error", "da = np.matmul(grad, b.swapaxes(-1, -2))", "da = -np.matmul(grad, b.swapaxes(-1, -2))",
     "sign is flipped"),
]
