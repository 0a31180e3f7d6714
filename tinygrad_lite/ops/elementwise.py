"""Elementwise ops: forward and the local derivative side by side.

Binary ops broadcast as NumPy does. Broadcasting copies an input along new or size-1 axes, so the chain rule sums
the output gradient back over exactly those axes: that is `unbroadcast`. A backward never modifies the incoming
`grad` in place (it may be shared with other nodes).

Constants are Python floats, never NumPy float64 scalars: under NumPy 2, float32_array * np.float64(c) is float64,
and a silent upcast would double the memory and time of every op.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np

from ..function import Function
from ..threads import parallel_chunks


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum `grad` over the axes that broadcasting added or stretched, so it has `shape` again."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(i + extra for i, s in enumerate(shape) if s == 1 and grad.shape[i + extra] != 1)
    return grad.sum(axis=axes, keepdims=False).reshape(shape) if axes else grad.reshape(shape)


def _broadcast_error(op: str, a: np.ndarray, b: np.ndarray) -> ValueError:
    # Raised from `except ValueError` around the NumPy op: checking the shapes up front (np.broadcast_shapes) would
    # cost more than the op itself for the small arrays where per-op overhead dominates.
    return ValueError(f"{op}: shapes {a.shape} and {b.shape} cannot be broadcast together")


class Add(Function):
    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        try:
            return a + b
        except ValueError:
            raise _broadcast_error("add", a, b) from None

    def backward(self, g):
        # needs_input_grad: for `x + 1.0` or a constant, unbroadcast would be a wasted reduction over all of g
        sa, sb = self.shapes
        need_a, need_b = self.needs_input_grad
        return (unbroadcast(g, sa) if need_a else None), (unbroadcast(g, sb) if need_b else None)


class Sub(Function):
    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        try:
            return a - b
        except ValueError:
            raise _broadcast_error("sub", a, b) from None

    def backward(self, g):
        sa, sb = self.shapes
        need_a, need_b = self.needs_input_grad
        return (unbroadcast(g, sa) if need_a else None), (unbroadcast(-g, sb) if need_b else None)


class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        try:
            return a * b
        except ValueError:
            raise _broadcast_error("mul", a, b) from None

    def backward(self, g):
        a, b = self.a, self.b
        ga = unbroadcast(g * b, a.shape) if self.needs_input_grad[0] else None
        gb = unbroadcast(g * a, b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        try:
            return a / b
        except ValueError:
            raise _broadcast_error("div", a, b) from None

    def backward(self, g):
        a, b = self.a, self.b
        ga = unbroadcast(g / b, a.shape) if self.needs_input_grad[0] else None
        gb = unbroadcast(-g * a / (b * b), b.shape) if self.needs_input_grad[1] else None  # d(a/b)/db = -a/b^2
        return ga, gb


class PowScalar(Function):
    """x ** c for a constant c: d/dx = c * x^(c-1)."""

    def forward(self, x, exponent):
        self.x, self.c = x, exponent
        return x**exponent

    def backward(self, g):
        c = self.c
        if c == 0:
            return np.zeros_like(self.x)
        return g * (c * self.x ** (c - 1))


class Pow(Function):
    """a ** b with both tensors: d/da = b a^(b-1), d/db = a^b ln a (defined where a > 0)."""

    def forward(self, a, b):
        self.a, self.b = a, b
        try:
            self.out = a**b
        except ValueError:
            raise _broadcast_error("pow", a, b) from None
        return self.out

    def backward(self, g):
        a, b = self.a, self.b
        ga = None
        if self.needs_input_grad[0]:
            with np.errstate(divide="ignore", invalid="ignore"):
                ga = g * b * a ** (b - 1)
            # b == 0: a^0 is constant, so the gradient is 0 even at a == 0 (where 0 * 0^-1 would be nan), as torch
            ga = unbroadcast(np.where(b == 0, np.zeros((), dtype=ga.dtype), ga), a.shape)
        gb = None
        if self.needs_input_grad[1]:
            with np.errstate(divide="ignore", invalid="ignore"):
                # torch defines the b-gradient as 0 where a == 0 and b >= 0 (0^b is flat there).
                lg = np.where(a > 0, np.log(np.where(a > 0, a, 1)), np.where(a == 0, 0.0, np.nan)).astype(a.dtype)
            gb = unbroadcast(g * self.out * lg, b.shape)
        return ga, gb


class Neg(Function):
    def forward(self, x):
        return -x

    def backward(self, g):
        return -g


class Cast(Function):
    """Change dtype; the gradient flows back in the input's dtype (only between float types)."""

    def forward(self, x, dtype):
        self.dtype_in = x.dtype
        return x.astype(dtype)

    def backward(self, g):
        return g.astype(self.dtype_in)


