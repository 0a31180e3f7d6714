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
from tinygrad_lite.threads import parallel_map, parts_for, split

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


def _masks(attn_mask, q, k, dtype):
    """-> (blocked, additive): 'may not attend' boolean and additive float masks, each None or broadcastable to
    (B, Hkv, G, Tq, Tk)."""
    if attn_mask is None:
        return None, None
    B, H, Tq, _ = q.shape
    Hkv, Tk = k.shape[1], k.shape[2]
    m = np.asarray(attn_mask.data if isinstance(attn_mask, Tensor) else attn_mask)
    m5 = _mask5(m, B, H, Hkv, Tq, Tk)
    if m5.dtype == bool:
        return ~m5, None
    if np.issubdtype(m5.dtype, np.floating):
        return None, m5.astype(dtype, copy=False)
    raise TypeError(f"attention: attn_mask must be boolean or float, got dtype {m5.dtype}")


def _dropout_keep(rng, shape, p):
    """The keep mask, drawn exactly as tinygrad_lite.functional.dropout draws it (so the two paths agree)."""
    rng = F._default_rng if rng is None else rng
    return rng.random(shape, dtype=np.float32) >= p


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


# Calls with fewer scores than this run on one thread: splitting them would cost more than it saves.
PARALLEL_MIN_SCORES = 1 << 17


def _parts(B: int, Hkv: int, n_scores: int) -> list:
    """(batch slice, K/V-head slice) pairs splitting the work between the threads of tinygrad_lite.threads."""
    threads = parts_for(n_scores, PARALLEL_MIN_SCORES)
    if threads <= 1:
        return [(slice(None), slice(None))]
    if B >= 2:
        return [(b, slice(None)) for b in split(B, threads)]
    return [(slice(None), h) for h in split(Hkv, threads)]


def _share(m, part):
    """A part's share of an array (b, hkv, ...) whose batch axes may be 1 (broadcast): those stay whole."""
    if m is None:
        return None
    b, h = part
    return m[b if m.shape[0] > 1 else slice(None), h if m.shape[1] > 1 else slice(None)]


