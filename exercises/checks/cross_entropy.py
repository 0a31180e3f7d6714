"""Grader of exercise 07: log_softmax and CrossEntropy against the library's F.log_softmax and F.cross_entropy."""

from __future__ import annotations

import numpy as np

import tinygrad_lite.functional as F
from tinygrad_lite import Tensor, use_implementations

from ..grading.helpers import as_array, case, compare, forward_backward, gradcheck, random, tensor

TOPIC = "softmax and cross-entropy (stable for large logits)"
LIBRARY = "tinygrad_lite/fused/loss.py (CrossEntropy), tinygrad_lite/functional.py (cross_entropy_reference)"
HINTS = [
    "log_softmax in two lines: shifted = z - z.max(axis=-1, keepdims=True), then shifted minus the log of the row "
    "sum of np.exp(shifted) (keepdims again). Never take np.log of a softmax you computed: it can be 0.",
    "The loss picks one element per row: logp[np.arange(N), t] is the (N,) array of log p[target]. Its mean, with a "
    "minus sign, is the loss; np.asarray(value, dtype=z.dtype) makes it a 0-d array of the logits' dtype.",
    "Backward: dz = softmax(z) - onehot(t), divided by N because the loss is a mean, then multiplied by grad. "
    "softmax = np.exp(logp); subtract 1 at [np.arange(N), t].",
]
NAIVE = "subtract the row maximum before exp: exp of a large logit overflows to inf, and inf / inf is nan"


def library(z, t, g):
    tz = tensor(z)
    loss = F.cross_entropy(tz, t)
    loss.backward(np.asarray(g, dtype=z.dtype))
    return F.log_softmax(Tensor(z), axis=-1).data, loss.data, tz.grad


def _naive(z):
    with np.errstate(all="ignore"):
        e = np.exp(z)
        return [np.log(e / e.sum(axis=-1, keepdims=True)), z - np.log(e.sum(axis=-1, keepdims=True))]


def _naive_loss(z, t):
    with np.errstate(all="ignore"):
        return [-v[np.arange(len(t)), t].mean() for v in _naive(z)]


def check(mod) -> None:
    rng = np.random.default_rng(0)
    cases = [("logits (4, 5)", random((4, 5), seed=1, scale=2.0), 1.0),
             ("logits (1, 3), a batch of one", random((1, 3), seed=2), 1.0),
             ("logits (6, 2), two classes", random((6, 2), seed=3), 1.0),
             ("logits (8, 10) float32", random((8, 10), seed=4, dtype=np.float32), 1.0),
             ("logits (3, 4) near +1000 and -1000", random((3, 4), seed=5) + np.array([[1000.0], [-1000.0], [0.0]]),
              1.0),
             ("logits (5, 4) with an upstream gradient of 0.37", random((5, 4), seed=6), 0.37)]
    for desc, z, gscale in cases:
        t = rng.integers(0, z.shape[1], size=z.shape[0])
        logp_ok, loss_ok, dz_ok = library(z, t, gscale)
        tol = dict(rtol=1e-5, atol=1e-6) if z.dtype == np.float32 else dict(rtol=1e-7, atol=1e-10)
        naive = [(v, NAIVE) for v in _naive(z.astype(np.float64))]
        N = len(t)
        with case(desc):
            compare("log_softmax(z)", mod.log_softmax(z.copy()), logp_ok, dtype=True, mistakes=naive, **tol)
            loss, (dz, dt), _ = forward_backward(mod.CrossEntropy, [z.copy(), t.copy()],
                                                 np.asarray(gscale, dtype=z.dtype))
            mean = -logp_ok[np.arange(N), t]
            compare("the loss", as_array("the loss", loss).reshape(()) if np.size(loss) == 1 else loss, loss_ok,
                    dtype=True, mistakes=[(mean.sum(), "the loss is the mean over the N rows, not the sum"),
                                          (-mean.mean(), "the loss is MINUS the mean log-probability"),
                                          *[(v, NAIVE) for v in _naive_loss(z, t)]], **tol)
            p = np.exp(logp_ok.astype(np.float64))
            onehot = np.eye(z.shape[1])[t]
            compare("dz", dz, dz_ok, dtype=True, mistakes=[
                ((p - onehot) * gscale, "the loss is a mean: divide the gradient by N"),
                (p * gscale / N, "dz = softmax - onehot: subtract 1 at the target of each row"),
                ((p - onehot) / N, "multiply by grad, the upstream gradient (the chain rule)")], otherwise=NAIVE
                if not np.isfinite(as_array("dz", dz)).all() else "", **tol)
    with case("gradcheck of CrossEntropy.apply(logits (3, 4), targets)"):
        t = np.array([0, 3, 1])
        gradcheck("your CrossEntropy", lambda z: mod.CrossEntropy.apply(z, Tensor(t)), tensor(random((3, 4), seed=7)))
    z, t = random((2, 3, 5), seed=8), rng.integers(0, 5, size=(2, 3))

    def run():
        tz = tensor(z)
        loss = F.cross_entropy(tz, t)
        (loss * loss).backward()
        return loss.data, tz.grad

    expected = run()
    with case("the library's F.cross_entropy(logits (2, 3, 5), targets (2, 3)) with your class plugged in"), \
            use_implementations(plug(mod)):
        got = run()
    compare("the loss", got[0], expected[0])
    compare("logits.grad", got[1], expected[1])


def plug(mod) -> dict:
    """F.cross_entropy with the mean over every target runs your class on the (N, C) rows; label smoothing, other
    reductions and ignored targets stay the library's."""
    from tinygrad_lite.fused.loss import CrossEntropy

    def cross_entropy(logits, targets, ignore_index, label_smoothing, reduction):
        t = targets.data.reshape(-1)
        if label_smoothing or reduction != "mean" or (t == ignore_index).any():
            return CrossEntropy.apply(logits, targets, ignore_index=ignore_index, label_smoothing=label_smoothing,
                                      reduction=reduction)
        return mod.CrossEntropy.apply(logits.reshape(-1, logits.shape[-1]), Tensor(t))

    return {"cross_entropy": cross_entropy}
