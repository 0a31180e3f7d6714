"""Argument checks shared by the logits processors.

Every processor accepts logits of shape (..., vocab) and returns a new array of the same dtype. These helpers turn
the inputs into arrays once and reject bad arguments with messages that name the function and the value, so a mistake
shows up where it was made rather than as a NaN three steps later.
"""

from __future__ import annotations

import numbers

import numpy as np


def as_logits(logits, where: str) -> np.ndarray:
    """Return `logits` as a floating NumPy array of shape (..., vocab), without copying when it already is one.

    Integer input (e.g. `np.arange(10)`) becomes float64: filtered entries are set to -inf, which integers cannot hold.
    """
    x = np.asarray(logits)
    if not np.issubdtype(x.dtype, np.floating):
        if not (np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_):
            raise TypeError(f"{where}: logits must be a real-valued array, got dtype {x.dtype}")
        x = x.astype(np.float64)
    if x.ndim == 0 or x.shape[-1] == 0:
        raise ValueError(f"{where}: logits must have shape (..., vocab) with vocab >= 1, got shape {x.shape}")
    return x


def check_probability(p, name: str, where: str) -> float:
    """A probability threshold in [0, 1] (NaN and booleans are refused)."""
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not (0.0 <= p <= 1.0):
        raise ValueError(f"{where}: {name} must be a number in [0, 1], got {p!r}")
    return float(p)


def check_positive_int(n, name: str, where: str) -> int:
    """A count >= 1; floats such as 2.0 are refused so that a typo (top_k=0.9 meant as top_p) is not rounded away."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"{where}: {name} must be an integer >= 1, got {n!r}")
    return int(n)
