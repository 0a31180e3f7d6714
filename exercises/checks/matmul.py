"""Grader of exercise 05: Matmul.backward against tinygrad_lite/ops/matmul.py, batched and broadcast."""

from __future__ import annotations

import numpy as np

import tinygrad_lite.ops.elementwise as E
import tinygrad_lite.ops.matmul as M
from tinygrad_lite import use_implementations

from ..grading.helpers import case, compare, forward_backward, gradcheck, random, tensor

TOPIC = "backward of matmul (batched, broadcast)"
LIBRARY = "tinygrad_lite/ops/matmul.py (Matmul)"
HINTS = [
    "Check the shapes first. A (n, k), B (k, m), G (n, m): the only product of G and B that gives (n, k) is "
    "G @ B^T, and the only product of A and G that gives (k, m) is A^T @ G.",
    "With batch axes, transpose only the last two: b.swapaxes(-1, -2). b.T on a (2, 4, 5) array gives (5, 4, 2).",
    "A weight (4, 5) used by x (2, 3, 4) gets A^T @ G of shape (2, 4, 5): one gradient per batch row. The weight "
    "was shared, so add them up: unbroadcast(db, b.shape) sums the batch axes the input did not have.",
]

SHAPES = [((3, 4), (4, 5)), ((1, 4), (4, 1)), ((1, 1), (1, 1)), ((2, 3, 4), (4, 5)), ((2, 3, 4), (2, 4, 5)),
          ((2, 1, 3, 4), (5, 4, 2)), ((1, 3, 4), (1, 4, 2))]


def library(a, b, g):
    ta, tb = tensor(a), tensor(b)
    out = M.Matmul.apply(ta, tb)
    out.backward(g)
    return out.data, ta.grad, tb.grad


def _mistakes(a, b, g, which: str) -> list:
    bt, at = b.swapaxes(-1, -2), a.swapaxes(-1, -2)
    if which == "da":
        return [
            (lambda: np.matmul(g, bt), "dA has the batch axes of the output: unbroadcast it to a's shape "
                                       "(sum the axes a was broadcast along)"),
            (lambda: E.unbroadcast(np.matmul(g, b.T), a.shape), "transpose only the last two axes: "
                                                                  "b.swapaxes(-1, -2), not b.T"),
            (lambda: E.unbroadcast(np.matmul(g, b), a.shape), "dA = G @ B^T: B is transposed"),
        ]
    return [
        (lambda: np.matmul(at, g), "dB has the batch axes of the output: a weight shared by the batch gets the sum "
                                   "of their gradients, unbroadcast(db, b.shape)"),
        (lambda: np.matmul(at, g).mean(axis=tuple(range(g.ndim - b.ndim))),
         "you averaged over the batch: every row used the weight fully, so sum (unbroadcast), not mean"),
        (lambda: E.unbroadcast(np.matmul(at, g), b.shape).swapaxes(-1, -2),
         "dB = A^T @ G, in that order: yours is its transpose, G^T @ A"),
        (lambda: np.matmul(g.swapaxes(-1, -2), a).reshape(b.shape),
         "dB = A^T @ G, of shape (k, m); G^T @ A is (m, k), its transpose (unbroadcast reshaped it to b's shape)"),
        (lambda: E.unbroadcast(np.matmul(a.T, g), b.shape), "transpose only the last two axes: a.swapaxes(-1, -2), "
                                                            "not a.T"),
    ]


def check(mod) -> None:
    for sa, sb in SHAPES:
        a, b = random(sa, seed=1), random(sb, seed=2)
        g = random(np.matmul(a, b).shape, seed=3)
        out_ok, da_ok, db_ok = library(a, b, g)
        with case(f"A {sa} @ B {sb}"):
            out, (da, db), _ = forward_backward(mod.Matmul, [a.copy(), b.copy()], g.copy())
            compare("dA", da, da_ok, mistakes=_mistakes(a, b, g, "da"))
            compare("dB", db, db_ok, mistakes=_mistakes(a, b, g, "db"))
    for sa, sb in (((2, 3), (3, 4)), ((2, 2, 3), (3, 2))):
        with case(f"gradcheck of A {sa} @ B {sb}"):
            gradcheck("A @ B", lambda x, y: mod.Matmul.apply(x, y), tensor(random(sa, seed=4)),
                      tensor(random(sb, seed=5)))
    x, w = random((2, 3, 4), seed=6), random((4, 5), seed=7)

    def run():
        tx, tw = tensor(x), tensor(w)
        ((tx @ tw) * (tx @ tw)).sum().backward()
        return tx.grad, tw.grad

    expected = run()
    with case("the library's x @ W with your Matmul plugged in, x (2, 3, 4), W (4, 5)"), \
            use_implementations(plug(mod)):
        got = run()
    compare("x.grad", got[0], expected[0])
    compare("W.grad", got[1], expected[1])


def plug(mod) -> dict:
    """Every `@` of the library runs your class; 1-D operands (NumPy's vector rules) take the library's backward."""
    class Matmul(mod.Matmul):
        def backward(self, grad):
            if self.a.ndim < 2 or self.b.ndim < 2:
                return M.Matmul.backward(self, grad)
            return super().backward(grad)

    return {M.Matmul: Matmul}
