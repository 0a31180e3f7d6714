"""Grader of exercise 08: Softmax forward and backward against tinygrad_lite/ops/reduce.py."""

from __future__ import annotations

import numpy as np

import tinygrad_lite.ops.reduce as R
from tinygrad_lite import Tensor, use_implementations

from ..grading.helpers import case, compare, forward_backward, gradcheck, random, tensor

TOPIC = "softmax: forward and backward, stable for large logits"
LIBRARY = "tinygrad_lite/ops/reduce.py (Softmax)"
HINTS = [
    "Forward: m = x.max(axis=axis, keepdims=True); e = np.exp(x - m); y = e / e.sum(axis=axis, keepdims=True). "
    "keepdims=True keeps the reduced axis with size 1, so m and the sum broadcast back against x along that axis.",
    "Backward: a row's output y_i depends on every x_j of the row (through the sum), so dx is not g * y * (1 - y): "
    "that is only the diagonal of the Jacobian. With s = sum(g * y) along the axis (keepdims), dx = y * (g - s).",
    "An entry of -inf (a masked position) gives exp(-inf) = 0, so its weight is 0 and nothing special is needed, as "
    "long as the row has one finite entry. Save y and axis on self in forward; backward needs nothing else.",
]

# (shape, axis, dtype, how the input is made)
CASES = [
    ((2, 3, 5), -1, np.float64, "normal"),
    ((4,), -1, np.float64, "normal"),
    ((1, 6), -1, np.float64, "normal"),
    ((3, 4), 0, np.float64, "normal"),
    ((2, 3, 4), 1, np.float64, "normal"),
    ((3, 5), -1, np.float64, "large"),
    ((2, 5), -1, np.float64, "scales"),
    ((2, 3, 6), -1, np.float64, "masked"),
    ((4, 8), -1, np.float32, "normal"),
    ((4, 8), -1, np.float32, "large"),
]


def make(shape, dtype, kind: str) -> np.ndarray:
    x = random(shape, seed=1)
    if kind == "large":
        x = 1000.0 + 10.0 * x  # exp overflows without the max subtracted
    elif kind == "scales":
        x[0] += 1000.0  # one row near 1000, the other near 0: each needs its own max
    elif kind == "masked":
        x[..., 4:] = -np.inf  # the last keys of every row masked, as causal attention does
    return x.astype(dtype)


def library(x, axis, g):
    tx = tensor(x)
    y = R.Softmax.apply(tx, axis=axis)
    (y * Tensor(g)).sum().backward()
    return y.data, tx.grad


def forward_mistakes(x, axis) -> list:
    def no_max():
        with np.errstate(over="ignore", invalid="ignore"):
            e = np.exp(x)
            return e / e.sum(axis=axis, keepdims=True)

    def global_max():
        with np.errstate(invalid="ignore"):
            e = np.exp(x - x.max())
            return e / e.sum(axis=axis, keepdims=True)

    def wrong_axis():
        other = 0 if axis in (-1, x.ndim - 1) else -1
        e = np.exp(x - x.max(axis=other, keepdims=True))
        return e / e.sum(axis=other, keepdims=True)

    return [
        (no_max, "exp overflowed: subtract the max of each row, x - x.max(axis=axis, keepdims=True), before exp"),
        (global_max, "subtract each row's own max (x.max(axis=axis, keepdims=True)), not the max of the whole array: "
                     "a row far below the largest row underflows to 0 / 0"),
        (wrong_axis, "the softmax goes along `axis` (use the argument: max and sum with axis=axis)"),
        (lambda: np.exp(x) / np.exp(x).sum(), "normalise each row separately: sum with axis=axis, keepdims=True"),
    ]


def backward_mistakes(y, g, axis) -> list:
    return [
        (lambda: g * y * (1 - y), "that is only the diagonal of the Jacobian: each y_i depends on every x_j of its "
                                  "row, dx = y * (g - sum(g * y, along the axis))"),
        (lambda: y * (g - g.sum(axis=axis, keepdims=True)), "the sum is of g * y, not of g: dx = y * (g - sum(g * y))"),
        (lambda: y * (g - (g * y).sum()), "sum g * y along the axis only (axis=axis, keepdims=True), not over all"),
        (lambda: g - (g * y).sum(axis=axis, keepdims=True), "multiply by y: dx = y * (g - sum(g * y))"),
        (lambda: y * g, "missing the term from the normalisation: dx = y * (g - sum(g * y))"),
    ]


def check(mod) -> None:
    for shape, axis, dtype, kind in CASES:
        x = make(shape, dtype, kind)
        g = random(shape, seed=2).astype(dtype)
        y_ok, dx_ok = library(x, axis, g)
        tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-7, atol=1e-10)
        label = {"normal": "", "large": ", logits near 1000", "scales": ", one row near 1000 and one near 0",
                 "masked": ", the last two entries of each row -inf (masked)"}[kind]
        with case(f"x {shape} {np.dtype(dtype).name}, axis {axis}{label}"):
            with np.errstate(all="ignore"):  # the learner's nan is reported by compare, not warned about
                y, (dx,), _ = forward_backward(mod.Softmax, [x.copy()], g.copy(), axis=axis)
            x64 = x.astype(np.float64)
            compare("y", y, y_ok, dtype=True, mistakes=forward_mistakes(x64, axis), **tol)
            compare("dx", dx, dx_ok, dtype=True, mistakes=backward_mistakes(y_ok.astype(np.float64),
                                                                            g.astype(np.float64), axis), **tol)
    for shape, axis in (((2, 3, 4), -1), ((3, 4), 0)):
        with case(f"gradcheck of Softmax.apply(x {shape}, axis={axis})"):
            gradcheck("your Softmax", lambda t, axis=axis: mod.Softmax.apply(t, axis=axis), tensor(random(shape)))
    _check_in_the_library(mod)


def _check_in_the_library(mod) -> None:
    x, w = random((2, 3, 5), seed=3), random((2, 3, 5), seed=4)

    def run():
        tx = tensor(x)
        y = tx.softmax(axis=-1)
        ((y * Tensor(w)).sum(axis=-1) * (y * y).sum(axis=-1)).sum().backward()
        return y.data, tx.grad

    expected = run()
    with case("the library's Tensor.softmax with your Softmax plugged in, x (2, 3, 5)"), \
            use_implementations(plug(mod)):
        got = run()
    compare("y", got[0], expected[0])
    compare("x.grad", got[1], expected[1])


def plug(mod) -> dict:
    """Every softmax of the library (Tensor.softmax, the attention weights of the reference path) runs your class."""
    return {R.Softmax: mod.Softmax}
