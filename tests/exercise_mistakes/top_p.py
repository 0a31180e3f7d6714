"""Plausible wrong solutions of exercise 10 (top_p): (what, text in the solution, replacement, diagnosis)."""

MISTAKES = [
    ("no max subtraction", "e = np.exp(logits - logits.max(axis=-1, keepdims=True))", "e = np.exp(logits)",
     "maximum"),
    ("the crossing token dropped", "remove_sorted = cum <= 1.0 - p",
     "remove_sorted = 1.0 - cum + np.take_along_axis(probs, order, axis=-1) > p", "crosses"),
    ("most likely token not kept", "    remove_sorted[..., -1] = False  # the most likely token stays\n", "",
     "most likely token"),
    ("filtering in place", "    out = logits.copy()\n", "    out = logits\n", "in place"),
    ("probabilities returned", "    out = logits.copy()\n", "    out = probs.copy()\n", "logits"),
    ("decision not taken back to vocabulary order", "np.put_along_axis(remove, order, remove_sorted, axis=-1)",
     "remove[...] = remove_sorted", "vocabulary order"),
]
