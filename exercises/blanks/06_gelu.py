"""Exercise 06: GELU in GPT-2's tanh form, forward and backward (Hendrycks & Gimpel 2016).

Where it runs: between the two Linear layers of every MLP block of GPT-2, on (B, T, 4C) activations: the largest
elementwise work of a training step. GELU(x) = x Phi(x), with Phi the standard normal CDF; GPT-2 uses a tanh
approximation of it:

    u  = sqrt(2 / pi) * (x + 0.044715 x^3)
    y  = 0.5 x (1 + tanh(u))

Backward, with g = dLoss/dy (same shape as x), by the product rule and tanh' = 1 - tanh^2:

    du/dx = sqrt(2 / pi) * (1 + 3 * 0.044715 x^2)
    dx    = g * (0.5 (1 + tanh(u)) + 0.5 x (1 - tanh(u)^2) du/dx)

Task: complete Gelu.forward(x) and Gelu.backward(grad), elementwise in NumPy, for x of any shape. Save on `self`
in forward what backward needs. Return float32 for float32 inputs (use Python floats and `math`, not np.float64).

The grader compares y and dx with the library's Gelu (tinygrad_lite/fused/gelu.py, approximate="tanh") on
(2, 3, 4), (1, 8), a scalar-like (1,), float32 (4, 16), and edge values (0, +-1e-3, +-5, +-12, -30, 30, where a
cosh or exp based formula overflows or loses the sign); then gradcheck in float64, and the library's F.gelu with
your class plugged in. With `train.py --exercises`, every MLP's activation is yours (the exact erf form,
approximate="none", stays the library's).

    python -m exercises check gelu        python -m exercises hint gelu
"""

import math  # noqa: F401  (math.sqrt, math.pi)

import numpy as np  # noqa: F401

from tinygrad_lite import Function


class Gelu(Function):
    def forward(self, x):
        """x (any shape) -> y, the same shape."""
        raise NotImplementedError  # TODO

    def backward(self, grad):
        """grad (x's shape) -> dx."""
        raise NotImplementedError  # TODO: return dx
