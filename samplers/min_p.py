"""Min-p filtering: drop tokens less likely than a fraction p of the most likely token.

Nguyen, Baker, Neo, Roush, Kirsch & Shwartz-Ziv, "Turning Up the Heat: Min-p Sampling for Creative and Coherent LLM
Outputs" (2024). The threshold p * max_i p_i scales with the model's confidence: a peaked distribution keeps few
tokens, a flat one keeps many, and unlike top-p the rule looks at each token on its own rather than at a running sum.

Same semantics as transformers' MinPLogitsWarper: a token is removed when its probability is strictly below
p * (largest probability), so p = 0 keeps everything and p = 1 keeps the tokens tied for the maximum; the
min_tokens_to_keep most likely tokens always stay. Where transformers picks those among ties with torch.topk, this
keeps every token tied with the min_tokens_to_keep-th largest probability, as top_k_filter does.
"""

from __future__ import annotations

import numpy as np

from ._checks import as_logits, check_positive_int, check_probability
from .softmax import softmax


def min_p_filter(logits, p: float, min_tokens_to_keep: int = 1) -> np.ndarray:
    """Return a copy of `logits` (..., vocab) with tokens of probability < p * max probability set to -inf."""
    p = check_probability(p, "p", "min_p_filter")
    min_tokens_to_keep = check_positive_int(min_tokens_to_keep, "min_tokens_to_keep", "min_p_filter")
    x = as_logits(logits, "min_p_filter")

    probs = softmax(x)
    remove = probs < p * np.max(probs, axis=-1, keepdims=True)
    if min_tokens_to_keep > 1:
        vocab = x.shape[-1]
        k = min(min_tokens_to_keep, vocab)
        kth_largest = np.partition(probs, vocab - k, axis=-1)[..., vocab - k, None]
        remove &= probs < kth_largest
    out = x.copy()
    out[remove] = -np.inf
    return out
