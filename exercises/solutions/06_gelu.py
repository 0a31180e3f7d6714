"""Exercise 06, reference solution: GELU in GPT-2's tanh form, forward and backward."""

import math

import numpy as np

from tinygrad_lite import Function

C = math.sqrt(2.0 / math.pi)
A = 0.044715


class Gelu(Function):
    def forward(self, x):
        """x (any shape) -> y, the same shape."""
        self.x = x
        self.t = np.tanh(C * (x + A * x * x * x))
        return 0.5 * x * (1.0 + self.t)

    def backward(self, grad):
        """grad (x's shape) -> dx."""
        x, t = self.x, self.t
        du = C * (1.0 + 3.0 * A * x * x)
        return grad * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du)