class Exp(Function):
    def forward(self, x):
        self.out = np.exp(x)
        return self.out

    def backward(self, g):
        return g * self.out


class Log(Function):
    def forward(self, x):
        self.x = x
        return np.log(x)

    def backward(self, g):
        return g / self.x


class Sqrt(Function):
    def forward(self, x):
        self.out = np.sqrt(x)
        return self.out

    def backward(self, g):
        return g / (2.0 * self.out)  # d sqrt(x) = 1 / (2 sqrt(x))


class Tanh(Function):
    def forward(self, x):
        self.out = np.tanh(x)
        return self.out

    def backward(self, g):
        return g * (1.0 - self.out * self.out)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic 1 / (1 + e^-x), as torch computes it, in place on one buffer.

    For very negative x, e^-x overflows to inf and 1 / (1 + inf) is exactly 0, the correctly rounded result, so the
    overflow is harmless and silenced. Both tails stay accurate: a small result is a reciprocal of a large number, not
    a difference of nearly equal ones. This runs on every activation of the SiLU/SwiGLU layers.
    """
    s = np.negative(x, out=np.empty_like(x))  # out=: a 0-d input stays an array (ufuncs return scalars for it)
    with np.errstate(over="ignore"):
        np.exp(s, out=s)
    s += 1.0
    return np.reciprocal(s, out=s)


class Sigmoid(Function):
    def forward(self, x):
        self.out = sigmoid(x)
        return self.out

    def backward(self, g):
        s = self.out
        return g * s * (1.0 - s)


class Relu(Function):
    """max(x, 0). At exactly x = 0 the gradient is 0, as in PyTorch (a subgradient choice)."""

    def forward(self, x):
        self.mask = x > 0
        return np.maximum(x, 0)

    def backward(self, g):
        return g * self.mask


class Abs(Function):
    """|x|, gradient sign(x): 0 at exactly 0, as in PyTorch."""

    def forward(self, x):
        self.x = x
        return np.abs(x)

    def backward(self, g):
        return g * np.sign(self.x)


class Silu(Function):
    """x * sigmoid(x) (Swish); d/dx = s + x s (1 - s) = s (1 + x (1 - s))."""

    def forward(self, x):
        self.x, self.s = x, sigmoid(x)
        return x * self.s

    def backward(self, g):
        s = self.s
        return g * (s * (1.0 + self.x * (1.0 - s)))


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


def _normal_cdf_f32(x, cdf, tmp, part):
    """Phi(x) = 0.5 erfc(-x / sqrt 2) into cdf, for float32 flat arrays, elements `part` (tmp: scratch)."""
    x, cdf, tmp = x[part], cdf[part], tmp[part]
    z = np.abs(x, out=tmp)
    z *= _INV_SQRT_2  # |x| / sqrt 2
    t = np.multiply(z, 0.5, out=cdf)
    t += 1.0
    np.reciprocal(t, out=t)  # t = 1 / (1 + z/2)
    np.multiply(z, z, out=z)
    np.negative(z, out=z)  # -z^2
    p = np.full_like(t, _ERFC_P[-1])
    for c in reversed(_ERFC_P[:-1]):  # Horner: P(t)
        p *= t
        p += c
    z += p
    with np.errstate(under="ignore"):  # far tails: exp underflows to 0, the correctly rounded 0.5 erfc
        np.exp(z, out=z)
    z *= t
    z *= 0.5  # q = 0.5 erfc(|x| / sqrt 2) = Phi(-|x|)
    np.subtract(1.0, z, out=cdf)
    np.copyto(cdf, z, where=x < 0)  # Phi(x) = 1 - q for x >= 0, q for x < 0


def _gelu_erf_f32_forward(x, y, cdf, tmp, part):
    _normal_cdf_f32(x, cdf, tmp, part)
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


def gelu_forward(x: np.ndarray, approximate: str = "tanh") -> tuple:
    """GELU of a C-contiguous array on the calling thread -> (y, saved), `saved` being what gelu_backward needs.
    For fused ops that already split their rows between threads (layers.mlp_function); Gelu splits its own."""
    y = np.empty_like(x)
    if approximate == "tanh":
        s = np.empty_like(x)
        _gelu_tanh_forward(x.reshape(-1), y.reshape(-1), s.reshape(-1), slice(None))
        return y, s
    if x.dtype == np.float32:
        cdf = np.empty_like(x)
        _gelu_erf_f32_forward(x.reshape(-1), y.reshape(-1), cdf.reshape(-1), np.empty_like(x).reshape(-1),
                              slice(None))
        return y, cdf
    cdf = 0.5 * (1.0 + erf(x * _INV_SQRT_2))
    return np.multiply(x, cdf, out=y), cdf


def gelu_backward(x: np.ndarray, saved: np.ndarray, g: np.ndarray, approximate: str = "tanh") -> np.ndarray:
    """dL/dx of GELU from gelu_forward's `saved` and the output gradient g (all C-contiguous, one shape)."""
    dx = np.empty(x.shape, dtype=np.result_type(x, g))
    if approximate == "tanh":
        _gelu_tanh_backward(x.reshape(-1), saved.reshape(-1), g.reshape(-1), dx.reshape(-1),
                            np.empty_like(dx).reshape(-1), slice(None))
    elif x.dtype == np.float32 and g.dtype == np.float32:
        _gelu_erf_f32_backward(x.reshape(-1), saved.reshape(-1), g.reshape(-1), dx.reshape(-1), slice(None))
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

    # The tanh form runs on the (B, T, 4C) activations of every GPT-2 MLP, the largest elementwise work of a training
    # step: it is written as in-place passes over flat buffers, split between the threads of tinygrad_lite.threads
    # (NumPy releases the GIL inside each pass).

    def forward(self, x, approximate="tanh"):
        self.approximate = approximate
        if approximate == "tanh":
            x = x if x.flags.c_contiguous else x.copy()  # flat views below; not ascontiguousarray: 0-d stays 0-d
            y, s = np.empty_like(x), np.empty_like(x)
            parallel_chunks(partial(_gelu_tanh_forward, x.reshape(-1), y.reshape(-1), s.reshape(-1)), x.size)
            self.x, self.s = x, s
            return y
        if x.dtype == np.float32:
            x = x if x.flags.c_contiguous else x.copy()
            y, cdf, tmp = np.empty_like(x), np.empty_like(x), np.empty_like(x)
            flat = [a.reshape(-1) for a in (x, y, cdf, tmp)]
            parallel_chunks(partial(_gelu_erf_f32_forward, *flat), x.size)
            self.x, self.cdf = x, cdf
            return y
        self.x = x
        self.cdf = 0.5 * (1.0 + erf(x * _INV_SQRT_2))
        return x * self.cdf

    def backward(self, g):
        x = self.x
        if self.approximate == "tanh":
            g = g if g.flags.c_contiguous else g.copy()
            dx, tmp = np.empty_like(x), np.empty_like(x)
            flat = [a.reshape(-1) for a in (x, self.s, g, dx, tmp)]
            parallel_chunks(partial(_gelu_tanh_backward, *flat), x.size)
            return dx
        if x.dtype == np.float32 and g.dtype == np.float32:
            g = g if g.flags.c_contiguous else g.copy()
            dx = np.empty_like(x)
            flat = [a.reshape(-1) for a in (x, self.cdf, g, dx)]
            parallel_chunks(partial(_gelu_erf_f32_backward, *flat), x.size)
            return dx
        pdf = _INV_SQRT_2PI * np.exp(-0.5 * x * x)
        return g * (self.cdf + x * pdf)


