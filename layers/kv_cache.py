"""KVCache: the keys and values of past positions, kept so that generating token t+1 costs one new row of attention.

Without a cache, producing each new token recomputes K and V for the whole prefix: O(T^2) projections for T tokens.
With it, each step projects only the new token and attends over the stored rows. The arrays are preallocated to
`max_len` positions (allocated at the first update, when batch, heads, head size and dtype are known), so appending
is a copy into place, never a reallocation.

It is an inference cache: the stored rows carry no gradient. Under grad mode the rows appended by the current call
still do (the returned keys are cat(stored past, new)), so one forward with a cache gives the same gradients to
the current step's projections as one without; earlier steps receive none.
"""

from __future__ import annotations

import numpy as np

from tinygrad_lite import Tensor, is_grad_enabled


class KVCache:
    """One layer's cache of keys and values, (B, Hkv, max_len, D) each, and the number of positions filled."""

    def __init__(self, max_len: int):
        if max_len < 1:
            raise ValueError(f"KVCache: max_len must be >= 1, got {max_len}")
        self.max_len = max_len
        self.k = self.v = None  # (B, Hkv, max_len, D) once allocated
        self.pos = 0

    def __len__(self) -> int:
        return self.pos

    def reset(self) -> None:
        """Forget every position (the arrays stay allocated for the next sequence)."""
        self.pos = 0

    def crop(self, length: int) -> None:
        """Keep only the first `length` positions (e.g. to rewind after rejected tokens)."""
        if not 0 <= length <= self.pos:
            raise ValueError(f"KVCache.crop: length {length} is outside [0, {self.pos}]")
        self.pos = length

    def positions(self, n_new: int) -> np.ndarray:
        """The absolute positions of the next n_new tokens: arange(len(self), len(self) + n_new)."""
        return np.arange(self.pos, self.pos + n_new)

    def get(self) -> tuple:
        """All keys and values stored so far, (B, Hkv, pos, D) each, as Tensors viewing the cache (no copy)."""
        if self.k is None:
            raise ValueError("KVCache.get: the cache is empty")
        return Tensor(self.k[:, :, : self.pos]), Tensor(self.v[:, :, : self.pos])

    def update(self, k: Tensor, v: Tensor) -> tuple:
        """Append k, v (B, Hkv, T, D) at the next T positions; return all keys and values so far (B, Hkv, pos, D)."""
        B, H, T, D = k.shape
        if self.k is None:
            self.k = np.zeros((B, H, self.max_len, D), dtype=k.dtype)
            self.v = np.zeros((B, H, self.max_len, v.shape[-1]), dtype=v.dtype)
        if (B, H, D) != (self.k.shape[0], self.k.shape[1], self.k.shape[3]) or v.shape[:3] != k.shape[:3]:
            raise ValueError(f"KVCache.update: got k {k.shape}, v {v.shape} for a cache of shape {self.k.shape}")
        if self.pos + T > self.max_len:
            raise ValueError(f"KVCache.update: {self.pos} + {T} positions exceed max_len {self.max_len}")
        start, self.pos = self.pos, self.pos + T
        self.k[:, :, start:self.pos] = k.data
        self.v[:, :, start:self.pos] = v.data
        if is_grad_enabled() and (k.requires_grad or v.requires_grad):
            past_k, past_v = Tensor(self.k[:, :, :start]), Tensor(self.v[:, :, :start])
            return Tensor.cat([past_k, k], axis=2), Tensor.cat([past_v, v], axis=2)
        return self.get()
