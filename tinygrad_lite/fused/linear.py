"""Linear and Embedding as one Function each: the products and the lookups of every model here.

The reference path (`tinygrad_lite.functional`, set_fused(False)) writes them as `x @ W + b` and `weight[ids]`.
These fold the batch axes into rows, so each gradient is a single matrix product, and scatter an embedding's
gradient with a sort instead of np.add.at.
"""

from __future__ import annotations

import numpy as np

from ..function import Function


class Linear(Function):
    """y = x @ W + b with W stored (in, out): dx = g @ W^T, dW = x^T g, db = sum(g) over the rows."""

    def forward(self, x, w, *b):
        if x.shape[-1] != w.shape[0]:
            raise ValueError(f"linear: input of shape {x.shape} and weight of shape {w.shape} are not aligned "
                             f"({x.shape[-1]} != {w.shape[0]})")
        self.x, self.w, self.has_bias = x, w, bool(b)
        # One (N, in) @ (in, out) product over all rows: np.matmul on a stack (B, T, in) @ (in, out) would call the
        # BLAS once per batch element.
        y = x.reshape(-1, x.shape[-1]) @ w  # (N, out)
        if b:
            y += b[0]
        return y.reshape(x.shape[:-1] + (w.shape[1],))

    def backward(self, g):
        x, w = self.x, self.w
        g2 = g.reshape(-1, g.shape[-1])  # (N, out)
        need = self.needs_input_grad
        dx = (g2 @ w.T).reshape(x.shape) if need[0] else None
        dw = x.reshape(-1, x.shape[-1]).T @ g2 if need[1] else None  # (in, out)
        if not self.has_bias:
            return dx, dw
        return dx, dw, (g2.sum(axis=0) if need[2] else None)


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
