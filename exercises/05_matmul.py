"""Exercise 05: the backward of matrix multiplication, batched and broadcast.

Where it runs: every Linear layer of GPT-2 is x @ W with x (B, T, C) and W (C, 4C), and attention multiplies
q @ k^T (B, nh, T, hs) @ (B, nh, hs, T) and att @ v. Most of a training step's time is spent in these products
and their backward.

For C = A @ B with A (..., n, k) and B (..., k, m), C (..., n, m) and G = dLoss/dC (..., n, m):

    dA = G @ B^T        (..., n, m) @ (..., m, k) -> (..., n, k)
    dB = A^T @ G        (..., k, n) @ (..., n, m) -> (..., k, m)

where ^T swaps the LAST TWO axes only (x.swapaxes(-1, -2); x.T reverses every axis of a 3-D array). The batch
axes "..." broadcast as in elementwise ops: W (C, 4C) against x (B, T, C) is used once per batch row, so its
gradient is the sum over the batch of the per-row products. Sum such axes away with `unbroadcast` (imported below,
the library's; exercise 03 wrote it) to the input's shape.

Task: complete Matmul.backward(grad) -> (dA, dB) for operands with at least two axes each. (1-D operands, NumPy's
vector rules, are left to the library: with `train.py --exercises` they run the library's backward.)

The grader compares dA and dB with the library's Matmul (tinygrad_lite/ops/matmul.py) on (3, 4) @ (4, 5),
(1, 4) @ (4, 1), (1, 1) @ (1, 1), (2, 3, 4) @ (4, 5) (a weight shared over a batch), (2, 3, 4) @ (2, 4, 5),
(2, 1, 3, 4) @ (5, 4, 2) (both broadcast) and (1, 3, 4) @ (1, 4, 2); then gradcheck in float64 and the library's
x @ W with your class plugged in. With `train.py --exercises`, every matrix product of the model is yours.

    python -m exercises check matmul        python -m exercises hint matmul
"""

import numpy as np

from tinygrad_lite import Function
from tinygrad_lite.ops.elementwise import unbroadcast  # noqa: F401  (you will need it)


class Matmul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return np.matmul(a, b)

    def backward(self, grad):
        """grad (..., n, m) -> (dA of a's shape, dB of b's shape)."""
        raise NotImplementedError  # TODO: return da, db
