"""Reductions and the softmax family.

A reduction maps many inputs to one output, so its backward spreads one gradient back over many inputs:
`sum` copies it (broadcast), `mean` copies it divided by n, `max`/`min` send it to the winning entries (split
equally among ties, so the gradient is the same whichever tied entry NumPy would report), and `var` weights it by
each entry's deviation from the mean. `_expand_back` re-inserts the reduced axes so the gradient broadcasts.
"""

from __future__ import annotations

import numpy as np

from ..function import Function


def normalize_axis(axis, ndim: int) -> tuple:
    """None -> all axes; int or tuple -> a sorted tuple of non-negative axes (checked against ndim)."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        if not -max(ndim, 1) <= a < max(ndim, 1):
            raise ValueError(f"axis {a} is out of range for a tensor with {ndim} dimensions")
        out.append(int(a) % max(ndim, 1))
    return tuple(sorted(set(out))) if ndim else ()


def _expand_back(g: np.ndarray, axes: tuple, keepdims: bool, shape: tuple) -> np.ndarray:
    """Gradient of a reduction output, reshaped with size-1 axes where the reduced ones were."""
    if not keepdims:
        g = g.reshape([1 if i in axes else s for i, s in enumerate(shape)])
    return g


def _broadcast(g: np.ndarray, shape: tuple) -> np.ndarray:
    """g copied out to `shape`: one allocation and one C-level fill, cheaper than np.broadcast_to's Python path
    for the small arrays where per-op overhead matters, and the result is writable."""
    out = np.empty(shape, dtype=g.dtype)
    out[...] = g
    return out


class Sum(Function):
    def forward(self, x, axis=None, keepdims=False):
        self.shape, self.axes, self.keepdims = x.shape, normalize_axis(axis, x.ndim), keepdims
        return np.asarray(x.sum(axis=self.axes, keepdims=keepdims))

    def backward(self, g):
        return _broadcast(_expand_back(g, self.axes, self.keepdims, self.shape), self.shape)


class Mean(Function):
    def forward(self, x, axis=None, keepdims=False):
        self.shape, self.axes, self.keepdims = x.shape, normalize_axis(axis, x.ndim), keepdims
        self.n = int(np.prod([x.shape[a] for a in self.axes])) if self.axes else 1
        return np.asarray(x.mean(axis=self.axes, keepdims=keepdims))

    def backward(self, g):
        g = _expand_back(g, self.axes, self.keepdims, self.shape) * (1.0 / self.n)
        return _broadcast(g, self.shape)


class Max(Function):
    """max over axes; the gradient is shared equally by all entries equal to the maximum."""

    reduce = staticmethod(np.max)

    def forward(self, x, axis=None, keepdims=False):
        self.axes, self.keepdims = normalize_axis(axis, x.ndim), keepdims
        if x.size == 0:
            raise ValueError(f"{type(self).__name__.lower()}: cannot reduce an empty tensor of shape {x.shape}")
        out = self.reduce(x, axis=self.axes, keepdims=True)
        self.x, self.out_k = x, out
        return np.asarray(out if keepdims else out.reshape([s for i, s in enumerate(x.shape) if i not in self.axes]))

    def backward(self, g):
        mask = self.x == self.out_k
        # the count in g's dtype: an int64 count would make g / count a float64 temporary for float32 inputs
        count = mask.sum(axis=self.axes, keepdims=True, dtype=g.dtype)
        g = _expand_back(g, self.axes, self.keepdims, self.x.shape)
        return mask * (g / count)


class Min(Max):
    reduce = staticmethod(np.min)


class Var(Function):
    """sum((x - mean)^2) / (n - correction); d/dx_i = 2 (x_i - mean) / (n - correction) (the mean's own
    dependence on x_i cancels because the deviations sum to zero)."""

    def forward(self, x, axis=None, keepdims=False, correction=0):
        self.axes, self.keepdims, self.shape = normalize_axis(axis, x.ndim), keepdims, x.shape
        n = int(np.prod([x.shape[a] for a in self.axes])) if self.axes else 1
        self.denom = max(n - correction, 0)
        self.centered = x - x.mean(axis=self.axes, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(
                (self.centered * self.centered).sum(axis=self.axes, keepdims=keepdims) / x.dtype.type(self.denom)
            )

    def backward(self, g):
        g = _expand_back(g, self.axes, self.keepdims, self.shape)
        # n <= correction: the forward divided by zero (nan/inf); inf here makes the gradient nan/inf too, as torch's,
        # instead of a Python ZeroDivisionError.
        scale = 2.0 / self.denom if self.denom else float("inf")
        with np.errstate(invalid="ignore"):
            return g * self.centered * scale


class Softmax(Function):
    """y = exp(x - max) / sum(exp(x - max)); backward: dx = y * (g - sum(g * y)).

    Subtracting the max changes nothing mathematically (it cancels) but keeps exp from overflowing, so inputs of
    magnitude 1e3 are exact.
    """

    def forward(self, x, axis=-1):
        e = np.exp(x - x.max(axis=axis, keepdims=True))
        self.y, self.axis = e / e.sum(axis=axis, keepdims=True), axis
        return self.y

    def backward(self, g):
        y = self.y
        return y * (g - (g * y).sum(axis=self.axis, keepdims=True))


class LogSoftmax(Function):
    """y = x - logsumexp(x); backward: dx = g - softmax(x) * sum(g)."""

    def forward(self, x, axis=-1):
        shifted = x - x.max(axis=axis, keepdims=True)
        self.y = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
        self.axis = axis
        return self.y

    def backward(self, g):
        return g - np.exp(self.y) * g.sum(axis=self.axis, keepdims=True)
