"""Grader of exercise 03: unbroadcast, Add.backward and Mul.backward against tinygrad_lite/ops/elementwise.py."""

from __future__ import annotations

import numpy as np

import tinygrad_lite.ops.elementwise as E
from tinygrad_lite import use_implementations

from ..grading.helpers import case, compare, forward_backward, gradcheck, random, tensor

TOPIC = "backward of add and mul with broadcasting (unbroadcast)"
LIBRARY = "tinygrad_lite/ops/elementwise.py (unbroadcast, Add, Mul)"
HINTS = [
    "Start from the shapes. For grad (2, 3, 4) and shape (4,), the input was copied 2 * 3 times along two new leading "
    "axes: grad.sum(axis=(0, 1)) has shape (4,). For grad (4, 3) and shape (4, 1), it was copied along axis 1: "
    "grad.sum(axis=1, keepdims=True) has shape (4, 1).",
    "Do it in two steps: first sum the grad.ndim - len(shape) leading axes away (no keepdims), then, now that both "
    "have the same number of axes, sum with keepdims=True over every axis i where shape[i] == 1 and "
    "grad.shape[i] != 1.",
    "For Mul: d(a * b)/da = b, so da = unbroadcast(grad * b, a.shape); multiply first, then unbroadcast, because "
    "grad * b has the output's (broadcast) shape. Add's local derivative is 1: da = unbroadcast(grad, a.shape).",
]

# (a.shape, b.shape): new leading axes, size-1 axes stretched, both, a scalar, a batch of one, no broadcast
SHAPES = [((2, 3, 4), (4,)), ((4, 1), (1, 3)), ((2, 1, 4), (3, 1)), ((), (2, 3)), ((1, 5, 2), (5, 2)),
          ((2, 5, 4), (5, 4)), ((3, 1, 1), (1, 1, 2)), ((2, 3), (2, 3)), ((1, 3), (1, 3))]


def unbroadcast_mistakes(grad: np.ndarray, shape: tuple) -> list:
    extra = grad.ndim - len(shape)
    lead = tuple(range(extra))
    stretched = tuple(i + extra for i, n in enumerate(shape) if n == 1 and grad.shape[i + extra] != 1)
    n = max(grad.size // max(int(np.prod(shape)), 1), 1)
    return [
        (grad, "you returned grad unchanged: sum it over the axes that broadcasting added or stretched"),
        (lambda: grad.sum(axis=lead + stretched),
         "the size-1 axes of `shape` must stay: sum over them with keepdims=True (or reshape to `shape`)"),
        (lambda: grad.sum(axis=lead + stretched, keepdims=True),
         "the leading axes broadcasting added must go: sum them away without keepdims"),
        (lambda: E.unbroadcast(grad, shape) / n, "you averaged: every copy contributed fully, so sum (not mean)"),
        (lambda: grad.sum(axis=tuple(range(len(shape), grad.ndim))),
         "NumPy aligns shapes from the right: the axes broadcasting added are the leading ones, not the last"),
    ]


def mul_mistakes(g, x, other, name: str, other_name: str) -> list:
    """Known-wrong gradients of x in x * other (name: "da" or "db")."""
    return [
        (g * other, f"{name} must be unbroadcast to the input's shape: unbroadcast(grad * {other_name}, shape)"),
        (lambda: E.unbroadcast(g * x, x.shape), f"{name} is grad * {other_name}, the other input"),
        (lambda: E.unbroadcast(np.broadcast_to(other, g.shape), x.shape), f"multiply by grad: grad * {other_name}"),
        (lambda: E.unbroadcast(g, x.shape) * E.unbroadcast(np.broadcast_to(other, g.shape), x.shape),
         f"multiply grad * {other_name} first, then unbroadcast the product"),
    ]


def check(mod) -> None:
    for sa, sb in SHAPES:
        out_shape = np.broadcast_shapes(sa, sb)
        g = random(out_shape, seed=1)
        for name, shape in (("a", sa), ("b", sb)):
            with case(f"unbroadcast(grad of shape {out_shape}, {shape}) (input {name} of {sa} + {sb})"):
                compare("unbroadcast's result", mod.unbroadcast(g.copy(), shape), E.unbroadcast(g, shape),
                        mistakes=unbroadcast_mistakes(g, shape))
    for sa, sb in SHAPES:
        a, b = random(sa, seed=2), random(sb, seed=3)
        g = random(np.broadcast_shapes(sa, sb), seed=4)
        with case(f"Add: a {sa} + b {sb}"):
            out, (da, db), _ = forward_backward(mod.Add, [a, b], g.copy())
            compare("da", da, E.unbroadcast(g, sa), mistakes=[(g, "da must be unbroadcast to a's shape")])
            compare("db", db, E.unbroadcast(g, sb), mistakes=[(g, "db must be unbroadcast to b's shape")])
        with case(f"Mul: a {sa} * b {sb}"):
            out, (da, db), _ = forward_backward(mod.Mul, [a, b], g.copy())
            compare("da", da, E.unbroadcast(g * b, sa), mistakes=mul_mistakes(g, a, b, "da", "b"))
            compare("db", db, E.unbroadcast(g * a, sb), mistakes=mul_mistakes(g, b, a, "db", "a"))
    for sa, sb in (((2, 3, 4), (4,)), ((3, 1), (1, 2)), ((), (2, 2))):
        with case(f"gradcheck of a * b + a with a {sa}, b {sb}"):
            gradcheck("a * b + a", lambda x, y: mod.Add.apply(mod.Mul.apply(x, y), x),
                      tensor(random(sa, seed=5)), tensor(random(sb, seed=6)))
    _check_in_the_library(mod)


def _check_in_the_library(mod) -> None:
    """The library's own expressions, with your code plugged in, give the library's gradients."""
    x, w, b = random((2, 3, 4), seed=7), random((4,), seed=8), random((3, 1), seed=9)

    def run():
        tx, tw, tb = tensor(x), tensor(w), tensor(b)
        ((tx * tw + tb) - tw / (tb * tb + 1.0)).sum().backward()
        return tx.grad, tw.grad, tb.grad

    expected = run()
    with case("the library's (x * w + b - w / (b * b + 1)).sum().backward() with your code in place of its own, "
              "x (2, 3, 4), w (4,), b (3, 1)"), use_implementations(plug(mod)):
        got = run()
    for name, g, e in zip(("x.grad", "w.grad", "b.grad"), got, expected):
        compare(name, g, e)


def plug(mod) -> dict:
    """Your unbroadcast for every op of the library, your Add and Mul for its + and *."""
    return {"unbroadcast": mod.unbroadcast, E.Add: mod.Add, E.Mul: mod.Mul}
