"""Top-k filtering: sample only among the k most likely tokens.

Fan, Lewis & Dauphin, "Hierarchical Neural Story Generation" (2018): the long tail of a softmax holds many tokens
that are each unlikely but together likely enough to derail a sample every few words; cutting to the k largest
logits removes that tail. The cut is made on the value of the k-th largest logit, so every token tied with it is
kept too (the result can hold more than k finite entries, never fewer). Same semantics as transformers'
TopKLogitsWarper, including k = max(k, min_tokens_to_keep) and k > vocab keeping everything.
"""

from __future__ import annotations

import numpy as np

from ._checks import as_logits, check_positive_int


def top_k_filter(logits, k: int, min_tokens_to_keep: int = 1) -> np.ndarray:
    """Return a copy of `logits` (..., vocab) with every entry below the k-th largest of its row set to -inf."""
    k = check_positive_int(k, "k", "top_k_filter")
    min_tokens_to_keep = check_positive_int(min_tokens_to_keep, "min_tokens_to_keep", "top_k_filter")
    x = as_logits(logits, "top_k_filter")
    vocab = x.shape[-1]
    k = min(max(k, min_tokens_to_keep), vocab)
    # np.partition places the k-th largest at index vocab - k in O(vocab), with no full sort.
    kth_largest = np.partition(x, vocab - k, axis=-1)[..., vocab - k, None]
    out = x.copy()
    out[x < kth_largest] = -np.inf
    return out
