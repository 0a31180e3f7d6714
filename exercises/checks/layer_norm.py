"""Grader of exercise 04: LayerNorm forward and backward against the library's F.layer_norm."""

from __future__ import annotations

import numpy as np

import tinygrad_lite.functional as F
from tinygrad_lite import Tensor, use_implementations

from ..grading.helpers import case, compare, forward_backward, gradcheck, random, tensor

TOPIC = "layer norm: forward and backward"
LIBRARY = "tinygrad_lite/fused/norm.py (LayerNorm), tinygrad_lite/functional.py (layer_norm_reference)"
HINTS = [
    "Forward in five lines, each as the docstring writes it: mu = x.mean(axis=-1, keepdims=True), the centred "
    "input, var = mean of its square (keepdims again), rstd = 1.0 / np.sqrt(var + eps), xhat = centred * rstd. "
    "Keep xhat, rstd and weight on self; y = xhat * weight + bias.",
    "dweight and dbias have shape (C,): sum over every axis but the last, axis=tuple(range(grad.ndim - 1)). "
    "dbias = grad summed; dweight = (grad * xhat) summed: the gain multiplies xhat, not x.",
    "dx: start from dxhat = grad * weight. If mu and var were constants, dx would be dxhat * rstd. They are not: "
    "subtract the row mean of dxhat (mu moves with x) and xhat times the row mean of dxhat * xhat (var moves with x), "
    "then multiply by rstd.",
]


def library(x, w, b, eps, g):
    """(y, dx, dw, db) of the library's layer norm for output gradient g."""
    tx, tw, tb = tensor(x), tensor(w), tensor(b)
    y = F.layer_norm(tx, tw, tb, eps=eps)
    (y * Tensor(g)).sum().backward()
    return y.data, tx.grad, tw.grad, tb.grad


def _forward_mistakes(x, w, b, eps):
    mu = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    return [
        (lambda: (x - mu) / np.sqrt(x.var(axis=-1, ddof=1, keepdims=True) + eps) * w + b,
         "that is the unbiased variance (divide by C - 1); layer norm divides by C, as torch"),
        (lambda: (x - mu) / (np.sqrt(var) + eps) * w + b, "eps goes inside the square root: sqrt(var + eps)"),
        (lambda: (x - mu) / np.sqrt(var + eps), "forgot the gain and the bias: y = xhat * weight + bias"),
        (lambda: (x - mu) / np.sqrt(var + eps) * w, "forgot the bias: y = xhat * weight + bias"),
        (lambda: (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + eps) * w + b,
         "normalise over the last axis (the features), axis=-1, not axis 0"),
        (lambda: x / np.sqrt(var + eps) * w + b, "subtract the mean before scaling: xhat = (x - mu) * rstd"),
    ]


def _backward_mistakes(x, w, eps, g, dx_ok):
    xhat = (x - x.mean(axis=-1, keepdims=True)) / np.sqrt(x.var(axis=-1, keepdims=True) + eps)
    rstd = 1.0 / np.sqrt(x.var(axis=-1, keepdims=True) + eps)
    dxhat = g * w
    rows = tuple(range(x.ndim - 1))
    dx = [
        (lambda: dxhat * rstd, "mu and var depend on x: dx needs the two mean terms, "
                               "rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))"),
        (lambda: rstd * (dxhat - dxhat.mean(axis=-1, keepdims=True)),
         "missing the variance's term: - xhat * mean(dxhat * xhat)"),
        (lambda: rstd * (dxhat - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True)),
         "missing the mean's term: - mean(dxhat)"),
        (lambda: rstd * (g - g.mean(axis=-1, keepdims=True) - xhat * (g * xhat).mean(axis=-1, keepdims=True)),
         "start from dxhat = grad * weight: the gain sits between xhat and y"),
        (lambda: dx_ok / rstd, "multiply by rstd at the end"),
    ]
    dw = [
        (lambda: g * xhat, "sum dweight over every axis but the last: it has shape (C,)"),
        (lambda: (g * xhat).sum(axis=0), "sum dweight over every axis but the last, not only axis 0"),
        (lambda: (g * x).sum(axis=rows), "dweight = sum(grad * xhat): the gain multiplies the normalised input"),
        (lambda: g.sum(axis=rows), "that is dbias; dweight = sum(grad * xhat)"),
    ]
    db = [
        (lambda: g, "sum dbias over every axis but the last: it has shape (C,)"),
        (lambda: g.sum(axis=0), "sum dbias over every axis but the last, not only axis 0"),
        (lambda: (g * xhat).sum(axis=rows), "that is dweight; dbias = sum(grad)"),
    ]
    return dx, dw, db


