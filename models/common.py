"""Small helpers every model shares: checking token-id inputs and per-layer KV caches."""

from __future__ import annotations

import numpy as np

from tinygrad_lite import Tensor


def as_ids(idx, who: str) -> np.ndarray:
    """A (B, T) integer array from an array, a nested list or a Tensor; a clear error for anything else."""
    arr = np.asarray(idx.data if isinstance(idx, Tensor) else idx)
    if arr.ndim != 2:
        raise ValueError(f"{who}: expected token ids of shape (B, T), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{who}: token ids must be integers, got dtype {arr.dtype}")
    return arr


def check_cache(cache, n_layer: int, who: str) -> int:
    """Validate a per-layer cache list; return the number of positions it already holds (0 without a cache)."""
    if cache is None:
        return 0
    if len(cache) != n_layer:
        raise ValueError(f"{who}: the cache has {len(cache)} layers, the model {n_layer} (use model.make_cache())")
    lengths = {len(c) for c in cache}
    if len(lengths) != 1:
        raise ValueError(f"{who}: the layers' caches hold different numbers of positions {sorted(lengths)}")
    return lengths.pop()


def reorder_cache(cache: list, index) -> None:
    """Select (and repeat) batch rows of every layer's cache in place: cache rows become old rows `index`.

    Beam search keeps one row per beam; after each step the surviving beams may descend from any previous beam, so
    their caches must follow: `reorder_cache(cache, parent_beam_of_each_new_beam)`. Works for any object with
    `.k` / `.v` arrays (B, H, max_len, D), i.e. layers.KVCache.
    """
    index = np.asarray(index)
    for c in cache:
        if getattr(c, "k", None) is not None:  # an allocated cache
            c.k, c.v = c.k[index], c.v[index]  # fancy indexing copies, so repeated rows do not alias


class GenerateMixin:
    """`model.generate(...)` for the decoder-only models: samplers.generate with the KV cache (see its docstring).

    Imported lazily so that models do not depend on samplers at import time.
    """

    def generate(self, idx, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, min_p: float | None = None, repetition_penalty: float | None = None,
                 eos_token_id: int | None = None, rng: np.random.Generator | None = None, stream=None,
                 use_cache: bool = True, do_sample: bool | None = None) -> np.ndarray:
        from samplers.generate import generate

        return generate(self, idx, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
                        repetition_penalty=repetition_penalty, eos_token_id=eos_token_id, rng=rng, stream=stream,
                        use_cache=use_cache, do_sample=do_sample)