class Where(Function):
    """cond ? a : b, with cond a constant boolean array. Each branch gets the gradient where it was chosen."""

    def forward(self, a, b, cond):
        self.cond, self.sa, self.sb = cond, a.shape, b.shape
        try:
            return np.where(cond, a, b)
        except ValueError:
            raise ValueError(f"where: shapes cond {cond.shape}, a {a.shape}, b {b.shape} cannot be broadcast") from None

    def backward(self, g):
        zero = np.zeros((), dtype=g.dtype)
        ga = unbroadcast(np.where(self.cond, g, zero), self.sa) if self.needs_input_grad[0] else None
        gb = unbroadcast(np.where(self.cond, zero, g), self.sb) if self.needs_input_grad[1] else None
        return ga, gb


class MaskedFill(Function):
    """x with entries where mask is True replaced by value; mask broadcasts to x's shape."""

    def forward(self, x, mask, value):
        try:
            self.mask = np.broadcast_to(mask, x.shape)
        except ValueError:
            raise ValueError(f"masked_fill: mask of shape {mask.shape} does not broadcast to {x.shape}") from None
        return np.where(self.mask, np.asarray(value, dtype=x.dtype), x)

    def backward(self, g):
        return np.where(self.mask, np.zeros((), dtype=g.dtype), g)
