"""Exercise 08, reference solution: one AdamW step, with torch.optim.AdamW's exact update."""

import math

import numpy as np  # noqa: F401


def adamw_step(p, g, m, v, t, lr, beta1, beta2, eps, wd) -> None:
    """Update p, m and v in place: one AdamW step number t (from 1) with gradient g."""
    p *= 1.0 - lr * wd
    m *= beta1
    m += (1.0 - beta1) * g
    v *= beta2
    v += (1.0 - beta2) * g * g
    step_size = lr / (1.0 - beta1 ** t)
    denom = np.sqrt(v) / math.sqrt(1.0 - beta2 ** t) + eps
    p -= step_size * m / denom
