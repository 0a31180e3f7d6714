"""Repetition penalty: make tokens that already appeared less likely to appear again.

Keskar, McCann, Varshney, Xiong & Socher, "CTRL: A Conditional Transformer Language Model for Controllable
Generation" (2019), section 4.1. CTRL divides the logit of every previously generated token by a penalty theta
(they use 1.2) before the softmax. Dividing only lowers a positive logit; a negative one would move up towards 0
and become *more* likely, so, as in transformers' RepetitionPenaltyLogitsProcessor, negative logits are multiplied
instead:

    x_i <- x_i / theta   if x_i >= 0 and token i is in prev_ids
    x_i <- x_i * theta   if x_i <  0 and token i is in prev_ids

A token is penalised once however many times it occurred (this is a presence penalty, not a frequency penalty).
theta > 1 discourages repetition, 0 < theta < 1 encourages it, theta = 1 changes nothing.

Unlike transformers, ids outside [0, vocab) are an error here rather than silently ignored: in this project the
history and the logits always come from the same vocabulary, so such an id is a bug worth reporting.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ._checks import as_logits


def apply_repetition_penalty(logits, prev_ids, penalty: float) -> np.ndarray:
    """Return a copy of `logits` with the CTRL penalty applied to every distinct id in `prev_ids`.

    logits (vocab,) takes prev_ids (T,); logits (B, vocab) takes prev_ids (B, T) or a list of B id sequences of any
    lengths (row b of the logits is penalised with the history of row b).
    """
    if isinstance(penalty, bool) or not isinstance(penalty, numbers.Real) or not (0 < penalty < math.inf):
        raise ValueError(f"apply_repetition_penalty: penalty must be a finite number > 0, got {penalty!r}")
    x = as_logits(logits, "apply_repetition_penalty")
    if x.ndim > 2:
        raise ValueError(f"apply_repetition_penalty: logits must be (vocab,) or (batch, vocab), got shape {x.shape}")
    rows = x.reshape(1, -1) if x.ndim == 1 else x  # (B, V)
    histories = [prev_ids] if x.ndim == 1 else _per_row(prev_ids, rows.shape[0])
    row_index, token_index = _flat_indices(histories, rows.shape[1])

    # A boolean mask deduplicates for free: writing True twice is the same as writing it once.
    seen = np.zeros(rows.shape, dtype=bool)
    seen[row_index, token_index] = True
    penalty = float(penalty)
    penalised = np.where(rows < 0, rows * penalty, rows / penalty)
    return np.where(seen, penalised, rows).reshape(x.shape)


def _per_row(prev_ids, batch: int) -> list:
    """Split a (B, T) array or a list of B sequences into one history per row, checking B."""
    if isinstance(prev_ids, np.ndarray) and prev_ids.ndim != 2:
        raise ValueError(
            f"apply_repetition_penalty: for logits of shape (batch, vocab), prev_ids must be (batch, T) or a list "
            f"of batch sequences, got an array of shape {prev_ids.shape}"
        )
    histories = list(prev_ids)
    if len(histories) != batch:
        raise ValueError(
            f"apply_repetition_penalty: logits have {batch} rows but prev_ids has {len(histories)} histories"
        )
    return histories


def _flat_indices(histories: list, vocab: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, token) index pairs of every id in every history, validated against the vocabulary."""
    ids = []
    for row, history in enumerate(histories):
        h = np.asarray(history)
        if h.size == 0:
            h = h.reshape(0).astype(np.int64)  # np.asarray([]) is float64; an empty history is still valid
        if h.ndim != 1 or not np.issubdtype(h.dtype, np.integer):
            raise ValueError(
                f"apply_repetition_penalty: the history of row {row} must be a 1-D sequence of integer ids, "
                f"got shape {h.shape} and dtype {h.dtype}"
            )
        if h.size and (h.min() < 0 or h.max() >= vocab):
            bad = h[(h < 0) | (h >= vocab)][0]
            raise ValueError(
                f"apply_repetition_penalty: token id {bad} in row {row} is outside the vocabulary [0, {vocab})"
            )
        ids.append(h.astype(np.int64, copy=False))
    lengths = [len(h) for h in ids]
    row_index = np.repeat(np.arange(len(ids)), lengths)
    token_index = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
    return row_index, token_index
