"""Grader of exercise 10: top_p_filter against samplers/top_p.py."""

from __future__ import annotations

import numpy as np

from samplers import top_p_filter

from ..grading.helpers import Failure, as_array, case, compare, diagnose, random

TOPIC = "top-p (nucleus) filtering of next-token logits"
LIBRARY = "samplers/top_p.py (top_p_filter)"
HINTS = [
    "Three arrays per row: probs (a stable softmax), order = np.argsort(logits, axis=-1, kind='stable'), and "
    "cum = np.cumsum(np.take_along_axis(probs, order, axis=-1), axis=-1), the mass of each token and every less "
    "likely one.",
    "remove_sorted = cum <= 1.0 - p marks, in sorted order, the tokens to drop; the last one (the most likely) "
    "always stays: remove_sorted[..., -1] = False.",
    "Take the decision back to vocabulary order: remove = np.empty_like(remove_sorted); "
    "np.put_along_axis(remove, order, remove_sorted, axis=-1). Then out = logits.copy(); out[remove] = -np.inf.",
]
NAIVE = "subtract the row maximum before exp: exp(1000) is inf in float64, and inf / inf is nan"


def _variants(x, p):
    with np.errstate(all="ignore"):
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        probs = e / e.sum(axis=-1, keepdims=True)
        order = np.argsort(x, axis=-1, kind="stable")
        sp = np.take_along_axis(probs, order, axis=-1)
        cum = np.cumsum(sp, axis=-1)

        def keep_where(remove_sorted, back=True):
            remove = np.empty_like(remove_sorted)
            if back:
                np.put_along_axis(remove, order, remove_sorted, axis=-1)
            else:
                remove = remove_sorted
            out = x.copy()
            out[remove] = -np.inf
            return out

        crossing = 1.0 - cum + sp > p
        crossing[..., -1] = False
        none_kept = cum <= 1.0 - p
        unordered = cum <= 1.0 - p
        unordered[..., -1] = False
        return [
            (lambda: keep_where(crossing), "the token whose mass crosses p stays: keep the smallest set of most "
                                           "likely tokens whose mass is AT LEAST p (remove only cum <= 1 - p)"),
            (lambda: keep_where(none_kept), "the most likely token always stays (remove_sorted[..., -1] = False)"),
            (lambda: keep_where(unordered, back=False), "the decision is in sorted order: take it back to "
                                                        "vocabulary order with np.put_along_axis(remove, order, ...)"),
            (x, NAIVE + " (nan <= 1 - p is False, so nothing was removed)" if np.abs(x).max() > 700 else
             "nothing was removed: remove the tokens whose cumulative mass (in ascending order) is <= 1 - p"),
            (probs, "return logits (the kept ones unchanged, the others -inf), not probabilities"),
        ]


def check(mod) -> None:
    flat = np.zeros(8)
    peaked = np.array([0.0, 8.0, 1.0, 0.5, -2.0, 0.0])
    tied = np.array([1.0, 2.0, 2.0, 1.0, 2.0, 0.0])
    cases = [("one row of 10 logits, p 0.9", random((10,), seed=1, scale=2.0), 0.9),
             ("a batch (2, 3, 10), p 0.5", random((2, 3, 10), seed=2, scale=2.0), 0.5),
             ("a batch (4, 7), p 1.0 (nothing removed)", random((4, 7), seed=3), 1.0),
             ("a batch (3, 6), p 0 (one token left per row)", random((3, 6), seed=4), 0.0),
             ("a peaked row, p 0.9", peaked, 0.9), ("a flat row of 8, p 0.3", flat, 0.3),
             ("tied logits [1, 2, 2, 1, 2, 0], p 0.5", tied, 0.5),
             ("logits near 1000, (2, 5), p 0.8", random((2, 5), seed=5) + 1000.0, 0.8)]
    for desc, x, p in cases:
        expected = top_p_filter(x, p)
        with case(desc):
            given = x.copy()
            got = mod.top_p_filter(given, p)
            if not np.array_equal(given, x):
                raise Failure("your function changed the logits it was given: filter a copy, out = logits.copy(), "
                              "not in place (the caller reuses its logits)")
            got = as_array("top_p_filter's result", got)
            mistakes = _variants(x, p)
            if got.shape == expected.shape and np.isnan(got).any():
                raise Failure("the result has nan", NAIVE)
            kept_ok, kept = np.isfinite(expected), np.isfinite(got) if got.shape == expected.shape else None
            if kept is not None and not np.array_equal(kept, kept_ok):
                i = np.unravel_index(int(np.argmax(kept != kept_ok)), got.shape)
                state = "kept" if kept[i] else "removed"
                raise Failure(f"token {tuple(int(j) for j in i)} is {state}, expected "
                              f"{'kept' if kept_ok[i] else 'removed (-inf)'}: you keep {int(kept.sum())} "
                              f"tokens, the nucleus has {int(kept_ok.sum())}", diagnose(got, mistakes))
            compare("top_p_filter's result", got, expected, rtol=0, atol=0, mistakes=mistakes)


def plug(mod) -> dict:
    """Not plugged into training: sampling does not train."""
    return {}
