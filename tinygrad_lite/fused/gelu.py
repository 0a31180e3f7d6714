"""GELU, the Gaussian Error Linear Unit (Hendrycks & Gimpel 2016): x * Phi(x), exact or in GPT-2's tanh form.

It runs on the (B, T, 4C) activations of every GPT-2 MLP, the largest elementwise work of a training step, so the
kernels below are in-place passes over flat buffers, each pass writing into memory the previous one used. The
reference path (`tinygrad_lite.functional.gelu_reference`) is the formula in Tensor ops: tanh, erf, products.

Each kernel is elementwise, so it gives the same result on any slices of its flat arrays; it is called through
`run_elementwise`, the one place a speed backend may change how (tinygrad_lite.fast feeds it cache-sized slices).
"""

from __future__ import annotations

import math

import numpy as np

from ..function import Function
from ..ops.elementwise import normal_cdf_f32

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_A = 0.044715
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _whole(kernel, arrays) -> None:
    kernel(*arrays)


runner = _whole  # how run_elementwise calls a kernel: on the whole arrays


def run_elementwise(kernel, *arrays) -> None:
    """kernel(*arrays) for flat arrays of one size, by the installed runner (the whole arrays by default)."""
    runner(kernel, arrays)


def _erf_forward(x, y, cdf, tmp):
    normal_cdf_f32(x, cdf, tmp, y)  # y is free scratch until the product
    np.multiply(x, cdf, out=y)


def _erf_backward(x, cdf, g, dx):
    """dx = g (Phi(x) + x phi(x)), phi(x) = exp(-x^2 / 2) / sqrt(2 pi)."""
    np.multiply(x, x, out=dx)
    dx *= -0.5
    with np.errstate(under="ignore"):
        np.exp(dx, out=dx)
    dx *= _INV_SQRT_2PI
    dx *= x
    dx += cdf
    dx *= g


def _tanh_forward(x, y, s):
    """y = 0.5 x (1 + tanh u) = x sigmoid(2u), u = sqrt(2/pi) (x + a x^3); s keeps sigmoid(2u) for the backward.

    The sigmoid form needs one exp where the tanh form needs a tanh, which NumPy computes about 2.5x slower in float32
    (no vectorised tanh without AVX-512).
    """
    np.multiply(x, x, out=s)
    s *= -2.0 * _GELU_A * _SQRT_2_OVER_PI
    s -= 2.0 * _SQRT_2_OVER_PI
    s *= x  # -2u
    with np.errstate(over="ignore"):  # x below about -10 (float32): exp = inf, sigmoid exactly 0, the right limit
        np.exp(s, out=s)
    s += 1.0
    np.reciprocal(s, out=s)  # sigmoid(2u)
    np.multiply(x, s, out=y)


def _tanh_backward(x, s, g, dx, tmp):
    """dx = g (s + x s (1 - s) 2 du/dx), s = sigmoid(2u), du/dx = sqrt(2/pi) (1 + 3 a x^2)."""
    np.multiply(x, x, out=dx)
    dx *= 6.0 * _GELU_A * _SQRT_2_OVER_PI
    dx += 2.0 * _SQRT_2_OVER_PI
    dx *= x  # 2 x du/dx
    np.subtract(1.0, s, out=tmp)
    tmp *= s  # s (1 - s), the derivative of the sigmoid
    dx *= tmp
    dx += s
    dx *= g


def _contiguous(a: np.ndarray) -> np.ndarray:
    return a if a.flags.c_contiguous else a.copy()  # flat views below; not ascontiguousarray: 0-d stays 0-d


def gelu_forward(x: np.ndarray, approximate: str = "tanh") -> tuple:
    """GELU of x -> (y, saved), `saved` being what gelu_backward needs."""
    x = _contiguous(x)
    y = np.empty_like(x)
    if approximate == "tanh":
        s = np.empty_like(x)
        run_elementwise(_tanh_forward, x.reshape(-1), y.reshape(-1), s.reshape(-1))
        return y, s
    if x.dtype == np.float32:
        cdf, tmp = np.empty_like(x), np.empty_like(x)
        run_elementwise(_erf_forward, *(a.reshape(-1) for a in (x, y, cdf, tmp)))
        return y, cdf
    from ..ops.elementwise import erf

    cdf = 0.5 * (1.0 + erf(x * (1.0 / math.sqrt(2.0))))
    return np.multiply(x, cdf, out=y), cdf


def gelu_backward(x: np.ndarray, saved: np.ndarray, g: np.ndarray, approximate: str = "tanh") -> np.ndarray:
    """dL/dx of GELU from gelu_forward's x (C-contiguous) and `saved`, and the output gradient g (same shape)."""
    g = _contiguous(g)
    dx = np.empty(x.shape, dtype=np.result_type(x, g))
    if approximate == "tanh":
        run_elementwise(_tanh_backward, *(a.reshape(-1) for a in (x, saved, g, dx, np.empty_like(dx))))
    elif x.dtype == np.float32 and g.dtype == np.float32:
        run_elementwise(_erf_backward, *(a.reshape(-1) for a in (x, saved, g, dx)))
    else:
        np.multiply(g, saved + x * (_INV_SQRT_2PI * np.exp(-0.5 * x * x)), out=dx)
    return dx


class Gelu(Function):
    """Gaussian Error Linear Unit (Hendrycks & Gimpel 2016).

    "none": x * Phi(x) with Phi the normal CDF, 0.5 (1 + erf(x / sqrt 2)); d/dx = Phi(x) + x phi(x). Exact erf
            (math.erf) in float64; in float32 a vectorised erfc good to 1.2e-7 relative (ops.elementwise).
    "tanh": 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3), GPT-2's "gelu_new". Since
            0.5 (1 + tanh u) = sigmoid(2u), y = x s with s = sigmoid(2u) and d/dx = s + x s (1 - s) 2 du/dx.
    """

    def forward(self, x, approximate="tanh"):
        self.x, self.approximate = _contiguous(x), approximate
        y, self.saved = gelu_forward(self.x, approximate)
        return y

    def backward(self, g):
        return gelu_backward(self.x, self.saved, g, self.approximate)
