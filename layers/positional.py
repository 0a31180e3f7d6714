"""Positional information for attention, which on its own is blind to word order.

Three ways to give it:

- Sinusoidal encodings (Vaswani et al. 2017, "Attention Is All You Need", section 3.5), added to the token
  embeddings: PE[p, 2i] = sin(p / base^(2i/d)), PE[p, 2i+1] = cos(p / base^(2i/d)). Each pair of features is a
  clock ticking at its own frequency, so PE[p + k] is a fixed rotation of PE[p] for every p.
- Learned position embeddings (GPT-2's `wpe`): a table with one trainable row per position.
- Rotary position embeddings, RoPE (Su et al. 2021, "RoFormer"), applied to queries and keys inside attention: each
  pair of features (a, b) of a vector at position p is rotated by the angle p * theta_i, theta_i = base^(-2i/d).
  A rotation by p*theta applied to q and by s*theta applied to k leaves q . k depending on (p - s) only, which is
  how relative position enters the attention scores.

RoPE comes in two layouts, both the same math on differently paired features:
  interleaved=False: pairs (i, i + d/2), "rotate_half", Hugging Face Llama / Mixtral / GPT-NeoX;
  interleaved=True:  pairs (2i, 2i + 1), Meta's original Llama code and GPT-J.
"""

from __future__ import annotations

import numpy as np

import tinygrad_lite.functional as F
from tinygrad_lite import Function, Module, Parameter, Tensor, as_generator, is_fused_enabled


