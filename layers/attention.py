"""Attention layers: multi-head attention (Vaswani et al. 2017) and grouped-query attention (Ainslie et al. 2023).

Multi-head attention projects the input to H query, key and value heads of size D = dim / H, lets each head attend
independently (scaled_dot_product_attention), concatenates the heads and projects back:

    MHA(x) = concat_h(softmax(Q_h K_h^T / sqrt(D)) V_h) W_o,  Q = x W_q, K = c W_k, V = c W_v

with c = x for self-attention and c = the encoder output ("context") for cross-attention. Grouped-query attention
keeps H query heads but only Hkv key/value heads, each shared by H / Hkv query heads: the KV cache shrinks by that
factor. Hkv = 1 is multi-query attention (Shazeer 2019); Hkv = H is multi-head attention again.

Parameter names follow Hugging Face so checkpoints load by name: q_proj, k_proj, v_proj, o_proj (Llama, Mixtral) or,
with packed_qkv=True, GPT-2's c_attn (dim, 3 dim) holding [W_q | W_k | W_v] side by side, and c_proj.
"""

from __future__ import annotations

import numpy as np

import tinygrad_lite.functional as F
from tinygrad_lite import Module, Tensor, as_generator

from .attention_function import merge_heads, packed_self_attention, scaled_dot_product_attention, split_heads
from .kv_cache import KVCache
from .linear import Linear
from .positional import RotaryEmbedding


class MultiHeadAttention(Module):
    """Multi-head self- or cross-attention: forward(x, context=None, attn_mask=None, is_causal=False, cache=None).

    `dropout` is applied, in training mode, to the attention weights and to the output (nanoGPT's attn_dropout and
    resid_dropout). With a `cache` (KVCache), self-attention appends this call's keys and values and attends over all
    stored ones; cross-attention fills the cache with the context's keys and values on the first call and reuses
    them afterwards (the context is then not projected again). Initialisation: that of Linear.
    """

    def __init__(self, dim: int, n_heads: int, bias: bool = True, dropout: float = 0.0, packed_qkv: bool = False,
                 rng=None, dtype=np.float32):
        if dim % n_heads:
            raise ValueError(f"MultiHeadAttention: dim {dim} is not divisible by n_heads {n_heads}")
        self.dim, self.n_heads, self.dropout, self.packed_qkv = dim, n_heads, dropout, packed_qkv
        self.rng = as_generator(rng)
        if packed_qkv:
            self.c_attn = Linear(dim, 3 * dim, bias=bias, rng=self.rng, dtype=dtype)
            self.c_proj = Linear(dim, dim, bias=bias, rng=self.rng, dtype=dtype)
        else:
            self.q_proj = Linear(dim, dim, bias=bias, rng=self.rng, dtype=dtype)
            self.k_proj = Linear(dim, dim, bias=bias, rng=self.rng, dtype=dtype)
            self.v_proj = Linear(dim, dim, bias=bias, rng=self.rng, dtype=dtype)
            self.o_proj = Linear(dim, dim, bias=bias, rng=self.rng, dtype=dtype)

    def _qkv(self, x: Tensor, context: Tensor | None, need_kv: bool) -> tuple:
        """Projections (B, T, C) -> q (B, T, C) and, if need_kv, k, v (B, S, C) of the context (or of x)."""
        src = x if context is None else context
        if not self.packed_qkv:
            return self.q_proj(x), *((self.k_proj(src), self.v_proj(src)) if need_kv else (None, None))
        # GPT-2's c_attn holds [W_q | W_k | W_v]. Slicing the weight (not the (B, T, 3C) output) lets the query part
        # read x and the key/value part the context, and its backward fills (C, 3C) zeros, not (B, T, 3C) ones.
        C, w, b = self.dim, self.c_attn.weight, self.c_attn.bias
        parts = [(slice(0, C), x)] + ([(slice(C, 2 * C), src), (slice(2 * C, 3 * C), src)] if need_kv else [])
        out = [F.linear(inp, w[:, cols], None if b is None else b[cols]) for cols, inp in parts]
        return tuple(out) if need_kv else (out[0], None, None)

    def forward(self, x: Tensor, context: Tensor | None = None, attn_mask=None, is_causal: bool = False,
                cache: KVCache | None = None) -> Tensor:
        p = self.dropout if self.training else 0.0
        if self.packed_qkv and context is None and cache is None:
            # Self-attention without a cache (training): one (C, 3C) product and attention on its packed output.
            out = packed_self_attention(self.c_attn(x), self.n_heads, attn_mask=attn_mask, is_causal=is_causal,
                                        dropout_p=p, rng=self.rng)  # (B, T, 3C) -> (B, T, C)
        else:
            reuse = context is not None and cache is not None and len(cache) > 0  # cross-attention, K/V cached
            q, k, v = self._qkv(x, context, need_kv=not reuse)
            q = split_heads(q, self.n_heads)  # (B, H, T, D)
            if reuse:
                k, v = cache.get()  # (B, H, S, D)
            else:
                k, v = split_heads(k, self.n_heads), split_heads(v, self.n_heads)  # (B, H, S, D)
                if cache is not None:
                    k, v = cache.update(k, v)  # (B, H, past + S, D)
            out = merge_heads(scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal,
                                                           dropout_p=p, rng=self.rng))  # (B, H, T, D) -> (B, T, C)
        out = (self.c_proj if self.packed_qkv else self.o_proj)(out)  # (B, T, C)
        return F.dropout(out, p, training=self.training, rng=self.rng)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, n_heads={self.n_heads}, packed_qkv={self.packed_qkv}"


