"""Elementwise ops: forward and the local derivative side by side.

Binary ops broadcast as NumPy does. Broadcasting copies an input along new or size-1 axes, so the chain rule sums
the output gradient back over exactly those axes: that is `unbroadcast`. A backward never modifies the incoming
`grad` in place (it may be shared with other nodes).

Constants are Python floats, never NumPy float64 scalars: under NumPy 2, float32_array * np.float64(c) is float64,
and a silent upcast would double the memory and time of every op.
"""

from __future__ import annotations

import math

import numpy as np

from ..function import Function, _implementations


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum `grad` over the axes that broadcasting added or stretched, so it has `shape` again."""
    if grad.shape == shape:
        return grad
    if (override := _implementations.get("unbroadcast")) is not None:
        return override(grad, shape)
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


# erfc(z) = t exp(-z^2 + P(t)), t = 1 / (1 + z/2), z >= 0, with P a Chebyshev fit of degree 9 whose relative error is
# below 1.2e-7 for every z >= 0 (Press et al., Numerical Recipes, 2nd ed., 6.2 "erfcc"): as good as float32 can hold,
# tails included, with a single exp. Coefficients of t^0 .. t^9:
_ERFC_P = (-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807, -1.13520398, 1.48851587,
           -0.82215223, 0.17087277)
_erf_python = np.frompyfunc(math.erf, 1, 1)


def normal_cdf_f32(x, cdf, tmp, p) -> None:
    """Phi(x) = 0.5 erfc(-x / sqrt 2) into cdf, for float32 flat arrays (tmp, p: scratch of the same size)."""
    t = np.abs(x, out=cdf)
    t *= 0.5 / math.sqrt(2.0)
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
    # either way (one term is 0), and without a data-dependent branch, which costs more than the rest on random signs.
    m = np.less(x, 0.0, out=p)  # a float32 0/1 written over P(t), which is used up
    np.subtract(1.0, q, out=cdf)
    q *= m
    np.subtract(1.0, m, out=m)
    cdf *= m
    cdf += q


def erf(x: np.ndarray) -> np.ndarray:
    """erf elementwise (NumPy has none): erf(z) = 2 Phi(z sqrt 2) - 1 in float32, math.erf per element otherwise."""
    if x.dtype != np.float32:
        return np.asarray(_erf_python(x), dtype=x.dtype)  # asarray: on a 0-d input frompyfunc returns a bare float
    flat = np.ascontiguousarray(x).reshape(-1) * np.float32(math.sqrt(2.0))
    cdf, tmp, p = np.empty_like(flat), np.empty_like(flat), np.empty_like(flat)
    normal_cdf_f32(flat, cdf, tmp, p)
    cdf *= 2.0
    cdf -= 1.0
    return cdf.reshape(x.shape)


class Erf(Function):
    """The error function; d/dx erf(x) = 2 / sqrt(pi) exp(-x^2)."""

    def forward(self, x):
        self.x = x
        return erf(x)

    def backward(self, g):
        return g * ((2.0 / math.sqrt(math.pi)) * np.exp(-self.x * self.x))


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
