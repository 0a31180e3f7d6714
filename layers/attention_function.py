"""Scaled dot-product attention (Vaswani et al. 2017, eq. 1): O = softmax(Q K^T * scale + mask) V, scale = 1/sqrt(D).

Two implementations of the same math:

- `scaled_dot_product_attention`: one fused Function with a hand-written backward, the fast path.
- `scaled_dot_product_attention_unfused`: composed from Tensor ops (matmul, masked_fill, softmax, dropout), for
  reading and stepping through; tests prove both agree, forward and backward.

Shapes: q (B, H, Tq, D), k (B, Hkv, Tk, D), v (B, Hkv, Tk, Dv), H a multiple of Hkv. With Hkv < H this is grouped-query
attention (Ainslie et al. 2023; Hkv = 1 is multi-query attention, Shazeer 2019): the G = H / Hkv query heads of a
group share one K/V head. The fused version never copies K/V per head: the group's queries are laid side by side,
q -> (B, Hkv, G * Tq, D), so Q K^T is one matrix product per K/V head, and the sums over the group that the backward
needs (dK, dV) fall out of the same products.

Masks: `attn_mask` is boolean (True = may attend) or an additive float mask, broadcastable to (B, H, Tq, Tk).
`is_causal` lets query i see keys j <= i + (Tk - Tq): aligned to the end, so Tq new tokens appended after a cache of
Tk - Tq keys see the whole past. (torch's is_causal aligns to the start instead; the two agree when Tq == Tk.)
A query that may see no key at all gets zero weights and a zero output, not NaN.
"""

from __future__ import annotations

import math

import numpy as np

import tinygrad_lite.functional as F
from tinygrad_lite import Function, Tensor

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


