"""Scaled dot-product attention (Vaswani et al. 2017, eq. 1): Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V.

Shapes: q (B, H, Tq, D), k (B, Hkv, Tk, D), v (B, Hkv, Tk, Dv), H a multiple of Hkv. With Hkv < H this is grouped-query
attention (Ainslie et al. 2023; Hkv = 1 is multi-query attention, Shazeer 2019): the G = H / Hkv query heads of a
group share one K/V head.

Masks: `attn_mask` is boolean (True = may attend) or an additive float mask, broadcastable to (B, H, Tq, Tk).
`is_causal` lets query i see keys j <= i + (Tk - Tq): aligned to the end, so Tq new tokens appended after a cache of
Tk - Tq keys see the whole past. (torch's is_causal aligns to the start instead; the two agree when Tq == Tk.)
A query that may see no key at all gets zero weights and a zero output, not NaN.

Two paths, chosen by `tinygrad_lite.is_fused_enabled()` on every call of `scaled_dot_product_attention` and
`packed_self_attention`:

- the reference path, `scaled_dot_product_attention_reference`: the formula in primitive Tensor ops (matmul,
  masked_fill, softmax, dropout), about ten graph nodes to print and step through;
- the fused path: one Function (`ScaledDotProductAttention`, or `PackedSelfAttention` on GPT-2's packed
  projection) whose forward and hand-written backward are the kernels `attention_forward` / `attention_backward`.
Tests hold the two to the same values and gradients.
"""

from __future__ import annotations

import math

import numpy as np

import tinygrad_lite.functional as F
from tinygrad_lite import Function, Tensor, as_generator, is_fused_enabled, no_grad

_causal_cache: dict = {}


def causal_mask(Tq: int, Tk: int) -> np.ndarray:
    """(Tq, Tk) boolean, True where key j <= i + (Tk - Tq): the causal mask aligned to the last key."""
    m = _causal_cache.get((Tq, Tk))
    if m is None:
        m = np.tri(Tq, Tk, k=Tk - Tq, dtype=bool)
        m.flags.writeable = False
        if len(_causal_cache) < 64:
            _causal_cache[(Tq, Tk)] = m
    return m


def split_heads(x: Tensor, n_heads: int) -> Tensor:
    B, T, C = x.shape
    return x.reshape(B, T, n_heads, C // n_heads).transpose(1, 2)  # (B, T, C) -> (B, H, T, D)


def merge_heads(x: Tensor) -> Tensor:
    B, H, T, D = x.shape
    return x.transpose(1, 2).reshape(B, T, H * D)  # (B, H, T, D) -> (B, T, C)


# --------------------------------------------------------------------------------------------- arguments


def _check(q, k, v):
    if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
        raise ValueError(f"attention: q, k, v must be 4-D (B, H, T, D), got {q.shape}, {k.shape}, {v.shape}")
    B, H, Tq, D = q.shape
    if k.shape[0] != B or v.shape[0] != B or k.shape[-1] != D or k.shape[:3] != v.shape[:3]:
        raise ValueError(f"attention: shapes do not match: q {q.shape}, k {k.shape}, v {v.shape} "
                         "(need q (B, H, Tq, D), k (B, Hkv, Tk, D), v (B, Hkv, Tk, Dv))")
    if H % k.shape[1]:
        raise ValueError(f"attention: {H} query heads are not a multiple of {k.shape[1]} key/value heads")
    if not (q.dtype == k.dtype == v.dtype) or not np.issubdtype(q.dtype, np.floating):
        raise TypeError(f"attention: q, k, v need one float dtype, got {q.dtype}, {k.dtype}, {v.dtype}")


def _masks(attn_mask, B: int, H: int, Hkv: int, Tq: int, Tk: int, dtype) -> tuple:
    """-> (blocked, additive): the 'may not attend' boolean and the additive float mask, each None or shaped to
    broadcast against (B, Hkv, G, Tq, Tk), the query heads grouped by their K/V head."""
    if attn_mask is None:
        return None, None
    m = np.asarray(attn_mask.data if isinstance(attn_mask, Tensor) else attn_mask)
    try:
        ok = m.ndim <= 4 and np.broadcast_shapes(m.shape, (B, H, Tq, Tk)) == (B, H, Tq, Tk)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"attention: attn_mask of shape {m.shape} does not broadcast to (B, H, Tq, Tk) = "
                         f"{(B, H, Tq, Tk)}")
    m = m.reshape((1,) * (4 - m.ndim) + m.shape)
    b, h, tq, tk = m.shape
    m = m.reshape(b, Hkv, H // Hkv, tq, tk) if h == H else m.reshape(b, 1, 1, tq, tk)
    if m.dtype == bool:
        return ~m, None
    if np.issubdtype(m.dtype, np.floating):
        return None, m.astype(dtype, copy=False)
    raise TypeError(f"attention: attn_mask must be boolean or float, got dtype {m.dtype}")


def _scale_and_dropout(D: int, scale, dropout_p: float) -> float:
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"attention: dropout_p must be in [0, 1), got {dropout_p}")
    return 1.0 / math.sqrt(D) if scale is None else float(scale)


