"""Fused neural-network ops: one Function each, with a hand-written backward.

Composing cross-entropy or layer norm from primitive ops works (tests prove these equal the composition) but
builds a dozen graph nodes and temporaries per call; a fused Function does the same math in a few NumPy calls and
is where the derivations are easiest to read.

    import tinygrad_lite.functional as F
"""

from __future__ import annotations

from functools import partial

import numpy as np

from .function import Function
from .tensor import Tensor
from .threads import num_threads, parallel_map, parts_for, split

# --------------------------------------------------------------------------------------------- cross-entropy


class CrossEntropy(Function):
    """Softmax cross-entropy with label smoothing (Szegedy et al. 2016), PyTorch's semantics.

    With p = softmax(z) over C classes and smoothing e, the target distribution is q = (1 - e) onehot(t) + e / C and
    loss = -sum_c q_c log p_c. Its gradient with respect to the logits is simply p - q. Targets equal to
    ignore_index contribute no loss and no gradient; "mean" divides by the number of targets that are not ignored.
    """

    def forward(self, logits, targets, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
        C = logits.shape[-1]
        z = logits.reshape(-1, C)  # (N, C)
        t = targets.reshape(-1)  # (N,)
        valid = t != ignore_index
        bad = valid & ((t < 0) | (t >= C))
        if bad.any():
            raise IndexError(f"cross_entropy: target {int(t[bad][0])} is out of range for {C} classes")
        safe_t = np.where(valid, t, 0)
        shifted = z - z.max(axis=1, keepdims=True)
        lse = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        logp = shifted - lse  # (N, C) log-probabilities
        nll = -logp[np.arange(len(t)), safe_t]
        if label_smoothing:
            loss = (1.0 - label_smoothing) * nll - label_smoothing * logp.mean(axis=1)
        else:
            loss = nll
        loss = np.where(valid, loss, 0).astype(logits.dtype, copy=False)
        self.logp, self.t, self.valid, self.eps, self.reduction = logp, safe_t, valid, label_smoothing, reduction
        self.in_shape, self.out_shape = logits.shape, targets.shape
        self.n_valid = int(valid.sum())
        if reduction == "none":
            return loss.reshape(targets.shape)
        if reduction == "sum":
            return np.asarray(loss.sum(), dtype=logits.dtype)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(loss.sum() / logits.dtype.type(self.n_valid), dtype=logits.dtype)  # 0/0 = nan as torch

    def backward(self, g):
        grad = np.exp(self.logp)  # p
        N, C = grad.shape
        rows = np.arange(N)
        if self.eps:
            grad -= self.eps / C
        grad[rows, self.t] -= 1.0 - self.eps
        if self.reduction == "none":
            scale = g.reshape(-1, 1) * self.valid[:, None]
        else:
            w = 1.0 / self.n_valid if self.reduction == "mean" and self.n_valid else 1.0
            scale = self.valid.astype(grad.dtype)[:, None] * (float(g) * w)  # bool -> float32 first: no float64
        grad *= scale
        return grad.reshape(self.in_shape), None


def cross_entropy(logits: Tensor, targets, ignore_index: int = -100, label_smoothing: float = 0.0,
                  reduction: str = "mean") -> Tensor:
    """Cross-entropy of logits (..., C) against integer targets (...)."""
    targets = targets if isinstance(targets, Tensor) else Tensor(np.asarray(targets))
    if not np.issubdtype(targets.dtype, np.integer):
        raise TypeError(f"cross_entropy: targets must be integers (class indices), got dtype {targets.dtype}")
    if logits.shape[:-1] != targets.shape:
        raise ValueError(f"cross_entropy: logits of shape {logits.shape} need targets of shape {logits.shape[:-1]}, "
                         f"got {targets.shape}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    # float(): a NumPy float64 smoothing factor would upcast a float32 loss
    return CrossEntropy.apply(logits, targets, ignore_index=ignore_index, label_smoothing=float(label_smoothing),
                              reduction=reduction)


# --------------------------------------------------------------------------------------------- normalisation


def _row_means(a: np.ndarray) -> np.ndarray:
    """(n, C) -> (n,) row means as one matrix-vector product: BLAS does it about 4x faster than a.mean(axis=-1)."""
    return a @ np.full(a.shape[-1], 1.0 / max(a.shape[-1], 1), dtype=a.dtype)


def _layer_norm_forward(x, xhat, rstd, y, w, b, eps, rows):
    """LayerNorm of the rows `rows` of x (N, C), written into xhat, rstd (N,) and y."""
    x, xhat, rstd, y = x[rows], xhat[rows], rstd[rows], y[rows]
    np.subtract(x, _row_means(x)[:, None], out=xhat)  # centred
    var = _row_means(np.multiply(xhat, xhat, out=y))  # y is scratch until the end
    var += eps
    np.divide(1.0, np.sqrt(var, out=var), out=rstd)
    xhat *= rstd[:, None]
    if w is not None:
        np.multiply(xhat, w, out=y)
    else:
        y[...] = xhat
    if b is not None:
        y += b


def _layer_norm_backward(g, xhat, rstd, w, has_bias, dx, rows):
    """dx for the rows `rows` of g (N, C), written into dx; returns this part's sums over rows of g * xhat and g
    (its share of the weight and bias gradients), None for what the layer does not have."""
    g, xhat, rstd, dx = g[rows], xhat[rows], rstd[rows], dx[rows]
    np.multiply(g, xhat, out=dx)  # dx is scratch until the last lines
    dw = dx.sum(axis=0) if w is not None else None
    db = g.sum(axis=0) if has_bias else None
    dxhat = g
    if w is not None:
        dx *= w  # dxhat * xhat
        dxhat = g * w
    m2 = _row_means(dx)  # mean(dxhat * xhat)
    np.multiply(xhat, m2[:, None], out=dx)
    np.subtract(dxhat, dx, out=dx)
    dx -= _row_means(dxhat)[:, None]
    dx *= rstd[:, None]
    return dw, db


class LayerNorm(Function):
    """y = (x - mean) / sqrt(var + eps) * w + b over the last axis (Ba, Kiros & Hinton 2016).

    With xhat the normalised input and dxhat = g * w, the input gradient is
    dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)): the two means remove the components of the
    gradient that would change the mean and the variance, which normalisation cancels anyway.

    Rows are independent, so large inputs are split by rows between the threads of tinygrad_lite.threads; the row
    means are matrix-vector products and every pass writes into a preallocated buffer.
    """

    def forward(self, x, *wb, eps=1e-5, has_weight=True, has_bias=True):
        C = x.shape[-1]
        x2 = x.reshape(-1, C)  # (N, C)
        xhat, y = np.empty(x2.shape, x.dtype), np.empty(x2.shape, x.dtype)
        rstd = np.empty(x2.shape[0], x.dtype)
        self.w = wb[0] if has_weight else None
        self.has_bias = has_bias
        b = wb[-1] if has_bias else None
        _by_rows(partial(_layer_norm_forward, x2, xhat, rstd, y, self.w, b, eps), x2.shape)
        self.xhat, self.rstd = xhat, rstd
        return y.reshape(x.shape)

    def backward(self, g):
        xhat = self.xhat
        g2 = g.reshape(xhat.shape)
        dx = np.empty(xhat.shape, g.dtype)
        parts = _by_rows(partial(_layer_norm_backward, g2, xhat, self.rstd, self.w, self.has_bias, dx), xhat.shape)
        out = [dx.reshape(g.shape)]
        if self.w is not None:
            out.append(sum(dw for dw, _ in parts))
        if self.has_bias:
            out.append(sum(db for _, db in parts))
        return tuple(out)


# LayerNorm makes a few cheap passes (about 25 us per 100k float32 elements each): below this many elements, half
# of its work is shorter than a hand-off to the pool (50-150 us measured on the 2-core machine).
LAYER_NORM_MIN_PARALLEL = 1 << 18


def _by_rows(kernel, shape) -> list:
    """kernel(rows) over the rows of an (N, C) array, one contiguous block of rows per thread when it is large."""
    n_rows, width = shape
    parts = parts_for(n_rows * width, LAYER_NORM_MIN_PARALLEL)
    return parallel_map(kernel, split(n_rows, parts))


def layer_norm(x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and p.shape != x.shape[-1:]:
            raise ValueError(f"layer_norm: {name} of shape {p.shape} for input of shape {x.shape}")
    params = [p for p in (weight, bias) if p is not None]
    return LayerNorm.apply(x, *params, eps=eps, has_weight=weight is not None, has_bias=bias is not None)


class RMSNorm(Function):
    """y = x / sqrt(mean(x^2) + eps) * w over the last axis (Zhang & Sennrich 2019).

    With xhat = x * r, r = 1 / rms, and dxhat = g * w: dx = r * (dxhat - xhat * mean(dxhat * xhat)).
    """

    def forward(self, x, *w, eps=1e-6):
        self.r = 1.0 / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps)
        self.xhat = x * self.r
        self.w = w[0] if w else None
        return self.xhat * self.w if w else self.xhat

    def backward(self, g):
        xhat = self.xhat
        dxhat = g * self.w if self.w is not None else g
        dx = self.r * (dxhat - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))
        if self.w is None:
            return (dx,)
        g2 = g.reshape(-1, g.shape[-1])
        return dx, (g2 * xhat.reshape(g2.shape)).sum(axis=0)


def rms_norm(x: Tensor, weight: Tensor | None = None, eps: float = 1e-6) -> Tensor:
    if weight is not None and weight.shape != x.shape[-1:]:
        raise ValueError(f"rms_norm: weight of shape {weight.shape} for input of shape {x.shape}")
    return RMSNorm.apply(x, *([weight] if weight is not None else []), eps=eps)


# --------------------------------------------------------------------------------------------- the rest


class Dropout(Function):
    """Inverted dropout (Srivastava et al. 2014): zero with probability p, scale survivors by 1/(1-p)."""

    def forward(self, x, mask, scale):
        self.m = mask * x.dtype.type(scale)  # (mask / (1-p)) once, reused by backward
        return x * self.m

    def backward(self, g):
        return g * self.m


_default_rng = np.random.default_rng()


def dropout(x: Tensor, p: float = 0.5, training: bool = True, rng: np.random.Generator | None = None) -> Tensor:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    rng = _default_rng if rng is None else rng
    if p == 1.0:
        return x * 0.0
    mask = rng.random(x.shape, dtype=np.float32) >= p
    return Dropout.apply(x, mask=mask, scale=1.0 / (1.0 - p))


class Embedding(Function):
    """Row lookup weight[ids]; backward scatters each output row's gradient back onto its row, repeats adding up."""

    def forward(self, weight, ids):
        self.ids, self.shape = ids, weight.shape
        return weight[ids]

    def backward(self, g):
        # A scatter-add. np.add.at does it row by row, about 5x slower than sorting the rows by id (stable: repeats
        # of an id keep their order) and summing each run of equal ids with one reduceat.
        ids = self.ids.reshape(-1)  # (N,)
        grad = np.zeros(self.shape, dtype=g.dtype)
        if ids.size == 0:
            return grad, None
        order = np.argsort(ids, kind="stable")
        sorted_ids = ids[order]
        starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])  # first row of each run
        g2 = g.reshape(-1, self.shape[-1])  # (N, C)
        grad[sorted_ids[starts]] = np.add.reduceat(g2[order], starts, axis=0)
        return grad, None


