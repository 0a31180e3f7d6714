"""Exercise 10, reference solution: top-p (nucleus) filtering of next-token logits."""

import numpy as np


def top_p_filter(logits: np.ndarray, p: float) -> np.ndarray:
    """logits (..., V) -> a copy with every token outside each row's nucleus of mass p set to -inf."""
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probs = e / e.sum(axis=-1, keepdims=True)  # (..., V)
    order = np.argsort(logits, axis=-1, kind="stable")  # ascending
    cum = np.cumsum(np.take_along_axis(probs, order, axis=-1), axis=-1)
    remove_sorted = cum <= 1.0 - p
    remove_sorted[..., -1] = False  # the most likely token stays
    remove = np.empty_like(remove_sorted)
    np.put_along_axis(remove, order, remove_sorted, axis=-1)  # back to vocabulary order
    out = logits.copy()
    out[remove] = -np.inf
    return out
