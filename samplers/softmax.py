"""Numerically stable softmax in float64, the probabilities every filter and the sampler agree on.

    softmax(x)_i = exp(x_i - max_j x_j) / sum_k exp(x_k - max_j x_j)

Subtracting the row maximum changes nothing mathematically (it cancels between numerator and denominator) but keeps
every exponent <= 0, so exp never overflows and the largest term is exactly 1. The arithmetic is done in float64 even
for float32 logits: a 50,257-way distribution has many probabilities far below float32's resolution near 1, and
top-p's cumulative sums and the sampler's inverse CDF are sensitive to exactly those.

-inf logits get probability exactly 0. A row with no finite maximum (all -inf, or a +inf/NaN entry) has no
distribution; its probabilities are NaN and `sample` refuses such rows.
"""

from __future__ import annotations

import numpy as np


def softmax(logits, axis: int = -1) -> np.ndarray:
    """Probabilities along `axis` as a new float64 array; the input is never modified."""
    x = np.asarray(logits, dtype=np.float64)
    shift = np.max(x, axis=axis, keepdims=True)
    # inf - inf and 0 / 0 in degenerate rows are expected to give NaN (see the module docstring), quietly.
    with np.errstate(invalid="ignore", divide="ignore"):
        e = np.exp(x - shift)
        return e / np.sum(e, axis=axis, keepdims=True)
