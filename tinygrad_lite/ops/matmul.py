"""Matrix multiplication, batched with broadcast batch dimensions and NumPy's rules for 1-D operands.

For C = A @ B: dA = dC @ B^T and dB = A^T @ dC, with the transposes on the last two axes. A 1-D A is treated as a
row (1, n) and a 1-D B as a column (n, 1); the gradient is computed on those 2-D views and squeezed back. Batch
axes that were broadcast are summed away by `unbroadcast`, exactly as for elementwise ops.
"""

from __future__ import annotations

import numpy as np

from ..function import Function
from .elementwise import unbroadcast


class Matmul(Function):
    def forward(self, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"matmul: operands must have at least 1 dimension, got shapes {a.shape} and {b.shape}")
        ka, kb = a.shape[-1], (b.shape[0] if b.ndim == 1 else b.shape[-2])
        if ka != kb:
            raise ValueError(f"matmul: shapes {a.shape} and {b.shape} are not aligned ({ka} != {kb})")
        try:
            out = np.matmul(a, b)
        except ValueError:
            raise ValueError(f"matmul: batch dimensions of {a.shape} and {b.shape} cannot be broadcast") from None
        self.a, self.b = a, b
        return out

    def backward(self, g):
        a, b = self.a, self.b
        if a.ndim == 2 and b.ndim == 2:  # the common case, without the general path's reshapes and reductions
            ga = g @ b.T if self.needs_input_grad[0] else None
            gb = a.T @ g if self.needs_input_grad[1] else None
            return ga, gb
        a2 = a[None, :] if a.ndim == 1 else a  # (1, n)
        b2 = b[:, None] if b.ndim == 1 else b  # (n, 1)
        if a.ndim == 1 and b.ndim == 1:
            g = g.reshape(1, 1)  # the dot product's scalar gradient as a (1, 1) matrix
        elif a.ndim == 1:
            g = np.expand_dims(g, -2)
        elif b.ndim == 1:
            g = np.expand_dims(g, -1)
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = unbroadcast(np.matmul(g, b2.swapaxes(-1, -2)), a2.shape).reshape(a.shape)
        if self.needs_input_grad[1] and b.ndim == 2 and a.ndim > 2:
            # (..., n) @ (n, m): fold the batch into rows, one (n, rows) @ (rows, m) GEMM instead of a batched
            # product followed by a sum over the batch.
            gb = np.matmul(a.reshape(-1, a.shape[-1]).T, g.reshape(-1, g.shape[-1]))
        elif self.needs_input_grad[1]:
            gb = unbroadcast(np.matmul(a2.swapaxes(-1, -2), g), b2.shape).reshape(b.shape)
        return ga, gb