CASES = [  # (shape, eps, dtype, offset of the rows)
    ((2, 3, 5), 1e-5, np.float64, 0.0),
    ((1, 4), 1e-5, np.float64, 0.0),
    ((6,), 1e-5, np.float64, 0.0),
    ((2, 1, 3, 8), 1e-5, np.float64, 0.0),
    ((3, 5), 0.5, np.float64, 0.0),
    ((2, 1), 1e-5, np.float64, 0.0),
    ((4, 16), 1e-5, np.float32, 0.0),
    ((4, 16), 1e-5, np.float32, 300.0),
]


def check(mod) -> None:
    for shape, eps, dtype, offset in CASES:
        C = shape[-1]
        x = (random(shape, seed=1) + offset).astype(dtype)
        w, b = (1.0 + 0.5 * random((C,), seed=2)).astype(dtype), random((C,), seed=3).astype(dtype)
        g = random(shape, seed=4).astype(dtype)
        y_ok, dx_ok, dw_ok, db_ok = library(x, w, b, eps, g)
        tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-6, atol=1e-9)
        desc = f"x {shape} {np.dtype(dtype).name}" + (f" (rows near {offset:g})" if offset else "") + \
            f", weight and bias ({C},), eps {eps:g}"
        x64, w64, b64, g64 = (a.astype(np.float64) for a in (x, w, b, g))
        with case(desc):
            y, (dx, dw, db), _ = forward_backward(mod.LayerNorm, [x.copy(), w.copy(), b.copy()], g.copy(), eps=eps)
            far = "the rows far from zero fail where the others passed: var = mean(x^2) - mu^2 cancels " \
                  "catastrophically in float32; compute mean((x - mu)^2)" if offset else ""
            compare("y", y, y_ok, dtype=True, mistakes=_forward_mistakes(x64, w64, b64, eps), otherwise=far, **tol)
            dx_m, dw_m, db_m = _backward_mistakes(x64, w64, eps, g64, dx_ok)
            compare("dx", dx, dx_ok, dtype=True, mistakes=dx_m, **tol)
            compare("dweight", dw, dw_ok, dtype=True, mistakes=dw_m, **tol)
            compare("dbias", db, db_ok, dtype=True, mistakes=db_m, **tol)
    with case("gradcheck of LayerNorm.apply(x (2, 3, 4), weight, bias)"):
        gradcheck("your LayerNorm", lambda x, w, b: mod.LayerNorm.apply(x, w, b, eps=1e-5), tensor(random((2, 3, 4))),
                  tensor(1.0 + random((4,), seed=5)), tensor(random((4,), seed=6)))
    _check_in_the_library(mod)


def _check_in_the_library(mod) -> None:
    x, w, b = random((2, 3, 6), seed=7), 1.0 + random((6,), seed=8), random((6,), seed=9)
    for label, use_w, use_b in (("weight and bias", True, True), ("weight, no bias (nanoGPT's)", True, False),
                                ("neither", False, False)):
        def run(use_w=use_w, use_b=use_b):
            tx, tw, tb = tensor(x), tensor(w), tensor(b)
            y = F.layer_norm(tx, tw if use_w else None, tb if use_b else None, eps=1e-5)
            (y * y).sum().backward()
            return y.data, tx.grad, tw.grad, tb.grad

        expected = run()
        with case(f"the library's F.layer_norm with your LayerNorm plugged in, {label}"), \
                use_implementations(plug(mod)):
            got = run()
        for name, a, e in zip(("y", "x.grad", "weight.grad", "bias.grad"), got, expected):
            if e is not None:
                compare(name, a, e)


def plug(mod) -> dict:
    """F.layer_norm (every LayerNorm layer) runs your class; a missing weight or bias is a constant 1 or 0."""
    def layer_norm(x, weight, bias, eps):
        C = x.shape[-1]
        weight = weight if weight is not None else Tensor(np.ones(C, dtype=x.dtype))
        bias = bias if bias is not None else Tensor(np.zeros(C, dtype=x.dtype))
        return mod.LayerNorm.apply(x, weight, bias, eps=eps)

    return {"layer_norm": layer_norm}