class ScaledDotProductAttention(Function):
    """Fused attention. With Qs = Q * scale, S = Qs K^T, P = softmax(S) (masked, then dropped out: Pd), O = Pd V:

        dV = Pd^T dO
        dPd = dO V^T,  dP = dPd * keep / (1 - p)
        dS = P * (dP - rowsum(dP * P))     the softmax Jacobian applied to dP
        dQ = dS K * scale,  dK = dS^T Qs

    How it is laid out:
    - rowsum(dP * P) equals rowsum(dO * O) (expand O = Pd V), a (Tq, D) product instead of a (Tq, Tk) one, as in
      FlashAttention's backward.
    - The softmax is kept unnormalised, E = exp(S - m), with l = rowsum(E): O = (E V) / l, and the backward
      scales the small (Tq, D) arrays dO and rowsum(dO * O) by 1/l instead of the big (Tq, Tk) ones. The shift m
      is the row maximum, or 0 when the scores are provably small (see EXP_SAFE).
    - Queries are laid out as rows (time, group) of a (B, Hkv, Tq * G, D) array: a group's G query heads share one
      K/V head, so every product is one matrix product per K/V head, K and V are never copied per query head, and
      the sums over the group in dK and dV are part of those products.
    - With is_causal, queries are processed in blocks that multiply only against the keys they can see.
    - Batch elements are independent, so large calls split the batch between threads (tinygrad_lite.threads).
    """

    def forward(self, q, k, v, blocked=None, additive=None, causal=False, scale=1.0, keep=None, p=0.0,
                weights_out=None, block=None):
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
        self.blocks, self.parts, self.G = query_blocks(Tq, Tk, causal, block), _parts(B, Hkv, B * H * Tq * Tk), G
        O = np.empty((B, Hkv, Tq * G, Dv), dtype=q.dtype)

        def run(part):
            b, h = part
            return self._forward_part(qs[b, h], k[b, h], v[b, h], _share(blocked, part), _share(additive, part),
                                      _share(keep, part), O[b, h], causal, bounded, p)

        saved = parallel_map(run, self.parts)
        if weights_out is not None:
            weights_out.append(self._weights(saved, B, Hkv, Tq, Tk))
        if any(self.needs_input_grad):
            self.qs, self.k, self.v, self.O, self.saved, self.scale = qs, k, v, O, saved, scale
        return _from_rows(O, G)  # (B, H, Tq, Dv)

    def _forward_part(self, qs, k, v, blocked, additive, keep, O, causal, bounded, p) -> list:
        """Attention for one part of the batch, written into O; returns what backward needs, per query block."""
        G, (B, Hkv, _, _), Tk = self.G, qs.shape, k.shape[2]
        Tq = qs.shape[2] // G
        not_causal = ~causal_mask(Tq, Tk)[:, None, :] if causal else None  # (Tq, 1, Tk)
        masked = causal or blocked is not None or additive is not None
        saved = []
        for i0, i1, kend in self.blocks:
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
            saved.append((E, Ed, drop, linv))
        return saved

    def _weights(self, saved, B, Hkv, Tq, Tk):
        """The normalised weights P (B, H, Tq, Tk) before dropout, zero where a block skipped keys (read-only)."""
        G = self.G
        P = np.zeros((B, Hkv, Tq * G, Tk), dtype=saved[0][0][0].dtype)
        for (b, h), part_saved in zip(self.parts, saved):
            for (i0, i1, kend), (E, _, _, linv) in zip(self.blocks, part_saved):
                P[b, h, i0 * G : i1 * G, :kend] = E * linv
        P = _from_rows(P, G)
        P.flags.writeable = False
        return P

    def backward(self, g):
        qs, k, v, O, G = self.qs, self.k, self.v, self.O, self.G
        need_q, need_k, need_v = self.needs_input_grad
        dO = _to_rows(g, G)  # (B, Hkv, Tq*G, Dv)
        Drow = (dO * O).sum(axis=-1, keepdims=True)  # rowsum(dP * P) = rowsum(dO * O)
        dq = np.empty(qs.shape, dtype=g.dtype) if need_q else None
        dk = np.zeros(k.shape, dtype=g.dtype) if need_k else None
        dv = np.zeros(v.shape, dtype=g.dtype) if need_v else None

        def run(args):
            (b, h), saved = args
            self._backward_part(saved, qs[b, h], k[b, h], v[b, h], dO[b, h], Drow[b, h],
                                *(None if d is None else d[b, h] for d in (dq, dk, dv)))

        parallel_map(run, list(zip(self.parts, self.saved)))
        if need_q:
            dq *= self.scale
            dq = _from_rows(dq, G)  # (B, H, Tq, D)
        return dq, dk, dv

    def _backward_part(self, saved, qs, k, v, dO, Drow, dq, dk, dv) -> None:
        """Gradients for one part of the batch, written into the views dq, dk, dv (None when not needed)."""
        G = self.G
        for (i0, i1, kend), (E, Ed, drop, linv) in zip(self.blocks, saved):
            rows = slice(i0 * G, i1 * G)
            dOs = dO[:, :, rows] * linv  # dO / l: (B, Hkv, n*G, Dv)
            if dv is not None:
                dv[:, :, :kend] += np.matmul(np.swapaxes(Ed, -1, -2), dOs)  # Pd^T dO, summed over the group
            if dq is None and dk is None:
                continue
            dP = np.matmul(dOs, np.swapaxes(v[:, :, :kend], -1, -2))  # dPd / l: (B, Hkv, n*G, kend)
            if drop is not None:
                dP *= drop
            dP -= Drow[:, :, rows] * linv
            dP *= E  # dS = P * (dP - rowsum(dP * P)) = E * (dP / l - rowsum / l)
            if dq is not None:
                dq[:, :, rows] = np.matmul(dP, k[:, :, :kend])
            if dk is not None:
                dk[:, :, :kend] += np.matmul(np.swapaxes(dP, -1, -2), qs[:, :, rows])


