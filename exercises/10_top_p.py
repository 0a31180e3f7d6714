"""Exercise 10: top-p (nucleus) filtering of next-token logits (Holtzman et al. 2020).

Where it runs: when a trained model writes text (python train.py prints samples; samplers/generate.py), the logits
of the next token are filtered before one token is drawn. Top-p keeps the smallest set of most likely tokens whose
probability adds up to at least p and sets every other logit to -inf, so that a token the model finds absurd is
never drawn; a confident row keeps a handful of tokens, a flat one keeps many.

Rule (transformers' TopPLogitsWarper, which the library follows), per row of the last axis:

    probs  = softmax(logits)                           stable: subtract the row maximum first
    order  = np.argsort(logits, axis=-1, kind="stable")    ascending, least likely first
    cum    = cumulative sum of probs in that order
    remove the tokens whose cum <= 1 - p               the first token past 1 - p, and all above it, stay
    the most likely token always stays                 (so p = 0 keeps exactly one token)

Task: write top_p_filter(logits, p) -> a NEW array of logits's shape, the removed tokens -inf and the kept ones
unchanged. logits is (V,) or (..., V), float; 0 <= p <= 1. Do not modify `logits` (the caller reuses it).
`np.put_along_axis` (or indexing with the order) takes the sorted decision back to vocabulary order.

The grader compares with the library's samplers.top_p_filter (samplers/top_p.py) on one row, a batch (2, 3, 10),
p = 0.9, 0.5, 1.0 (nothing removed) and 0 (one token left), a peaked row, a flat row, tied logits, and logits near
1000 (where a softmax without the max subtraction gives nan); and that your input is left as it was. (Not plugged
into train.py: sampling does not train.)

    python -m exercises check top_p        python -m exercises hint top_p
"""

import numpy as np  # noqa: F401


def top_p_filter(logits: np.ndarray, p: float) -> np.ndarray:
    """logits (..., V) -> a copy with every token outside each row's nucleus of mass p set to -inf."""
    raise NotImplementedError  # TODO