def embedding(weight: Tensor, ids) -> Tensor:
    ids = ids if isinstance(ids, Tensor) else Tensor(np.asarray(ids))
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"embedding: ids must be integers, got dtype {ids.dtype}")
    if ids.size and (ids.data.min() < 0 or ids.data.max() >= weight.shape[0]):
        bad = ids.data[(ids.data < 0) | (ids.data >= weight.shape[0])][0]
        raise IndexError(f"embedding: id {int(bad)} is out of range for a table of {weight.shape[0]} rows")
    return Embedding.apply(weight, ids)


# Products of at least this many multiply-adds are split between the threads; below it the hand-off (about 25 µs)
# costs more than the second core saves.
PARALLEL_MIN_MACS = 1 << 20


def _run_all(tasks: list, macs: int) -> None:
    """Call every task: concurrently on the pool when the product is large, else here, one after the other."""
    if len(tasks) > 1 and macs >= PARALLEL_MIN_MACS:
        parallel_map(lambda task: task(), tasks)
    else:
        for task in tasks:
            task()


class Linear(Function):
    """y = x @ W + b with W stored (in, out). dx = g @ W^T, dW = x^T g and db = sum(g), with the batch axes of x
    folded into rows so each gradient is a single matrix product.

    The products are split between the threads of tinygrad_lite.threads, each part a BLAS call on its own thread:
    forward by blocks of rows of x; backward dx and dW side by side (equal work: N in out multiply-adds each), each
    cut further by rows when there are more than two threads.
    """

    def forward(self, x, w, *b):
        if x.shape[-1] != w.shape[0]:
            raise ValueError(f"linear: input of shape {x.shape} and weight of shape {w.shape} are not aligned "
                             f"({x.shape[-1]} != {w.shape[0]})")
        self.x, self.w, self.has_bias = x, w, bool(b)
        # One (N, in) @ (in, out) product over all rows: np.matmul on a stack (B, T, in) @ (in, out) would call the
        # BLAS once per batch element, each call too small to keep the threads busy (measured 1.2-3x slower).
        x2 = x.reshape(-1, x.shape[-1])  # (N, in)
        y = np.empty((x2.shape[0], w.shape[1]), dtype=np.result_type(x2, w))  # (N, out)

        def rows(part):
            np.matmul(x2[part], w, out=y[part])
            if b:
                y[part] += b[0]

        macs = y.size * w.shape[0]
        parts = split(x2.shape[0], parts_for(macs, PARALLEL_MIN_MACS))
        _run_all([partial(rows, part) for part in parts], macs)
        return y.reshape(x.shape[:-1] + (w.shape[1],))

    def backward(self, g):
        x, w = self.x, self.w
        g2 = g.reshape(-1, g.shape[-1])  # (N, out)
        x2 = x.reshape(-1, x.shape[-1])  # (N, in)
        need_x, need_w = self.needs_input_grad[0], self.needs_input_grad[1]
        dx = np.empty(x2.shape, dtype=np.result_type(g2, w)) if need_x else None  # (N, in)
        dw = np.empty(w.shape, dtype=np.result_type(x2, g2)) if need_w else None  # (in, out)
        threads = num_threads()
        x_parts = (threads + 1) // 2 if need_w else threads  # dx gets half the threads when dW needs the rest
        w_parts = threads - x_parts if need_x else threads
        tasks = []
        if need_x:
            tasks += [partial(np.matmul, g2[part], w.T, out=dx[part]) for part in split(x2.shape[0], x_parts)]
        if need_w:  # dW rows i = x[:, i]^T g: a block of input features per task
            tasks += [partial(np.matmul, x2[:, part].T, g2, out=dw[part]) for part in split(w.shape[0], w_parts)]
        _run_all(tasks, g2.size * w.shape[0])
        dx = None if dx is None else dx.reshape(x.shape)
        if not self.has_bias:
            return dx, dw
        return dx, dw, (g2.sum(axis=0) if self.needs_input_grad[2] else None)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    return Linear.apply(x, weight, *([bias] if bias is not None else []))


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    return x.softmax(axis)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    return x.log_softmax(axis)


def gelu(x: Tensor, approximate: str = "tanh") -> Tensor:
    return x.gelu(approximate)


def relu(x: Tensor) -> Tensor:
    return x.relu()


def silu(x: Tensor) -> Tensor:
    return x.silu()