def _to_rows(x: np.ndarray, G: int) -> np.ndarray:
    """(B, H, T, D) -> (B, Hkv, T * G, D), row t*G + g (a copy unless G = 1)."""
    B, H, T, D = x.shape
    return x.reshape(B, H // G, G, T, D).transpose(0, 1, 3, 2, 4).reshape(B, H // G, T * G, D)


def _from_rows(x: np.ndarray, G: int) -> np.ndarray:
    """(B, Hkv, T * G, D) -> (B, H, T, D), the inverse of _to_rows."""
    B, Hkv, TG, D = x.shape
    return x.reshape(B, Hkv, TG // G, G, D).transpose(0, 1, 3, 2, 4).reshape(B, Hkv * G, TG // G, D)


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, attn_mask=None, is_causal: bool = False,
                                 dropout_p: float = 0.0, scale: float | None = None,
                                 rng: np.random.Generator | None = None, return_weights: bool = False):
    """softmax(q k^T * scale + mask) v for q (B, H, Tq, D), k (B, Hkv, Tk, D), v (B, Hkv, Tk, Dv) -> (B, H, Tq, Dv).

    `dropout_p` > 0 drops attention weights (whatever the module mode: pass 0 in eval, as with torch). With
    `return_weights=True` returns (output, weights), the weights a read-only (B, H, Tq, Tk) Tensor before dropout,
    without gradient. Masks are constants (no gradient).
    """
    _check(q, k, v)
    blocked, additive = _masks(attn_mask, q, k, q.dtype)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    keep = None
    if dropout_p > 0.0:
        if dropout_p >= 1.0:
            raise ValueError(f"attention: dropout_p must be < 1, got {dropout_p}")
        keep = _dropout_keep(rng, q.shape[:3] + (k.shape[2],), dropout_p)
    sink = [] if return_weights else None
    out = ScaledDotProductAttention.apply(q, k, v, blocked=blocked, additive=additive, causal=is_causal, scale=scale,
                                          keep=keep, p=dropout_p, weights_out=sink)
    return (out, Tensor(sink[0])) if return_weights else out


def scaled_dot_product_attention_unfused(q: Tensor, k: Tensor, v: Tensor, attn_mask=None, is_causal: bool = False,
                                         dropout_p: float = 0.0, scale: float | None = None,
                                         rng: np.random.Generator | None = None, return_weights: bool = False):
    """The same attention composed from Tensor ops: about ten graph nodes instead of one, each backward generic.

    Written for reading; `scaled_dot_product_attention` is the one to use.
    """
    _check(q, k, v)
    blocked, additive = _masks(attn_mask, q, k, q.dtype)
    B, H, Tq, D = q.shape
    Hkv, Tk = k.shape[1], k.shape[2]
    scale = 1.0 / math.sqrt(D) if scale is None else float(scale)
    q5 = q.reshape(B, Hkv, H // Hkv, Tq, D)  # (B, Hkv, G, Tq, D): query heads grouped by their K/V head
    k5, v5 = k.unsqueeze(2), v.unsqueeze(2)  # (B, Hkv, 1, Tk, D): broadcast over the group by matmul
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


class PackedSelfAttention(ScaledDotProductAttention):
    """Self-attention from GPT-2's fused projection qkv (B, T, 3C) = [Q | K | V] straight to merged heads (B, T, C).

    The same math as ScaledDotProductAttention (its forward and backward run on views of qkv), without the graph
    nodes around it: no slicing of qkv into three tensors (whose backwards would each fill a (B, T, 3C) zero array
    to be summed), no head split and merge. The gradient comes back as one (B, T, 3C) array.
    """

    def forward(self, qkv, n_heads=1, **kwargs):
        B, T, C3 = qkv.shape
        heads = qkv.reshape(B, T, 3, n_heads, C3 // (3 * n_heads))
        q, k, v = (heads[:, :, i].transpose(0, 2, 1, 3) for i in range(3))  # views (B, H, T, D)
        self.needs_input_grad = self.needs_input_grad * 3  # the parent's backward reads one flag per q, k, v
        out = super().forward(q, k, v, **kwargs)  # (B, H, T, D)
        return out.transpose(0, 2, 1, 3).reshape(B, T, C3 // 3)  # (B, T, C)

    def backward(self, g):
        B, T, C = g.shape
        H = self.k.shape[1]
        dq, dk, dv = super().backward(g.reshape(B, T, H, C // H).transpose(0, 2, 1, 3))  # each (B, H, T, D)
        dqkv = np.empty((B, T, 3, H, C // H), dtype=g.dtype)
        for i, d in enumerate((dq, dk, dv)):
            dqkv[:, :, i] = d.transpose(0, 2, 1, 3)
        return dqkv.reshape(B, T, 3 * C)


def packed_self_attention(qkv: Tensor, n_heads: int, attn_mask=None, is_causal: bool = False,
                          dropout_p: float = 0.0, scale: float | None = None,
                          rng: np.random.Generator | None = None) -> Tensor:
    """scaled_dot_product_attention of the H heads packed in qkv (B, T, 3C), merged back: -> (B, T, C).

    Equal to splitting qkv into q, k, v, splitting each into heads (B, H, T, D), attending and merging the heads.
    """
    if qkv.ndim != 3 or qkv.shape[-1] % (3 * n_heads):
        raise ValueError(f"packed_self_attention: qkv must be (B, T, 3C) with C divisible by {n_heads} heads, "
                         f"got {qkv.shape}")
    B, T, C3 = qkv.shape
    head_shape = (B, n_heads, T, C3 // (3 * n_heads))
    if not np.issubdtype(qkv.dtype, np.floating):
        raise TypeError(f"packed_self_attention: qkv needs a float dtype, got {qkv.dtype}")
    q_like = np.broadcast_to(np.zeros((), qkv.dtype), head_shape)  # shapes for the mask helpers
    blocked, additive = _masks(attn_mask, q_like, q_like, qkv.dtype)
    scale = 1.0 / math.sqrt(head_shape[-1]) if scale is None else float(scale)
    keep = None
    if dropout_p > 0.0:
        if dropout_p >= 1.0:
            raise ValueError(f"attention: dropout_p must be < 1, got {dropout_p}")
        keep = _dropout_keep(rng, head_shape[:3] + (T,), dropout_p)
    return PackedSelfAttention.apply(qkv, n_heads=n_heads, blocked=blocked, additive=additive, causal=is_causal,
                                     scale=scale, keep=keep, p=dropout_p, weights_out=None)