def _dropout_keep(rng, shape, p):
    """The keep mask, drawn as tinygrad_lite.functional.dropout draws it, so that both paths drop the same weights."""
    return as_generator(rng).random(shape, dtype=np.float32) >= p


# --------------------------------------------------------------------------------------------- reference path


def attention_weights_reference(q: Tensor, k: Tensor, blocked, additive, is_causal: bool, scale: float) -> Tensor:
    """softmax(Q K^T * scale + mask) over the keys, in Tensor ops: (B, Hkv, G, Tq, Tk)."""
    B, H, Tq, D = q.shape
    Hkv, Tk = k.shape[1], k.shape[2]
    q5 = q.reshape(B, Hkv, H // Hkv, Tq, D)  # (B, Hkv, G, Tq, D): query heads grouped by their K/V head
    k5 = k.unsqueeze(2)  # (B, Hkv, 1, Tk, D): broadcast over the group by matmul
    scores = (q5 @ k5.transpose(-1, -2)) * scale  # (B, Hkv, G, Tq, Tk)
    if additive is not None:
        scores = scores + Tensor(additive)
    if is_causal:
        not_causal = ~causal_mask(Tq, Tk)  # (Tq, Tk) broadcasts against (B, Hkv, G, Tq, Tk)
        blocked = not_causal if blocked is None else blocked | not_causal
    if blocked is not None:
        scores = scores.masked_fill(blocked, -np.inf)
    # A row with no visible key would be softmax(-inf, ..., -inf) = 0/0. Give it finite scores, then zero weights.
    dead = ~np.isfinite(scores.data.max(axis=-1, keepdims=True))
    if dead.any():
        scores = scores.masked_fill(dead, 0.0)
    weights = scores.softmax(axis=-1)
    return weights.masked_fill(dead, 0.0) if dead.any() else weights


def scaled_dot_product_attention_reference(q: Tensor, k: Tensor, v: Tensor, attn_mask=None, is_causal: bool = False,
                                           dropout_p: float = 0.0, scale: float | None = None,
                                           rng: np.random.Generator | None = None, return_weights: bool = False):
    """softmax(Q K^T * scale + mask) V composed from Tensor ops (arguments as scaled_dot_product_attention)."""
    _check(q, k, v)
    B, H, Tq, D = q.shape
    Hkv, Tk = k.shape[1], k.shape[2]
    scale = _scale_and_dropout(D, scale, dropout_p)
    blocked, additive = _masks(attn_mask, B, H, Hkv, Tq, Tk, q.dtype)
    weights = attention_weights_reference(q, k, blocked, additive, is_causal, scale)  # (B, Hkv, G, Tq, Tk)
    returned = weights.data.reshape(B, H, Tq, Tk)
    if return_weights:
        returned = returned.view()
        returned.flags.writeable = False  # the array softmax saved for its backward
    if dropout_p > 0.0:
        weights = F.dropout(weights, dropout_p, training=True, rng=rng)
    out = (weights @ v.unsqueeze(2)).reshape(B, H, Tq, v.shape[-1])  # (B, Hkv, G, Tq, Dv) -> (B, H, Tq, Dv)
    return (out, Tensor(returned)) if return_weights else out


def packed_self_attention_reference(qkv: Tensor, n_heads: int, attn_mask=None, is_causal: bool = False,
                                    dropout_p: float = 0.0, scale: float | None = None,
                                    rng: np.random.Generator | None = None) -> Tensor:
    """Slice qkv (B, T, 3C) into q, k, v, split each into heads, attend, merge the heads: -> (B, T, C)."""
    _check_packed(qkv, n_heads)
    C = qkv.shape[-1] // 3
    q, k, v = (split_heads(qkv[:, :, i * C:(i + 1) * C], n_heads) for i in range(3))  # (B, H, T, D) each
    out = scaled_dot_product_attention_reference(q, k, v, attn_mask=attn_mask, is_causal=is_causal,
                                                 dropout_p=dropout_p, scale=scale, rng=rng)
    return merge_heads(out)  # (B, T, C)


# --------------------------------------------------------------------------------------------- fused kernels


# Causal attention never looks at keys after the query: processed in blocks of this many queries, each block only
# multiplies against the keys it can see, which skips about half of the work for long sequences.
QUERY_BLOCK = 32


def query_blocks(Tq: int, Tk: int, causal: bool, block: int | None = None) -> list:
    """[(i0, i1, kend)]: queries i0..i1-1 need keys 0..kend-1 only (all keys unless causal)."""
    block = QUERY_BLOCK if block is None else block
    if not causal or Tq <= block:
        return [(0, Tq, Tk)]
    offset = Tk - Tq  # query i sees keys j <= i + offset
    # kend >= 1 keeps every block non-empty; keys a block may not see are masked like any other.
    return [(i0, min(i0 + block, Tq), min(max(min(i0 + block, Tq) + offset, 1), Tk)) for i0 in range(0, Tq, block)]


# Scores bounded by these in magnitude need no max subtraction: exp(+-40) = 2.4e17, 4.2e-18, so even a sum over a
# million keys, or its reciprocal, stays far inside float32's range (1.2e-38 .. 3.4e38).
EXP_SAFE = {np.float32: 40.0, np.float64: 300.0}


def _score_bound(qs: np.ndarray, k: np.ndarray) -> float:
    """max |qs_i| * max |k_j|, a bound on |qs_i . k_j| over all heads."""
    if qs.size == 0 or k.size == 0:
        return 0.0
    q2 = float(np.einsum("...d,...d->...", qs, qs).max())
    k2 = float(np.einsum("...d,...d->...", k, k).max())
    return 1.001 * (q2 * k2) ** 0.5  # the margin covers the rounding of the float32 sums


def _rows(m, i0: int, i1: int, kend: int):
    """The part of a (b, hkv, tq, g, tk) mask for queries i0..i1-1 and keys 0..kend-1 (size-1 axes broadcast)."""
    rows = slice(i0, i1) if m.shape[-3] > 1 else slice(None)
    keys = slice(0, kend) if m.shape[-1] > 1 else slice(None)
    return m[..., rows, :, keys]


def _to_rows(x: np.ndarray, G: int) -> np.ndarray:
    """(B, H, T, D) -> (B, Hkv, T * G, D), row t*G + g (a copy unless G = 1)."""
    B, H, T, D = x.shape
    return x.reshape(B, H // G, G, T, D).transpose(0, 1, 3, 2, 4).reshape(B, H // G, T * G, D)


def _from_rows(x: np.ndarray, G: int) -> np.ndarray:
    """(B, Hkv, T * G, D) -> (B, H, T, D), the inverse of _to_rows."""
    B, Hkv, TG, D = x.shape
    return x.reshape(B, Hkv, TG // G, G, D).transpose(0, 1, 3, 2, 4).reshape(B, Hkv * G, TG // G, D)


def attention_forward(q, k, v, blocked, additive, causal: bool, scale: float, keep, p: float) -> tuple:
    """The fused forward on arrays: -> (out (B, H, Tq, Dv), saved), `saved` what attention_backward needs.

    With Qs = Q * scale, S = Qs K^T, P = softmax(S) (masked, then dropped out: Pd), O = Pd V. How it is laid out:
    - Queries are laid out as rows (time, group) of a (B, Hkv, Tq * G, D) array: a group's G query heads share one
      K/V head, so every product is one matrix product per (batch, K/V head), batched by matmul over (B, Hkv); K and
      V are never copied per query head, and the backward's sums over the group in dK and dV are part of those
      products.
    - The softmax is kept unnormalised, E = exp(S - m), with l = rowsum(E): O = (E V) / l, so the division touches
      the small (Tq, Dv) output instead of the (Tq, Tk) weights. The shift m is the row maximum, or 0 when the
      scores are provably small (see EXP_SAFE).
    - With causal, queries are processed in blocks that multiply only against the keys they can see.
    """
    B, H, Tq, D = q.shape
    Hkv, Tk, Dv = k.shape[1], k.shape[2], v.shape[-1]
    G = H // Hkv
    qs = np.empty((B, Hkv, Tq, G, D), dtype=q.dtype)  # scale while copying: Tq*D multiplies, not Tq*Tk
    np.multiply(q.reshape(B, Hkv, G, Tq, D).transpose(0, 1, 3, 2, 4), scale, out=qs)
    qs = qs.reshape(B, Hkv, Tq * G, D)  # row t*G + g: query head g of the group, time t
    # Masks arrive as (b, hkv, g, tq, tk); viewed as (b, hkv, tq, g, tk) they match a block's rows.
    blocked = None if blocked is None else blocked.transpose(0, 1, 3, 2, 4)
    additive = None if additive is None else additive.transpose(0, 1, 3, 2, 4)
    if keep is not None:
        keep = keep.reshape(B, Hkv, G, Tq, Tk).transpose(0, 1, 3, 2, 4)
    # Subtracting the row maximum before exp only guards against overflow. By Cauchy-Schwarz every score obeys
    # |q_i . k_j| <= |q_i| |k_j|; when that bound is below EXP_SAFE, nothing can overflow or underflow, so the
    # two passes over the scores (max, subtract) are skipped. Additive masks void the bound.
    bounded = additive is None and _score_bound(qs, k) < EXP_SAFE[q.dtype.type]
    not_causal = ~causal_mask(Tq, Tk)[:, None, :] if causal else None  # (Tq, 1, Tk)
    masked = causal or blocked is not None or additive is not None
    blocks = query_blocks(Tq, Tk, causal)
    O = np.empty((B, Hkv, Tq * G, Dv), dtype=q.dtype)
    per_block = []
    for i0, i1, kend in blocks:
        rows = slice(i0 * G, i1 * G)
        S = np.matmul(qs[:, :, rows], np.swapaxes(k[:, :, :kend], -1, -2))  # (B, Hkv, n*G, kend)
        S5 = S.reshape(B, Hkv, i1 - i0, G, kend)  # a view, for masks
        if additive is not None:
            S5 += _rows(additive, i0, i1, kend)
        if blocked is not None:
            np.copyto(S5, -np.inf, where=_rows(blocked, i0, i1, kend))
        if causal:
            c0 = max(i0 + Tk - Tq + 1, 0)  # keys before c0 are visible to every query of the block
            if c0 < kend:
                np.copyto(S5[..., c0:], -np.inf, where=not_causal[i0:i1, :, c0:kend])
        if not bounded:
            m = S.max(axis=-1, keepdims=True)  # (B, Hkv, n*G, 1)
            if masked:
                m[~np.isfinite(m)] = 0.0  # a fully masked row: exp(-inf - 0) = 0 everywhere instead of NaN
            S -= m  # stable softmax: the largest logit becomes 0
        E = np.exp(S, out=S)  # unnormalised weights
        l = E.sum(axis=-1, keepdims=True)
        if masked:
            l[l == 0] = 1.0  # fully masked rows stay all zero
        linv = 1.0 / l  # (B, Hkv, n*G, 1)
        drop = None
        if keep is not None:
            drop = (keep[:, :, i0:i1, :, :kend] * E.dtype.type(1.0 / (1.0 - p))).reshape(E.shape)
        Ed = E if drop is None else E * drop
        Ob = np.matmul(Ed, v[:, :, :kend])  # (B, Hkv, n*G, Dv)
        Ob *= linv
        O[:, :, rows] = Ob
        per_block.append((E, Ed, drop, linv))
    return _from_rows(O, G), (qs, k, v, O, G, scale, blocks, per_block)


def attention_backward(saved, g, need_q: bool, need_k: bool, need_v: bool) -> tuple:
    """The fused backward: g (B, H, Tq, Dv) -> (dq, dk, dv), None for those not needed.

        dV = Pd^T dO
        dPd = dO V^T,  dP = dPd * keep / (1 - p)
        dS = P * (dP - rowsum(dP * P))     the softmax Jacobian applied to dP
        dQ = dS K * scale,  dK = dS^T Qs

    rowsum(dP * P) equals rowsum(dO * O) (expand O = Pd V), a (Tq, Dv) product instead of a (Tq, Tk) one, as in
    FlashAttention's backward; with the unnormalised E, the small arrays dO and rowsum(dO * O) are scaled by 1/l
    instead of the big (Tq, Tk) ones.
    """
    qs, k, v, O, G, scale, blocks, per_block = saved
    dO = _to_rows(g, G)  # (B, Hkv, Tq*G, Dv)
    Drow = (dO * O).sum(axis=-1, keepdims=True) if need_q or need_k else None  # rowsum(dP * P)
    dq = np.empty(qs.shape, dtype=g.dtype) if need_q else None
    dk = np.zeros(k.shape, dtype=g.dtype) if need_k else None
    dv = np.zeros(v.shape, dtype=g.dtype) if need_v else None
    for (i0, i1, kend), (E, Ed, drop, linv) in zip(blocks, per_block):
        rows = slice(i0 * G, i1 * G)
        dOs = dO[:, :, rows] * linv  # dO / l: (B, Hkv, n*G, Dv)
        if need_v:
            dv[:, :, :kend] += np.matmul(np.swapaxes(Ed, -1, -2), dOs)  # Pd^T dO, summed over the group
        if not (need_q or need_k):
            continue
        dP = np.matmul(dOs, np.swapaxes(v[:, :, :kend], -1, -2))  # dPd / l: (B, Hkv, n*G, kend)
        if drop is not None:
            dP *= drop
        dP -= Drow[:, :, rows] * linv
        dP *= E  # dS = P * (dP - rowsum(dP * P)) = E * (dP / l - rowsum / l)
        if need_q:
            dq[:, :, rows] = np.matmul(dP, k[:, :, :kend])
        if need_k:
            dk[:, :, :kend] += np.matmul(np.swapaxes(dP, -1, -2), qs[:, :, rows])
    if need_q:
        dq *= scale
        dq = _from_rows(dq, G)  # (B, H, Tq, D)
    return dq, dk, dv


class ScaledDotProductAttention(Function):
    """Fused attention on q (B, H, Tq, D), k (B, Hkv, Tk, D), v (B, Hkv, Tk, Dv): see attention_forward and
    attention_backward for the math."""

    def forward(self, q, k, v, blocked=None, additive=None, causal=False, scale=1.0, keep=None, p=0.0):
        out, saved = attention_forward(q, k, v, blocked, additive, causal, scale, keep, p)
        if any(self.needs_input_grad):
            self.saved = saved
        return out  # (B, H, Tq, Dv)

    def backward(self, g):
        return attention_backward(self.saved, g, *self.needs_input_grad)


class PackedSelfAttention(Function):
    """Self-attention from GPT-2's fused projection qkv (B, T, 3C) = [Q | K | V] straight to merged heads (B, T, C).

    The same kernels as ScaledDotProductAttention, run on views of qkv, without the graph nodes around them: no
    slicing of qkv into three tensors (whose backwards would each fill a (B, T, 3C) zero array to be summed), no
    head split and merge. The gradient comes back as one (B, T, 3C) array.
    """

    def forward(self, qkv, n_heads=1, blocked=None, additive=None, causal=False, scale=1.0, keep=None, p=0.0):
        B, T, C3 = qkv.shape
        heads = qkv.reshape(B, T, 3, n_heads, C3 // (3 * n_heads))
        q, k, v = (heads[:, :, i].transpose(0, 2, 1, 3) for i in range(3))  # views (B, H, T, D)
        out, self.saved = attention_forward(q, k, v, blocked, additive, causal, scale, keep, p)  # (B, H, T, D)
        return out.transpose(0, 2, 1, 3).reshape(B, T, C3 // 3)  # (B, T, C)

    def backward(self, g):
        B, T, C = g.shape
        H = self.saved[1].shape[1]  # k (B, H, T, D)
        dq, dk, dv = attention_backward(self.saved, g.reshape(B, T, H, C // H).transpose(0, 2, 1, 3), True, True,
                                        True)  # each (B, H, T, D)
        dqkv = np.empty((B, T, 3, H, C // H), dtype=g.dtype)
        for i, d in enumerate((dq, dk, dv)):
            dqkv[:, :, i] = d.transpose(0, 2, 1, 3)
        return dqkv.reshape(B, T, 3 * C)


# --------------------------------------------------------------------------------------------- public functions


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, attn_mask=None, is_causal: bool = False,
                                 dropout_p: float = 0.0, scale: float | None = None,
                                 rng: np.random.Generator | None = None, return_weights: bool = False):
    """softmax(q k^T * scale + mask) v for q (B, H, Tq, D), k (B, Hkv, Tk, D), v (B, Hkv, Tk, Dv) -> (B, H, Tq, Dv).

    `dropout_p` > 0 drops attention weights (whatever the module mode: pass 0 in eval, as with torch). With
    `return_weights=True` returns (output, weights), the weights a read-only (B, H, Tq, Tk) Tensor before dropout,
    without gradient. Masks are constants (no gradient). Runs the fused Function or, under
    `tinygrad_lite.set_fused(False)`, scaled_dot_product_attention_reference.
    """
    if not is_fused_enabled():
        return scaled_dot_product_attention_reference(q, k, v, attn_mask, is_causal, dropout_p, scale, rng,
                                                      return_weights)
    _check(q, k, v)
    B, H, Tq, D = q.shape
    Hkv, Tk = k.shape[1], k.shape[2]
    scale = _scale_and_dropout(D, scale, dropout_p)
    blocked, additive = _masks(attn_mask, B, H, Hkv, Tq, Tk, q.dtype)
    keep = _dropout_keep(rng, (B, H, Tq, Tk), dropout_p) if dropout_p > 0.0 else None
    out = ScaledDotProductAttention.apply(q, k, v, blocked=blocked, additive=additive, causal=is_causal, scale=scale,
                                          keep=keep, p=dropout_p)
    if not return_weights:
        return out
    with no_grad():  # the weights, for looking at: the reference path's first half, computed again
        weights = attention_weights_reference(q, k, blocked, additive, is_causal, scale).data.reshape(B, H, Tq, Tk)
    weights.flags.writeable = False
    return out, Tensor(weights)


def _check_packed(qkv: Tensor, n_heads: int) -> None:
    if qkv.ndim != 3 or qkv.shape[-1] % (3 * n_heads):
        raise ValueError(f"packed_self_attention: qkv must be (B, T, 3C) with C divisible by {n_heads} heads, "
                         f"got {qkv.shape}")
    if not np.issubdtype(qkv.dtype, np.floating):
        raise TypeError(f"packed_self_attention: qkv needs a float dtype, got {qkv.dtype}")


def packed_self_attention(qkv: Tensor, n_heads: int, attn_mask=None, is_causal: bool = False,
                          dropout_p: float = 0.0, scale: float | None = None,
                          rng: np.random.Generator | None = None) -> Tensor:
    """scaled_dot_product_attention of the H heads packed in qkv (B, T, 3C), merged back: -> (B, T, C).

    Equal to splitting qkv into q, k, v, splitting each into heads (B, H, T, D), attending and merging the heads,
    which is what it runs under `tinygrad_lite.set_fused(False)` (packed_self_attention_reference).
    """
    if not is_fused_enabled():
        return packed_self_attention_reference(qkv, n_heads, attn_mask, is_causal, dropout_p, scale, rng)
    _check_packed(qkv, n_heads)
    B, T, C3 = qkv.shape
    scale = _scale_and_dropout(C3 // (3 * n_heads), scale, dropout_p)
    blocked, additive = _masks(attn_mask, B, n_heads, n_heads, T, T, qkv.dtype)
    keep = _dropout_keep(rng, (B, n_heads, T, T), dropout_p) if dropout_p > 0.0 else None
    return PackedSelfAttention.apply(qkv, n_heads=n_heads, blocked=blocked, additive=additive, causal=is_causal,
                                     scale=scale, keep=keep, p=dropout_p)
