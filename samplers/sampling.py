"""From logits to token ids: greedy decoding and sampling through the processors.

`sample` runs the processors in the order transformers' `generate` uses them (repetition penalty, temperature, top-k,
top-p, min-p), turns the result into probabilities with a float64 softmax and draws one token per row by inverse
transform sampling: with u ~ Uniform[0, 1) and the cumulative sums c_i = p_0 + ... + p_i, the token is the first i
with u < c_i, which happens with probability c_i - c_{i-1} = p_i. A filtered token has p_i = 0, an empty interval,
and can never be drawn. One `rng.random` call per step makes the draw reproducible from the generator's seed.

Temperature 0 raises (pointing to `greedy`) instead of silently meaning argmax: greedy decoding is a different
decoding strategy, and asking for it explicitly keeps `sample` honest about being random.
"""

from __future__ import annotations

import numpy as np

from ._checks import as_logits
from .min_p import min_p_filter
from .repetition import apply_repetition_penalty
from .softmax import softmax
from .temperature import apply_temperature
from .top_k import top_k_filter
from .top_p import top_p_filter


def greedy(logits) -> np.ndarray:
    """The most likely token of each row: int64 ids of shape logits.shape[:-1] (the first index among ties)."""
    x = as_logits(logits, "greedy")
    return np.argmax(x, axis=-1).astype(np.int64)[()]  # [()] gives a NumPy scalar for 1-D logits


def process_logits(
    logits,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    repetition_penalty: float | None = None,
    prev_ids=None,
) -> np.ndarray:
    """Apply the processors `sample` uses, in its order, and return the processed logits (a new array).

    None turns a processor off. This is the distribution `sample` draws from, exposed so that it can be inspected,
    printed, or compared with another implementation.
    """
    x = as_logits(logits, "sample")
    if repetition_penalty is not None:
        if prev_ids is None:
            raise ValueError("sample: repetition_penalty needs prev_ids, the ids generated so far")
        x = apply_repetition_penalty(x, prev_ids, repetition_penalty)
    x = apply_temperature(x, temperature)
    if top_k is not None:
        x = top_k_filter(x, top_k)
    if top_p is not None:
        x = top_p_filter(x, top_p)
    if min_p is not None:
        x = min_p_filter(x, min_p)
    return x


def sample(
    logits,
    rng: np.random.Generator,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    repetition_penalty: float | None = None,
    prev_ids=None,
) -> np.ndarray:
    """Draw one token id per row of `logits` (..., vocab): int64 ids of shape logits.shape[:-1].

    temperature must be > 0 (use `greedy` for argmax decoding); top_k, top_p, min_p and repetition_penalty are off
    when None. prev_ids, used only by the repetition penalty, is (T,) for 1-D logits and (B, T) or a list of B
    sequences for (B, vocab) logits.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"sample: rng must be a numpy.random.Generator, e.g. np.random.default_rng(0); got {rng!r}")
    x = process_logits(logits, temperature, top_k, top_p, min_p, repetition_penalty, prev_ids)
    rows = x.reshape(-1, x.shape[-1])  # (N, V)
    row_max = np.max(rows, axis=-1)
    if np.isnan(rows).any() or not np.all(np.isfinite(row_max)):
        bad = int(np.flatnonzero(np.isnan(rows).any(axis=-1) | ~np.isfinite(row_max))[0])
        raise ValueError(
            f"sample: row {bad} of the logits has no probability distribution "
            "(a NaN or +inf logit, or every token set to -inf)"
        )

    probs = softmax(rows)  # (N, V), float64
    cdf = np.cumsum(probs, axis=-1)
    # Scaling u by the last cumulative sum instead of assuming it is exactly 1 keeps rounding from reaching past it.
    u = rng.random(rows.shape[0]) * cdf[:, -1]
    ids = np.sum(cdf <= u[:, None], axis=-1)  # per row: np.searchsorted(cdf, u, side="right")
    # u * c_last can still round up to c_last itself; the last token with nonzero probability is then the right one.
    last_possible = rows.shape[-1] - 1 - np.argmax(probs[:, ::-1] > 0, axis=-1)
    ids = np.minimum(ids, last_possible)
    return ids.astype(np.int64).reshape(x.shape[:-1])[()]
