"""Movement ops: they move numbers around without changing them, so their backward moves gradients back.

reshape <-> reshape back, permute <-> inverse permutation, expand <-> sum over the expanded axes, indexing <->
scatter-add into zeros. The last one is the subtle case: with an integer array index the same element can be
picked twice (`x[[0, 0]]`), and both picks must add their gradients, which `np.add.at` does and `g[idx] += grad`
does not (buffered assignment keeps only the last write).
"""

from __future__ import annotations

import numpy as np

from ..function import Function
from .elementwise import unbroadcast


class Reshape(Function):
    def forward(self, x, shape):
        self.in_shape = x.shape
        try:
            return x.reshape(shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} into {tuple(shape)}") from None

    def backward(self, g):
        return g.reshape(self.in_shape)


class Permute(Function):
    def forward(self, x, axes):
        if any(not -x.ndim <= a < x.ndim for a in axes) or sorted(a % x.ndim for a in axes) != list(range(x.ndim)):
            raise ValueError(f"permute: axes {tuple(axes)} are not a permutation of a tensor with {x.ndim} dims")
        self.axes = axes
        return x.transpose(axes)

    def backward(self, g):
        return g.transpose(np.argsort([a % g.ndim for a in self.axes]))


class Expand(Function):
    """Broadcast to a larger shape (-1 keeps a size), without copying: a read-only view."""

    def forward(self, x, shape):
        shape = tuple(x.shape[i - (len(shape) - x.ndim)] if s == -1 else s for i, s in enumerate(shape))
        self.in_shape = x.shape
        try:
            return np.broadcast_to(x, shape)
        except ValueError:
            raise ValueError(f"expand: cannot expand shape {x.shape} to {shape}") from None

    def backward(self, g):
        return unbroadcast(g, self.in_shape)


def _is_advanced(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, np.ndarray) and i.ndim > 0 or isinstance(i, np.ndarray) and i.dtype == bool
               for i in items)


class Getitem(Function):
    """x[index] with ints, slices, None, Ellipsis, integer arrays and boolean masks (NumPy semantics)."""

    def forward(self, x, index):
        self.in_shape, self.dtype, self.index = x.shape, x.dtype, index
        try:
            out = x[index]
        except IndexError as e:
            raise IndexError(f"getitem: index {index!r} for a tensor of shape {x.shape}: {e}") from None
        return np.asarray(out)

    def backward(self, g):
        grad = np.zeros(self.in_shape, dtype=self.dtype)
        if _is_advanced(self.index):
            np.add.at(grad, self.index, g)  # repeated indices accumulate
        else:
            grad[self.index] = g  # basic indexing picks each element at most once
        return grad


class Cat(Function):
    def forward(self, *xs, axis=0):
        if not xs:
            raise ValueError("cat: needs at least one tensor")
        if not -xs[0].ndim <= axis < xs[0].ndim:
            raise IndexError(f"cat: axis {axis} is out of range for tensors with {xs[0].ndim} dimensions")
        try:
            out = np.concatenate(xs, axis=axis)
        except ValueError:
            raise ValueError(f"cat: shapes {[x.shape for x in xs]} do not match outside axis {axis}") from None
        self.axis, self.bounds = axis, np.cumsum([x.shape[axis] for x in xs])[:-1]
        return out

    def backward(self, g):
        return tuple(np.split(g, self.bounds, axis=self.axis))


class Stack(Function):
    def forward(self, *xs, axis=0):
        if not xs:
            raise ValueError("stack: needs at least one tensor")
        if len({x.shape for x in xs}) != 1:
            raise ValueError(f"stack: all tensors need the same shape, got {[x.shape for x in xs]}")
        if not -xs[0].ndim - 1 <= axis <= xs[0].ndim:
            raise IndexError(f"stack: axis {axis} is out of range for a result with {xs[0].ndim + 1} dimensions")
        self.axis = axis % (xs[0].ndim + 1)
        return np.stack(xs, axis=axis)

    def backward(self, g):
        return tuple(np.take(g, i, axis=self.axis) for i in range(g.shape[self.axis]))
