"""Exercise 03: the backward of add and multiply when an input was broadcast.

Where it runs: the first op of GPT-2 adds the position embeddings (T, C) to the token embeddings (B, T, C); every
bias add and every residual connection after it is an Add, and the attention scale and dropout are a Mul.

Broadcasting copies an input along the axes it lacks (a (T, C) array against (B, T, C): B copies along a new
leading axis) or along its axes of size 1 (a (4, 1) column against (4, 3): 3 copies). Every copy contributed to the
output, so the input's gradient is the output gradient summed over the copies. NumPy aligns shapes from the right.

Task: write
    unbroadcast(grad, shape)   sum grad over its leading axes beyond len(shape), and, keeping them, over the axes
                               where `shape` has 1 and grad does not; return an array of exactly `shape`
    Add.backward(grad)         out = a + b:  da = unbroadcast(grad, a.shape),     db = unbroadcast(grad, b.shape)
    Mul.backward(grad)         out = a * b:  da = unbroadcast(grad * b, a.shape), db = unbroadcast(grad * a, b.shape)
Each backward returns (da, db). `grad` is dLoss/dout, of the output's shape; a and b are any two shapes that
broadcast together, e.g. (B, T, C) and (C,), (4, 1) and (1, 3), () and (2, 3). Do not modify `grad` in place:
other nodes of the graph may hold the same array.

The grader checks unbroadcast against the library's (tinygrad_lite/ops/elementwise.py) on broadcasts that add
axes, stretch size-1 axes, both at once, a scalar, a batch of one and no broadcast at all; Add and Mul backward
element by element on the same shapes; and gradcheck of a * b + c in float64. With `train.py --exercises`,
every Add and Mul of the model is yours, and the library's other ops (sub, div, matmul, ...) call your unbroadcast.

    python -m exercises check broadcast        python -m exercises hint broadcast
"""

import numpy as np

from tinygrad_lite import Function


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """grad summed over the axes broadcasting added or stretched: an array of shape `shape`."""
    raise NotImplementedError  # TODO


class Add(Function):
    def forward(self, a, b):
        self.a_shape, self.b_shape = a.shape, b.shape
        return a + b

    def backward(self, grad):
        raise NotImplementedError  # TODO: return da, db


class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, grad):
        raise NotImplementedError  # TODO: return da, db