def _mask5(m: np.ndarray, B: int, H: int, Hkv: int, Tq: int, Tk: int) -> np.ndarray:
    """A mask broadcastable to (B, H, Tq, Tk), reshaped to broadcast against (B, Hkv, G, Tq, Tk)."""
    try:
        ok = np.broadcast_shapes(m.shape, (B, H, Tq, Tk)) == (B, H, Tq, Tk)
    except ValueError:
        ok = False
    if not ok or m.ndim > 4:
        raise ValueError(f"attention: attn_mask of shape {m.shape} does not broadcast to (B, H, Tq, Tk) = "
                         f"{(B, H, Tq, Tk)}")
    m = m.reshape((1,) * (4 - m.ndim) + m.shape)
    b, h, tq, tk = m.shape
    return m.reshape(b, Hkv, H // Hkv, tq, tk) if h == H else m.reshape(b, 1, 1, tq, tk)


def _masks(attn_mask, is_causal, q, k, dtype):
    """-> (blocked, additive): boolean 'may not attend' and additive float masks, each None or 5-D broadcastable."""
    B, H, Tq, _ = q.shape
    Hkv, Tk = k.shape[1], k.shape[2]
    blocked = additive = None
    if attn_mask is not None:
        m = np.asarray(attn_mask.data if isinstance(attn_mask, Tensor) else attn_mask)
        m5 = _mask5(m, B, H, Hkv, Tq, Tk)
        if m5.dtype == bool:
            blocked = ~m5
        elif np.issubdtype(m5.dtype, np.floating):
            additive = m5.astype(dtype, copy=False)
        else:
            raise TypeError(f"attention: attn_mask must be boolean or float, got dtype {m5.dtype}")
    if is_causal:
        not_causal = ~causal_mask(Tq, Tk)  # (Tq, Tk) broadcasts against (B, Hkv, G, Tq, Tk)
        blocked = not_causal if blocked is None else blocked | not_causal
    return blocked, additive


def _dropout_keep(rng, shape, p):
    """The keep mask, drawn exactly as tinygrad_lite.functional.dropout draws it (so the two paths agree)."""
    rng = F._default_rng if rng is None else rng
    return rng.random(shape, dtype=np.float32) >= p


class ScaledDotProductAttention(Function):
    """Fused attention. With Qs = Q * scale, S = Qs K^T, P = softmax(S) (masked, then dropped out: Pd), O = Pd V:

        dV = Pd^T dO
        dPd = dO V^T,  dP = dPd * keep / (1 - p)
        dS = P * (dP - rowsum(dP * P))     the softmax Jacobian applied to dP
        dQ = dS K * scale,  dK = dS^T Qs

    rowsum(dP * P) equals rowsum(dO * O) (expand O = Pd V), a (Tq, D) product instead of a (Tq, Tk) one: the trick
    FlashAttention's backward uses. All products run on (B, Hkv, G * Tq, .) views, so for grouped-query attention the
    group sums in dK and dV are part of the matrix products.
    """

    def forward(self, q, k, v, blocked=None, additive=None, scale=1.0, keep=None, p=0.0, weights_out=None):
        B, H, Tq, D = q.shape
        Hkv, Tk = k.shape[1], k.shape[2]
        G = H // Hkv
        qs = np.empty(q.shape, dtype=q.dtype)
        np.multiply(q, scale, out=qs)  # scaling Q costs Tq * D multiplies, scaling S would cost Tq * Tk
        qs = qs.reshape(B, Hkv, G * Tq, D)  # the group's queries side by side: no copy of K or V
        S = np.matmul(qs, np.swapaxes(k, -1, -2))  # (B, Hkv, G*Tq, Tk)
        S5 = S.reshape(B, Hkv, G, Tq, Tk)  # a view, for masks given per query head
        if additive is not None:
            S5 += additive
        if blocked is not None:
            np.copyto(S5, -np.inf, where=blocked)
        m = S.max(axis=-1, keepdims=True)  # (B, Hkv, G*Tq, 1)
        masked = blocked is not None or additive is not None
        if masked:
            m[~np.isfinite(m)] = 0.0  # a fully masked row: exp(-inf - 0) = 0 everywhere instead of NaN
        S -= m  # stable softmax: the largest logit becomes 0
        np.exp(S, out=S)
        denom = S.sum(axis=-1, keepdims=True)
        if masked:
            denom[denom == 0] = 1.0  # fully masked rows stay all zero
        S *= 1.0 / denom
        P = S  # (B, Hkv, G*Tq, Tk) attention weights
        if weights_out is not None:
            w = P.reshape(B, H, Tq, Tk)
            w.flags.writeable = False  # shared with backward: a read-only view
            weights_out.append(w)
        if keep is not None:
            self.drop = keep.reshape(P.shape) * P.dtype.type(1.0 / (1.0 - p))
            Pd = P * self.drop
        else:
            self.drop, Pd = None, P
        O = np.matmul(Pd, v)  # (B, Hkv, G*Tq, Dv)
        if any(self.needs_input_grad):
            self.qs, self.k, self.v, self.P, self.Pd, self.O, self.scale = qs, k, v, P, Pd, O, scale
            self.q_shape = q.shape
        return O.reshape(B, H, Tq, v.shape[-1])  # (B, H, Tq, Dv)

    def backward(self, g):
        qs, k, v, P, Pd, O = self.qs, self.k, self.v, self.P, self.Pd, self.O
        dO = g.reshape(O.shape)  # (B, Hkv, G*Tq, Dv)
        need_q, need_k, need_v = self.needs_input_grad
        dv = np.matmul(np.swapaxes(Pd, -1, -2), dO) if need_v else None  # (B, Hkv, Tk, Dv), summed over the group
        dq = dk = None
        if need_q or need_k:
            dP = np.matmul(dO, np.swapaxes(v, -1, -2))  # (B, Hkv, G*Tq, Tk)
            if self.drop is not None:
                dP *= self.drop
            dP -= (dO * O).sum(axis=-1, keepdims=True)  # rowsum(dP * P) = rowsum(dO * O)
            dP *= P
            dS = dP
            if need_q:
                dq = np.matmul(dS, k)
                dq *= self.scale
                dq = dq.reshape(self.q_shape)  # (B, H, Tq, D)
            if need_k:
                dk = np.matmul(np.swapaxes(dS, -1, -2), qs)  # (B, Hkv, Tk, D)
        return dq, dk, dv


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, attn_mask=None, is_causal: bool = False,
                                 dropout_p: float = 0.0, scale: float | None = None,
                                 rng: np.random.Generator | None = None, return_weights: bool = False):
    """softmax(q k^T * scale + mask) v for q (B, H, Tq, D), k (B, Hkv, Tk, D), v (B, Hkv, Tk, Dv) -> (B, H, Tq, Dv).

    `dropout_p` > 0 drops attention weights (whatever the module mode: pass 0 in eval, as with torch). With
    `return_weights=True` returns (output, weights), the weights a read-only (B, H, Tq, Tk) Tensor before dropout,
    without gradient. Masks are constants (no gradient).
    """
    _check(q, k, v)
    blocked, additive = _masks(attn_mask, is_causal, q, k, q.dtype)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    keep = None
    if dropout_p > 0.0:
        if dropout_p >= 1.0:
            raise ValueError(f"attention: dropout_p must be < 1, got {dropout_p}")
        keep = _dropout_keep(rng, q.shape[:3] + (k.shape[2],), dropout_p)
    sink = [] if return_weights else None
    out = ScaledDotProductAttention.apply(q, k, v, blocked=blocked, additive=additive, scale=scale, keep=keep,
                                          p=dropout_p, weights_out=sink)
    return (out, Tensor(sink[0])) if return_weights else out


