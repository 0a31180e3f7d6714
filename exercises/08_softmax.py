"""Exercise 08: softmax, forward and backward, stable for large logits.

Where it runs: attention turns each query's scores into weights over the keys with a softmax over the last axis
(masked positions hold -inf and must get weight 0), and the loss turns the logits into probabilities.

Task: complete Softmax.forward and Softmax.backward, in NumPy, along the axis `axis` (default the last):

    y = exp(x - m) / sum(exp(x - m))        m = the max of x along the axis (keepdims=True), one per row

Subtracting m changes nothing mathematically (it cancels between numerator and denominator), but exp(1000.0)
overflows to inf and inf / inf is nan; with m subtracted the largest exponent is exp(0) = 1. Each row needs its
own max: a row of scores near 1000 and a row near 0 in the same array must both come out right.

Backward, with g = dLoss/dy: the Jacobian of a softmax row is dy_i/dx_j = y_i (delta_ij - y_j), so

    dx = y * (g - sum(g * y))               the sum along the axis, keepdims=True

Keep y (and the axis) on self in forward. Return float32 for float32 input.

Shapes: x any shape, the softmax taken along `axis` (-1, or another axis such as 0); dx has x's shape.

The grader compares y and dx with the library's (tinygrad_lite/ops/reduce.py) on (2, 3, 5), (4,), a batch of one,
axis 0, logits near 1000, rows of very different scale, -inf entries (masked positions) and float32; then
gradcheck in float64, and the library's Tensor.softmax with your class plugged in. With `train.py --exercises`,
every softmax of the model (attention weights on the reference path) is yours.

    python -m exercises check softmax        python -m exercises hint softmax
"""

import numpy as np

from tinygrad_lite import Function


class Softmax(Function):
    def forward(self, x, axis=-1):
        """x (...) -> y (...), each slice along `axis` positive and summing to 1."""
        raise NotImplementedError  # TODO

    def backward(self, grad):
        """grad (...) -> dx (...)."""
        raise NotImplementedError  # TODO
