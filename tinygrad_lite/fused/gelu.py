"""GELU, the Gaussian Error Linear Unit (Hendrycks & Gimpel 2016): x * Phi(x), exact or in GPT-2's tanh form.

It runs on the (B, T, 4C) activations of every GPT-2 MLP, the largest elementwise work of a training step, so the
kernels below are in-place passes over flat buffers, which `gelu_forward` / `gelu_backward` split between the
threads of tinygrad_lite.threads (NumPy releases the GIL inside each pass). The `Gelu` op and the fused MLP
(layers/mlp_function.py, one block of rows per thread, where they run on the calling thread) both call those two.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np

from ..function import Function
from ..threads import parallel_chunks

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_A = 0.044715
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_erf = np.frompyfunc(math.erf, 1, 1)


def erf(x: np.ndarray) -> np.ndarray:
    """Exact erf elementwise (NumPy has none): math.erf per element, slow; gelu(approximate='none') uses it for
    every dtype but float32, which has the vectorised normal_cdf_f32 below."""
    return np.asarray(_erf(x), dtype=x.dtype)  # asarray: on a 0-d input frompyfunc returns a bare float


# erfc(z) = t exp(-z^2 + P(t)), t = 1 / (1 + z/2), z >= 0, with P a Chebyshev fit of degree 9 whose relative error is
# below 1.2e-7 for every z >= 0 (Press et al., Numerical Recipes, 2nd ed., 6.2 "erfcc"): as good as float32 can hold,
# tails included, with a single exp. Coefficients of t^0 .. t^9:
_ERFC_P = (-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807, -1.13520398, 1.48851587,
           -0.82215223, 0.17087277)


def _normal_cdf_f32(x, cdf, tmp, p, part):
    """Phi(x) = 0.5 erfc(-x / sqrt 2) into cdf, for float32 flat arrays, elements `part` (tmp, p: scratch)."""
    x, cdf, tmp, p = x[part], cdf[part], tmp[part], p[part]
    t = np.abs(x, out=cdf)
    t *= 0.5 * _INV_SQRT_2
    t += 1.0
    np.reciprocal(t, out=t)  # t = 1 / (1 + z/2), z = |x| / sqrt 2
    np.multiply(t, _ERFC_P[-1], out=p)
    for c in reversed(_ERFC_P[1:-1]):  # Horner: P(t), its constant term folded in below
        p += c
        p *= t
    e = np.multiply(x, x, out=tmp)
    e *= -0.5  # -z^2
    e += p
    e += _ERFC_P[0] - math.log(2.0)  # the constant of P, and the 0.5 of q = 0.5 erfc as a log
    with np.errstate(under="ignore"):  # far tails: exp underflows to 0, the correctly rounded 0.5 erfc
        q = np.exp(e, out=tmp)
    q *= t  # q = 0.5 erfc(|x| / sqrt 2) = Phi(-|x|)
    # Phi(x) = q for x < 0, 1 - q for x >= 0, chosen as m q + (1 - m)(1 - q) with m = [x < 0] in {0.0, 1.0}: exact
    # either way (one term is 0), and free of the branch that made np.copyto(..., where=x < 0) cost 5-7 ns per
    # element on random signs, more than the rest of this function.
    m = np.less(x, 0.0, out=p)  # a float32 0/1 written over P(t), which is used up
    np.subtract(1.0, q, out=cdf)
    q *= m
    np.subtract(1.0, m, out=m)
    cdf *= m
    cdf += q


def _gelu_erf_f32_forward(x, y, cdf, tmp, part):
    _normal_cdf_f32(x, cdf, tmp, y, part)  # y is free scratch until the product
    np.multiply(x[part], cdf[part], out=y[part])


def _gelu_erf_f32_backward(x, cdf, g, dx, part):
    """dx = g (Phi(x) + x phi(x)), phi(x) = exp(-x^2 / 2) / sqrt(2 pi)."""
    x, cdf, g, dx = x[part], cdf[part], g[part], dx[part]
    np.multiply(x, x, out=dx)
    dx *= -0.5
    with np.errstate(under="ignore"):
        np.exp(dx, out=dx)
    dx *= _INV_SQRT_2PI
    dx *= x
    dx += cdf
    dx *= g


def _gelu_tanh_forward(x, y, s, part):
    """y = 0.5 x (1 + tanh u) = x sigmoid(2u), u = sqrt(2/pi) (x + a x^3), on flat arrays, elements `part` only.

    The sigmoid form needs one exp where the tanh form needs a tanh, which NumPy computes about 2.5x slower in float32
    (no vectorised tanh without AVX-512). s keeps sigmoid(2u) for the backward.
    """
    x, y, s = x[part], y[part], s[part]
    np.multiply(x, x, out=s)
    s *= -2.0 * _GELU_A * _SQRT_2_OVER_PI
    s -= 2.0 * _SQRT_2_OVER_PI
    s *= x  # -2u
    with np.errstate(over="ignore"):  # x below about -10 (float32): exp = inf, sigmoid exactly 0, the right limit
        np.exp(s, out=s)
    s += 1.0
    np.reciprocal(s, out=s)  # sigmoid(2u)
    np.multiply(x, s, out=y)


def _gelu_tanh_backward(x, s, g, dx, tmp, part):
    """dx = g (s + x s (1 - s) 2 du/dx), s = sigmoid(2u), du/dx = sqrt(2/pi) (1 + 3 a x^2); flat, elements `part`."""
    x, s, g, dx, tmp = x[part], s[part], g[part], dx[part], tmp[part]
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
    """GELU of x -> (y, saved), `saved` being what gelu_backward needs. Large arrays are cut into one flat piece per
    thread; called from inside a pool map (the fused MLP's blocks of rows) it runs on the calling thread."""
    x = _contiguous(x)
    y = np.empty_like(x)
    if approximate == "tanh":
        s = np.empty_like(x)
        parallel_chunks(partial(_gelu_tanh_forward, x.reshape(-1), y.reshape(-1), s.reshape(-1)), x.size)
        return y, s
    if x.dtype == np.float32:
        cdf, tmp = np.empty_like(x), np.empty_like(x)
        flat = [a.reshape(-1) for a in (x, y, cdf, tmp)]
        parallel_chunks(partial(_gelu_erf_f32_forward, *flat), x.size)
        return y, cdf
    cdf = 0.5 * (1.0 + erf(x * _INV_SQRT_2))
    return np.multiply(x, cdf, out=y), cdf


def gelu_backward(x: np.ndarray, saved: np.ndarray, g: np.ndarray, approximate: str = "tanh") -> np.ndarray:
    """dL/dx of GELU from gelu_forward's x (C-contiguous) and `saved`, and the output gradient g (same shape)."""
    g = _contiguous(g)
    dx = np.empty(x.shape, dtype=np.result_type(x, g))
    if approximate == "tanh":
        flat = [a.reshape(-1) for a in (x, saved, g, dx, np.empty_like(dx))]
        parallel_chunks(partial(_gelu_tanh_backward, *flat), x.size)
    elif x.dtype == np.float32 and g.dtype == np.float32:
        flat = [a.reshape(-1) for a in (x, saved, g, dx)]
        parallel_chunks(partial(_gelu_erf_f32_backward, *flat), x.size)
    else:
        np.multiply(g, saved + x * (_INV_SQRT_2PI * np.exp(-0.5 * x * x)), out=dx)
    return dx


class Gelu(Function):
    """Gaussian Error Linear Unit (Hendrycks & Gimpel 2016).

    "none": x * Phi(x) with Phi the normal CDF, 0.5 (1 + erf(x / sqrt 2)); d/dx = Phi(x) + x phi(x). Exact erf
            (math.erf) in float64; in float32 a vectorised erfc good to 1.2e-7 relative (see _ERFC_P).
    "tanh": 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3), GPT-2's "gelu_new". Since
            0.5 (1 + tanh u) = sigmoid(2u), y = x s with s = sigmoid(2u) and d/dx = s + x s (1 - s) 2 du/dx.
    """

    def forward(self, x, approximate="tanh"):
        self.x, self.approximate = _contiguous(x), approximate
        y, self.saved = gelu_forward(self.x, approximate)
        return y

    def backward(self, g):
        return gelu_backward(self.x, self.saved, g, self.approximate)
