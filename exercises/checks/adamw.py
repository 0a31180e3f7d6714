"""Grader of exercise 08: adamw_step beside tinygrad_lite.optim.AdamW, step by step."""

from __future__ import annotations

import numpy as np

from tinygrad_lite import Tensor, use_implementations
from tinygrad_lite.optim import AdamW

from ..grading.helpers import case, compare, random

TOPIC = "one AdamW step (torch's exact update)"
LIBRARY = "tinygrad_lite/optim.py (Adam._update, AdamW)"
HINTS = [
    "Work in place on the arrays you are given: p *= 1.0 - lr * wd; m *= beta1; m += (1.0 - beta1) * g; the same for "
    "v with g * g. `p = p - x` makes a new array and leaves the optimizer's p as it was.",
    "Bias correction uses the step number t, which starts at 1: lr / (1 - beta1**t) for m, and sqrt(v) divided by "
    "math.sqrt(1 - beta2**t) for v.",
    "torch's denominator is sqrt(v) / sqrt(1 - beta2^t) + eps: eps is added after the bias-corrected square root, "
    "not inside it. Then p -= step_size * m / denom.",
]
CONFIGS = [  # (what, shape, dtype, lr, betas, eps, wd)
    ("p (3, 4), lr 1e-2, weight decay 0.1", (3, 4), np.float64, 1e-2, (0.9, 0.999), 1e-8, 0.1),
    ("p (5,), no weight decay", (5,), np.float64, 3e-3, (0.9, 0.95), 1e-8, 0.0),
    ("p (2, 3), a large eps 0.1", (2, 3), np.float64, 1e-2, (0.8, 0.99), 0.1, 0.01),
    ("p (1,), a single element", (1,), np.float64, 1e-1, (0.9, 0.999), 1e-8, 0.1),
    ("p (4, 8) float32", (4, 8), np.float32, 1e-3, (0.9, 0.999), 1e-8, 0.1),
]

def _variants(p, g, m, v, t, lr, b1, b2, eps, wd):
    """Known-wrong (p, m, v) after one step from the state (p, m, v), with what each mistake is."""
    def adam(p, g, m1=None, v1=None, bc1=True, bc2=True, eps_inside=False, sign=-1.0):
        m1 = b1 * m + (1 - b1) * g if m1 is None else m1
        v1 = b2 * v + (1 - b2) * g * g if v1 is None else v1
        step = lr / (1 - b1 ** t) if bc1 else lr
        vc = v1 / (1 - b2 ** t) if bc2 else v1
        denom = np.sqrt(vc + eps) if eps_inside else np.sqrt(vc) + eps
        return p + sign * step * m1 / denom

    decayed = p * (1 - lr * wd)
    g2 = g + wd * p
    L2 = ("that is Adam's L2 penalty, g + wd * p, in the moments; AdamW's decay is decoupled: p *= 1 - lr * wd, "
          "and m and v see the plain gradient")
    return {
        "p": [(lambda: adam(p, g2, b1 * m + (1 - b1) * g2, b2 * v + (1 - b2) * g2 * g2),
               "that is Adam's L2 penalty (g + wd * p); AdamW's decay is decoupled: p *= 1 - lr * wd first, and the "
               "moments see the plain gradient"),
              (lambda: adam(decayed, g, bc1=False), "the bias correction of m is missing: lr / (1 - beta1**t)"),
              (lambda: adam(decayed, g, bc2=False),
               "the bias correction of v is missing: sqrt(v) / math.sqrt(1 - beta2**t)"),
              (lambda: adam(decayed, g, bc1=False, bc2=False), "both bias corrections are missing (t starts at 1)"),
              (lambda: adam(decayed, g, eps_inside=True), "eps goes outside the square root, after the bias "
                                                          "correction: sqrt(v) / sqrt(1 - beta2**t) + eps"),
              (lambda: adam(p, g), "the weight decay is missing: p *= 1 - lr * wd before the Adam step"),
              (lambda: adam(decayed, g, sign=1.0), "a step goes against the gradient: p -= step_size * m / denom"),
              (p, "p did not change: update it in place (p -= ..., p *= ...); `p = p - ...` makes a new array the "
                  "optimizer never sees"),
              (decayed, "p was only decayed: the Adam step must update it in place too (p -= ...), not p = p - ...")],
        "m": [(lambda: b1 * m + (1 - b1) * g2, L2),
              (m, "m did not change: update it in place (m *= beta1; m += ...)"),
              (lambda: (1 - b1) * m + b1 * g, "m = beta1 * m + (1 - beta1) * g: the betas are swapped")],
        "v": [(lambda: b2 * v + (1 - b2) * g2 * g2, L2),
              (v, "v did not change: update it in place (v *= beta2; v += ...)"),
              (lambda: b2 * v + (1 - b2) * g, "v averages the SQUARED gradient: (1 - beta2) * g * g"),
              (lambda: (1 - b2) * v + b2 * g * g, "v = beta2 * v + (1 - beta2) * g * g: the betas are swapped")],
    }

def check(mod) -> None:
    for ci, (desc, shape, dtype, lr, betas, eps, wd) in enumerate(CONFIGS):
        p0 = random(shape, seed=10 + ci, dtype=dtype)
        grads = [random(shape, seed=20 + 5 * ci + k, dtype=dtype) for k in range(5)]
        w = Tensor(p0.copy(), requires_grad=True)
        opt = AdamW([w], lr=lr, betas=betas, eps=eps, weight_decay=wd)
        p, m, v = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
        tol = dict(rtol=1e-5, atol=1e-7) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-13)
        for t, g in enumerate(grads, start=1):
            w.grad = g.copy()
            opt.step()
            state = opt.state[w]
            before = [a.astype(np.float64) for a in (p, g, m, v)]
            with case(f"{desc}, step {t} of 5, betas {betas}, eps {eps:g}"):
                mod.adamw_step(p, g.copy(), m, v, t, lr, betas[0], betas[1], eps, wd)
                wrong = _variants(*before, t, lr, betas[0], betas[1], eps, wd)
                compare("m", m, state["exp_avg"], dtype=True, mistakes=wrong["m"], **tol)
                compare("v", v, state["exp_avg_sq"], dtype=True, mistakes=wrong["v"], **tol)
                compare("p", p, w.data, dtype=True, mistakes=wrong["p"], **tol)
    p0, g = random((3, 3), seed=40), random((3, 3), seed=41)

    def run():
        w = Tensor(p0.copy(), requires_grad=True)
        opt = AdamW([w], lr=0.05, weight_decay=0.1)
        for _ in range(3):
            w.grad = g.copy()
            opt.step()
        return w.data

    expected = run()
    with case("tinygrad_lite.optim.AdamW, three steps, with your adamw_step plugged in"), \
            use_implementations(plug(mod)):
        got = run()
    compare("p", got, expected, rtol=1e-10, atol=1e-13)

def plug(mod) -> dict:
    """Every AdamW step of the library (every parameter of every training step) runs your function."""
    def step(p, g, m, v, t, lr, beta1, beta2, eps, wd):
        mod.adamw_step(p, g, m, v, t, lr, beta1, beta2, eps, wd)

    return {"adamw_step": step}
