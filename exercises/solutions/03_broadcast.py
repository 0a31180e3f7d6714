"""Exercise 03, reference solution: the backward of add and multiply when an input was broadcast."""

import numpy as np

from tinygrad_lite import Function


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """grad summed over the axes broadcasting added or stretched: an array of shape `shape`."""
    if grad.shape == shape:  # nothing was broadcast: no copy
        return grad
    extra = grad.ndim - len(shape)
    grad = grad.sum(axis=tuple(range(extra)))  # the leading axes the input did not have
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=stretched, keepdims=True)  # (..., 1, ...) axes stay, with size 1


class Add(Function):
    def forward(self, a, b):
        self.a_shape, self.b_shape = a.shape, b.shape
        return a + b

    def backward(self, grad):
        return unbroadcast(grad, self.a_shape), unbroadcast(grad, self.b_shape)


class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, grad):
        return unbroadcast(grad * self.b, self.a.shape), unbroadcast(grad * self.a, self.b.shape)
