"""Exercise 05, reference solution: the backward of matrix multiplication, batched and broadcast."""

import numpy as np

from tinygrad_lite import Function
from tinygrad_lite.ops.elementwise import unbroadcast


class Matmul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return np.matmul(a, b)

    def backward(self, grad):
        """grad (..., n, m) -> (dA of a's shape, dB of b's shape)."""
        a, b = self.a, self.b
        da = np.matmul(grad, b.swapaxes(-1, -2))  # (..., n, k), batch axes of the output
        db = np.matmul(a.swapaxes(-1, -2), grad)  # (..., k, m)
        return unbroadcast(da, a.shape), unbroadcast(db, b.shape)