def scaled_dot_product_attention_unfused(q: Tensor, k: Tensor, v: Tensor, attn_mask=None, is_causal: bool = False,
                                         dropout_p: float = 0.0, scale: float | None = None,
                                         rng: np.random.Generator | None = None, return_weights: bool = False):
    """The same attention composed from Tensor ops: about ten graph nodes instead of one, each backward generic.

    Written for reading; `scaled_dot_product_attention` is the one to use.
    """
    _check(q, k, v)
    blocked, additive = _masks(attn_mask, is_causal, q, k, q.dtype)
    B, H, Tq, D = q.shape
    Hkv, Tk = k.shape[1], k.shape[2]
    scale = 1.0 / math.sqrt(D) if scale is None else float(scale)
    q5 = q.reshape(B, Hkv, H // Hkv, Tq, D)  # (B, Hkv, G, Tq, D): query heads grouped by their K/V head
    k5, v5 = k.unsqueeze(2), v.unsqueeze(2)  # (B, Hkv, 1, Tk, D): broadcast over the group by matmul
    scores = (q5 @ k5.transpose(-1, -2)) * scale  # (B, Hkv, G, Tq, Tk)
    if additive is not None:
        scores = scores + Tensor(additive)
    if blocked is not None:
        scores = scores.masked_fill(blocked, -np.inf)
    # A row with no visible key would be softmax(-inf, ..., -inf) = 0/0. Give it finite scores, then zero weights.
    dead = ~np.isfinite(scores.data.max(axis=-1, keepdims=True))
    if dead.any():
        scores = scores.masked_fill(dead, 0.0)
    weights = scores.softmax(axis=-1)
    if dead.any():
        weights = weights.masked_fill(dead, 0.0)
    returned = weights.data.reshape(B, H, Tq, Tk)
    if return_weights:
        returned = returned.view()
        returned.flags.writeable = False  # the array softmax saved for its backward
    if dropout_p > 0.0:
        weights = F.dropout(weights, dropout_p, training=True, rng=F._default_rng if rng is None else rng)
    out = (weights @ v5).reshape(B, H, Tq, v.shape[-1])  # (B, Hkv, G, Tq, Dv) -> (B, H, Tq, Dv)
    return (out, Tensor(returned)) if return_weights else out
