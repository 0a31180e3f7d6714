"""Exercise 04: layer normalisation, forward and backward (Ba, Kiros & Hinton 2016).

Where it runs: at the entrance of every attention and MLP block of GPT-2 (ln_1, ln_2) and once more before the
output layer (ln_f). Each position's C features are shifted and scaled to mean 0 and variance 1, then given a
learned gain and bias, so that no block's input drifts in scale as the weights change.

Task: complete LayerNorm.forward and LayerNorm.backward, in NumPy. Over the last axis of x (C features):

    mu   = mean(x)                          (..., 1)
    var  = mean((x - mu)^2)                 (..., 1)   the biased variance (divide by C), as torch
    rstd = 1 / sqrt(var + eps)              (..., 1)
    xhat = (x - mu) * rstd                  (..., C)
    y    = xhat * weight + bias             (..., C)

Backward, with g = dLoss/dy (..., C) and dxhat = g * weight:

    dx      = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))     means over the last axis, keepdims
    dweight = sum of g * xhat over every axis but the last                  (C,)
    dbias   = sum of g over every axis but the last                         (C,)

The two means in dx are there because mu and var depend on every x of the row: moving one x moves them too. Save
on `self` in forward what backward needs (xhat, rstd, weight). Return float32 for float32 inputs (Python floats
as constants keep the dtype).

Shapes: x (..., C) with any number of leading axes (a batch of one, a single vector (C,)), weight and bias (C,).

The grader compares y, dx, dweight and dbias with the library's LayerNorm (tinygrad_lite/fused/norm.py) on
(2, 3, 5), (1, 4), (6,), (2, 1, 3, 8), a large eps, one feature (C = 1), and float32 rows far from zero (which a
variance computed as mean(x^2) - mean(x)^2 gets wrong); then gradcheck in float64, and the library's F.layer_norm
with your class plugged in (with and without weight and bias). With `train.py --exercises`, every LayerNorm of the
model is yours.

    python -m exercises check layer_norm        python -m exercises hint layer_norm
"""

import numpy as np

from tinygrad_lite import Function


class LayerNorm(Function):
    def forward(self, x, weight, bias, eps=1e-5):
        """x (..., C), weight (C,), bias (C,) -> y (..., C)."""
        raise NotImplementedError  # TODO

    def backward(self, grad):
        """grad (..., C) -> (dx (..., C), dweight (C,), dbias (C,))."""
        raise NotImplementedError  # TODO
