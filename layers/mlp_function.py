"""GPT-2's MLP as one fused Function: y = gelu(x W1 + b1) W2 + b2 (Radford et al. 2019; GELU: Hendrycks & Gimpel 2016).

Rows (tokens) are independent all the way through the block, so the rows are cut into one block per thread and each
thread runs its block through c_fc, the GELU and c_proj on its own (each product a single-threaded BLAS call). One
hand-off to the pool for the whole block instead of three, and each thread's (n, hidden) activations are used while
they are still in its cache. Backward, with a = gelu(h), h = x W1 + b1 and g = dL/dy, per block of rows:

    da = g W2^T,  dh = gelu'(h) * da,  dx = dh W1^T
    dW2 = a^T g,  db2 = sum(g),  dW1 = x^T dh,  db1 = sum(dh)

The weight and bias gradients are sums over rows: each thread returns its block's share and the shares are added.
`layers.MLP(fused=False)` runs the same block as three separate ops (c_fc, gelu, c_proj); tests prove them equal.
"""

from __future__ import annotations

import numpy as np

import tinygrad_lite.functional as F
from tinygrad_lite import Tensor
from tinygrad_lite.function import Function
from tinygrad_lite.fused.gelu import gelu_backward, gelu_forward
from tinygrad_lite.threads import parallel_map, parts_for, split


class FusedMLP(Function):
    def forward(self, x, w1, w2, *b, approximate="tanh"):
        if x.shape[-1] != w1.shape[0] or w1.shape[1] != w2.shape[0]:
            raise ValueError(f"mlp: input {x.shape}, c_fc weight {w1.shape} and c_proj weight {w2.shape} are not "
                             "aligned")
        x2 = x.reshape(-1, x.shape[-1])  # (N, C)
        N, hidden = x2.shape[0], w1.shape[1]
        dtype = np.result_type(x2, w1, w2)
        h = np.empty((N, hidden), dtype=dtype)  # pre-activation
        y = np.empty((N, w2.shape[1]), dtype=dtype)
        b1, b2 = b if b else (None, None)

        def rows(part):
            hp = h[part]
            np.matmul(x2[part], w1, out=hp)
            if b1 is not None:
                hp += b1
            a, saved = gelu_forward(hp, approximate)  # (n, hidden) each
            np.matmul(a, w2, out=y[part])
            if b2 is not None:
                y[part] += b2
            return a, saved

        self.parts = split(N, parts_for(N * x2.shape[1] * hidden, F.PARALLEL_MIN_MACS))
        self.blocks = parallel_map(rows, self.parts)  # [(a, saved)] per block of rows
        self.x2, self.h, self.w1, self.w2, self.has_bias, self.approximate = x2, h, w1, w2, bool(b), approximate
        self.x_shape = x.shape
        return y.reshape(x.shape[:-1] + (w2.shape[1],))

    def backward(self, g):
        x2, h, w1, w2 = self.x2, self.h, self.w1, self.w2
        need = self.needs_input_grad  # x, w1, w2[, b1, b2]
        g2 = g.reshape(-1, g.shape[-1])  # (N, out)
        dx = np.empty(x2.shape, dtype=np.result_type(g2, w1)) if need[0] else None

        def rows(args):
            part, (a, saved) = args
            gp = g2[part]
            dh = gelu_backward(h[part], saved, gp @ w2.T, self.approximate)  # (n, hidden)
            if dx is not None:
                np.matmul(dh, w1.T, out=dx[part])
            shares = [x2[part].T @ dh if need[1] else None, a.T @ gp if need[2] else None]
            if self.has_bias:
                shares += [dh.sum(axis=0) if need[3] else None, gp.sum(axis=0) if need[4] else None]
            return shares

        shares = parallel_map(rows, list(zip(self.parts, self.blocks)))
        grads = [None if s[0] is None else sum(s[1:], s[0]) for s in zip(*shares)]  # dW1, dW2[, db1, db2]
        return (None if dx is None else dx.reshape(self.x_shape), *grads)


def mlp(x: Tensor, w1: Tensor, w2: Tensor, b1: Tensor | None = None, b2: Tensor | None = None,
        approximate: str = "tanh") -> Tensor:
    """gelu(x @ w1 + b1) @ w2 + b2 for x (..., C), w1 (C, hidden), w2 (hidden, out): -> (..., out). Biases: both or
    neither."""
    if (b1 is None) != (b2 is None):
        raise ValueError("mlp: pass both biases or neither")
    if approximate not in ("tanh", "none"):
        raise ValueError(f"mlp: approximate must be 'tanh' or 'none', got {approximate!r}")
    biases = [] if b1 is None else [b1, b2]
    return FusedMLP.apply(x, w1, w2, *biases, approximate=approximate)
