"""Autoregressive generation for the decoder-only models (GPT2, MoEGPT), with a KV cache.

Without a cache every new token re-runs the model over the whole context: O(T^2) work for T tokens. With one, the
prompt is run once (prefill) and each later step feeds only the newest token, attending to keys and values that
the cache kept from earlier steps. Both give the same tokens; the test suite checks that they do.

When the context is full (the model's block size), a model with learned absolute positions cannot slide its cache,
because every cached key was computed at a position that has now shifted. So generation falls back to a sliding
window: each step re-runs the model on the last block-size tokens, exactly as uncached generation does.

The model contract: `model(idx, cache=cache, last_only=True) -> (logits, loss)` with idx (B, T) int64,
`model.make_cache(B, max_len)` returning a per-layer cache list whose `len(cache[0])` is the number of cached
positions, and a context length in `model.config.n_positions` or `model.config.max_position_embeddings`
(or `model.block_size`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from tinygrad_lite import no_grad

from .repetition import apply_repetition_penalty
from .sampling import greedy, sample


def context_length(model) -> int:
    for obj, name in ((model, "block_size"), (getattr(model, "config", None), "n_positions"),
                      (getattr(model, "config", None), "max_position_embeddings")):
        value = getattr(obj, name, None)
        if isinstance(value, int) and value > 0:
            return value
    raise ValueError(f"generate: cannot tell the context length of {type(model).__name__}")


def _next_logits(model, idx: np.ndarray, cache, n_new: int, block: int):
    """Logits (B, V) for the next token, feeding the cache only what it has not seen yet."""
    # last_only: sampling needs the last position's logits only, so the (T, vocab) projection of the rest is skipped.
    if cache is not None and idx.shape[1] <= block:
        logits, _ = model(idx[:, -n_new:], cache=cache, last_only=True)
    else:  # no cache, or the context is full: a fresh pass over the last `block` tokens (the sliding window)
        logits, _ = model(idx[:, -block:], last_only=True)
    return logits.data[:, -1, :]


def iter_generate(model, idx, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                  top_p: float | None = None, min_p: float | None = None, repetition_penalty: float | None = None,
                  eos_token_id: int | None = None, rng: np.random.Generator | None = None,
                  use_cache: bool = True, do_sample: bool | None = None) -> Iterator[np.ndarray]:
    """Yield the next token of every row, (B,) int64, one step at a time.

    temperature 0 (or do_sample=False) decodes greedily. A row that produced eos_token_id keeps emitting
    eos_token_id (as transformers pads finished rows); iteration stops when every row has finished.
    """
    idx = np.asarray(idx, dtype=np.int64)
    if idx.ndim == 1:
        idx = idx[None, :]
    if idx.ndim != 2 or idx.shape[1] == 0:
        raise ValueError(f"generate: idx must be a non-empty (B, T) array of token ids, got shape {idx.shape}")
    if max_new_tokens < 0:
        raise ValueError(f"generate: max_new_tokens must be >= 0, got {max_new_tokens}")
    if do_sample is None:
        do_sample = temperature != 0
    rng = np.random.default_rng() if rng is None else rng
    block = context_length(model)
    was_training = getattr(model, "training", False)
    model.eval()
    try:
        with no_grad():
            cache = model.make_cache(idx.shape[0], block) if use_cache else None
            finished = np.zeros(idx.shape[0], dtype=bool)
            n_new = idx.shape[1]
            for _ in range(max_new_tokens):
                logits = _next_logits(model, idx, cache, n_new, block)
                if do_sample:
                    nxt = sample(logits, rng, temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
                                 repetition_penalty=repetition_penalty, prev_ids=idx)
                elif repetition_penalty is not None:
                    nxt = greedy(apply_repetition_penalty(logits, idx, repetition_penalty))
                else:
                    nxt = greedy(logits)
                nxt = np.asarray(nxt, dtype=np.int64).reshape(-1)
                if eos_token_id is not None:
                    nxt = np.where(finished, eos_token_id, nxt)
                    finished |= nxt == eos_token_id
                idx = np.concatenate([idx, nxt[:, None]], axis=1)
                n_new = 1
                yield nxt
                if eos_token_id is not None and finished.all():
                    break
    finally:
        model.train(was_training)


def generate(model, idx, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
             top_p: float | None = None, min_p: float | None = None, repetition_penalty: float | None = None,
             eos_token_id: int | None = None, rng: np.random.Generator | None = None,
             stream: Callable[[np.ndarray], None] | None = None, use_cache: bool = True,
             do_sample: bool | None = None) -> np.ndarray:
    """The prompt(s) followed by up to max_new_tokens generated tokens: (B, T + n) int64 ((T + n,) for a 1-D idx).

    `stream(tokens)` is called with each step's (B,) tokens as they come; `iter_generate` is the iterator form.
    """
    prompt = np.asarray(idx, dtype=np.int64)
    rows = prompt[None, :] if prompt.ndim == 1 else prompt
    steps = []
    for nxt in iter_generate(model, rows, max_new_tokens, temperature, top_k, top_p, min_p, repetition_penalty,
                             eos_token_id, rng, use_cache, do_sample):
        steps.append(nxt)
        if stream is not None:
            stream(nxt)
    out = np.concatenate([rows] + [s[:, None] for s in steps], axis=1) if steps else rows.copy()
    return out[0] if prompt.ndim == 1 else out