class GroupedQueryAttention(Module):
    """Grouped-query self-attention with optional rotary embeddings: forward(x, attn_mask=None, is_causal=False,
    cache=None, positions=None).

    q_proj (dim, H D), k_proj and v_proj (dim, Hkv D), o_proj (H D, dim), no biases by default (Llama, Mixtral).
    `rope` (a RotaryEmbedding) rotates q and k at `positions`, which default to the next positions of the cache
    (0, 1, ... without one); keys enter the cache already rotated. Initialisation: that of Linear.
    """

    def __init__(self, dim: int, n_heads: int, n_kv_heads: int, bias: bool = False,
                 rope: RotaryEmbedding | None = None, head_dim: int | None = None, dropout: float = 0.0, rng=None,
                 dtype=np.float32):
        head_dim = dim // n_heads if head_dim is None else head_dim
        if n_heads % n_kv_heads:
            raise ValueError(f"GroupedQueryAttention: n_heads {n_heads} is not a multiple of n_kv_heads {n_kv_heads}")
        if rope is not None and rope.head_dim != head_dim:
            raise ValueError(f"GroupedQueryAttention: rope.head_dim {rope.head_dim} != head_dim {head_dim}")
        self.dim, self.n_heads, self.n_kv_heads, self.head_dim = dim, n_heads, n_kv_heads, head_dim
        self.rope, self.dropout = rope, dropout
        self.rng = as_generator(rng)
        self.q_proj = Linear(dim, n_heads * head_dim, bias=bias, rng=self.rng, dtype=dtype)
        self.k_proj = Linear(dim, n_kv_heads * head_dim, bias=bias, rng=self.rng, dtype=dtype)
        self.v_proj = Linear(dim, n_kv_heads * head_dim, bias=bias, rng=self.rng, dtype=dtype)
        self.o_proj = Linear(n_heads * head_dim, dim, bias=bias, rng=self.rng, dtype=dtype)

    def forward(self, x: Tensor, attn_mask=None, is_causal: bool = False, cache: KVCache | None = None,
                positions=None) -> Tensor:
        T = x.shape[1]
        q = split_heads(self.q_proj(x), self.n_heads)  # (B, H, T, D)
        k = split_heads(self.k_proj(x), self.n_kv_heads)  # (B, Hkv, T, D)
        v = split_heads(self.v_proj(x), self.n_kv_heads)  # (B, Hkv, T, D)
        if self.rope is not None:
            if positions is None:
                positions = cache.positions(T) if cache is not None else np.arange(T)
            q, k = self.rope(q, positions), self.rope(k, positions)
        if cache is not None:
            k, v = cache.update(k, v)  # (B, Hkv, past + T, D)
        p = self.dropout if self.training else 0.0
        out = scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal, dropout_p=p,
                                           rng=self.rng)  # (B, H, T, D)
        return self.o_proj(merge_heads(out))  # (B, T, dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, n_heads={self.n_heads}, n_kv_heads={self.n_kv_heads}, head_dim={self.head_dim}"