def sinusoidal_positions(n_positions: int, dim: int, base: float = 10000.0) -> np.ndarray:
    """The (n_positions, dim) table PE[p, 2i] = sin(p / base^(2i/dim)), PE[p, 2i+1] = cos(p / base^(2i/dim)).

    Computed in float64 and returned as float32. An odd dim ends with a sine column.
    """
    p = np.arange(n_positions, dtype=np.float64)[:, None]  # (P, 1)
    two_i = np.arange(0, dim, 2, dtype=np.float64)  # (ceil(dim/2),) the even column indices 2i
    angles = p / base ** (two_i / dim)  # (P, ceil(dim/2))
    pe = np.empty((n_positions, dim), dtype=np.float64)
    pe[:, 0::2] = np.sin(angles)
    pe[:, 1::2] = np.cos(angles[:, : dim // 2])
    return pe.astype(np.float32)


def _positions(positions) -> np.ndarray:
    if isinstance(positions, Tensor):
        positions = positions.data
    if isinstance(positions, (int, np.integer)):
        return np.arange(int(positions))
    positions = np.asarray(positions)
    if not np.issubdtype(positions.dtype, np.integer):
        raise TypeError(f"positions must be integers, got dtype {positions.dtype}")
    if positions.size and positions.min() < 0:
        raise IndexError(f"positions must be >= 0, got {int(positions.min())}")
    return positions


class SinusoidalPositionalEncoding(Module):
    """The fixed sinusoidal table of Vaswani et al. 2017 as a Module: forward(positions) -> PE[positions].

    `positions` is an integer array (e.g. np.arange(start, start + T)) or an int T meaning arange(T). The table is a
    constant, not a parameter, and is not saved in state_dict (it is recomputed from dim and base); it grows on
    demand past `max_len`. The model adds the result to its (scaled) token embeddings.
    """

    def __init__(self, dim: int, max_len: int = 2048, base: float = 10000.0):
        self.dim, self.base = dim, base
        self.table = sinusoidal_positions(max_len, dim, base)

    def forward(self, positions) -> Tensor:
        pos = _positions(positions)
        if pos.size and pos.max() >= len(self.table):
            self.table = sinusoidal_positions(max(int(pos.max()) + 1, 2 * len(self.table)), self.dim, self.base)
        return Tensor(self.table[pos])  # (..., dim), no gradient


class LearnedPositionalEmbedding(Module):
    """A trainable table, one row per position (GPT-2's wpe): forward(positions) -> weight[positions].

    Initialisation: N(0, 0.02), GPT-2's. Positions past n_positions raise, since no row was ever trained for them.
    """

    def __init__(self, n_positions: int, dim: int, rng=None, dtype=np.float32):
        rng = as_generator(rng)
        self.n_positions, self.dim = n_positions, dim
        self.weight = Parameter((0.02 * rng.standard_normal((n_positions, dim))).astype(dtype))

    def forward(self, positions) -> Tensor:
        return F.embedding(self.weight, _positions(positions))  # (..., dim)


# --------------------------------------------------------------------------------------------- rotary


def _rotate(x: np.ndarray, interleaved: bool) -> np.ndarray:
    """R x for the 90-degree rotation of every feature pair (a, b) -> (-b, a)."""
    if interleaved:
        out = np.empty_like(x)
        out[..., 0::2] = -x[..., 1::2]
        out[..., 1::2] = x[..., 0::2]
        return out
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)  # rotate_half


class Rope(Function):
    """y = x * cos + rotate(x) * sin: every pair rotated by its angle.

    A rotation is orthogonal, so the backward is the rotation by the opposite angle: with rotate^T = -rotate,
    dx = g * cos - rotate(g * sin).
    """

    def forward(self, x, cos, sin, interleaved):
        self.cos, self.sin, self.interleaved = cos, sin, interleaved
        return x * cos + _rotate(x, interleaved) * sin

    def backward(self, g):
        return g * self.cos - _rotate(g * self.sin, self.interleaved)


def rotate_half(x: Tensor, interleaved: bool = False) -> Tensor:
    """Every feature pair (a, b) turned by 90 degrees to (-b, a), in Tensor ops."""
    if interleaved:  # pairs (2i, 2i + 1)
        pairs = Tensor.stack([-x[..., 1::2], x[..., 0::2]], axis=-1)  # (..., D/2, 2)
        return pairs.reshape(*x.shape)
    half = x.shape[-1] // 2  # pairs (i, i + D/2)
    return Tensor.cat([-x[..., half:], x[..., :half]], axis=-1)


def rope_reference(x: Tensor, cos: np.ndarray, sin: np.ndarray, interleaved: bool = False) -> Tensor:
    """x * cos + rotate_half(x) * sin (Su et al. 2021), in Tensor ops."""
    return x * Tensor(cos) + rotate_half(x, interleaved) * Tensor(sin)


def rope(x: Tensor, cos: np.ndarray, sin: np.ndarray, interleaved: bool = False) -> Tensor:
    """Rotate x (..., D) by the angles whose cos and sin (broadcastable to x) are given: the fused Rope Function, or
    rope_reference under `tinygrad_lite.set_fused(False)`."""
    if not is_fused_enabled():
        return rope_reference(x, cos, sin, interleaved)
    return Rope.apply(x, cos=cos, sin=sin, interleaved=interleaved)


class RotaryEmbedding(Module):
    """Rotary position embedding (Su et al. 2021): rope(x, positions) rotates x (B, H, T, D) at absolute positions.

    Pair i turns by angle p * theta_i with theta_i = base^(-2i/D), i = 0 .. D/2 - 1. `positions` is an integer array
    (T,) shared by the batch, or (B, T) per sequence; with a KV cache the new tokens' positions start at the cache
    length. No parameters; cos/sin tables are cached per dtype and grown on demand. Gradients flow through the
    rotation (a Function whose backward rotates back).
    """

    def __init__(self, head_dim: int, base: float = 10000.0, interleaved: bool = False, max_positions: int = 2048):
        if head_dim % 2:
            raise ValueError(f"RotaryEmbedding: head_dim must be even, got {head_dim}")
        self.head_dim, self.base, self.interleaved = head_dim, base, interleaved
        self.inv_freq = base ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)  # (D/2,) theta_i
        self._tables = {}
        self._build(max_positions)

    def _build(self, n: int) -> None:
        angles = np.arange(n, dtype=np.float64)[:, None] * self.inv_freq  # (n, D/2)
        if self.interleaved:
            angles = np.repeat(angles, 2, axis=-1)  # (n, D): theta_0, theta_0, theta_1, theta_1, ...
        else:
            angles = np.concatenate([angles, angles], axis=-1)  # (n, D): theta_0 .. theta_{D/2-1}, twice
        self._cos64, self._sin64 = np.cos(angles), np.sin(angles)
        self._tables = {}

    def tables(self, positions, dtype=np.float32) -> tuple:
        """cos and sin at the given positions, shape positions.shape + (D,), in `dtype`."""
        pos = _positions(positions)
        if pos.size and pos.max() >= len(self._cos64):
            self._build(max(int(pos.max()) + 1, 2 * len(self._cos64)))
        dtype = np.dtype(dtype)
        if dtype not in self._tables:
            self._tables[dtype] = (self._cos64.astype(dtype), self._sin64.astype(dtype))
        cos, sin = self._tables[dtype]
        return cos[pos], sin[pos]

    def forward(self, x: Tensor, positions) -> Tensor:
        if x.ndim != 4 or x.shape[-1] != self.head_dim:
            raise ValueError(f"RotaryEmbedding: expected x of shape (B, H, T, {self.head_dim}), got {x.shape}")
        pos = _positions(positions)
        if pos.shape[-1] != x.shape[2] or pos.ndim not in (1, 2):
            raise ValueError(f"RotaryEmbedding: positions of shape {pos.shape} for x of shape {x.shape}; "
                             "expected (T,) or (B, T)")
        cos, sin = self.tables(pos, x.dtype)  # (T, D) or (B, T, D)
        if pos.ndim == 2:
            cos, sin = cos[:, None], sin[:, None]  # (B, 1, T, D): broadcast over heads
        return rope(x, cos, sin, self.interleaved)  # (B, H, T, D)

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, base={self.base}, interleaved={self.interleaved}"
