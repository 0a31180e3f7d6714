"""Top-p (nucleus) filtering: sample only from the smallest set of most likely tokens holding probability p.

Holtzman, Buys, Du, Forbes & Choi, "The Curious Case of Neural Text Degeneration" (ICLR 2020). Where top-k keeps a
fixed number of tokens, the nucleus adapts: a confident distribution keeps a handful, a flat one keeps many.

Semantics of transformers' TopPLogitsWarper, which the reference tests check:
- sort the logits in ascending order with a stable sort, so tied tokens keep their index order;
- walk up the cumulative probability and remove every token while it is <= 1 - p. The first token that pushes the
  sum above 1 - p (the one that makes the kept mass reach p) and everything more likely stays;
- the min_tokens_to_keep most likely tokens always stay, so p = 0 keeps exactly those.
Among tied tokens the earlier indices come first in ascending order and so are dropped first.

Probabilities are computed in float64 (see softmax.py). transformers works in the logits' dtype, so the two can
disagree only when a cumulative sum lands within float32 rounding of 1 - p, or, at p = 1, on tokens whose float32
probability underflows to 0 (transformers drops those, float64 keeps them; they could never be drawn either way).
"""

from __future__ import annotations

import numpy as np

from ._checks import as_logits, check_positive_int, check_probability
from .softmax import softmax


def top_p_filter(logits, p: float, min_tokens_to_keep: int = 1) -> np.ndarray:
    """Return a copy of `logits` (..., vocab) with the tokens outside each row's nucleus of mass p set to -inf."""
    p = check_probability(p, "p", "top_p_filter")
    min_tokens_to_keep = check_positive_int(min_tokens_to_keep, "min_tokens_to_keep", "top_p_filter")
    x = as_logits(logits, "top_p_filter")

    order = np.argsort(x, axis=-1, kind="stable")  # ascending: least likely first
    sorted_probs = np.take_along_axis(softmax(x), order, axis=-1)
    cumulative = np.cumsum(sorted_probs, axis=-1)
    remove_sorted = cumulative <= 1.0 - p
    remove_sorted[..., max(x.shape[-1] - min_tokens_to_keep, 0) :] = False

    remove = np.empty_like(remove_sorted)
    np.put_along_axis(remove, order, remove_sorted, axis=-1)  # back from sorted to vocabulary order
    out = x.copy()
    out[remove] = -np.inf
    return out
