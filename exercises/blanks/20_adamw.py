"""Exercise 08: one AdamW step, with torch.optim.AdamW's exact update (Loshchilov & Hutter 2019).

Where it runs: after every backward of training, once per parameter tensor. Adam (Kingma & Ba 2015) keeps two
running averages per parameter element, of the gradient (m, the first moment) and of its square (v, the second),
and moves each element by about lr in the direction of m, scaled by 1 / sqrt(v). AdamW decays the weights
separately from the gradient ("decoupled"), instead of adding wd * p to the gradient as Adam's L2 penalty does.

With g the gradient, p the parameter, t the step count (1 on the first step), in this order:

    p = p * (1 - lr * wd)                                   decoupled weight decay, before anything else
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    p = p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

The two (1 - beta^t) factors undo the bias of m and v towards their zero start; eps is added after the
bias-corrected square root, as torch does (Algorithm 1 of the paper adds it to sqrt of the corrected v too, but
torch's order is the one whose numbers the grader compares).

Task: write adamw_step(p, g, m, v, t, lr, beta1, beta2, eps, wd). p, m and v are NumPy arrays of one shape, updated
IN PLACE (p -= ..., p *= ..., m[...] = ...): the optimizer keeps these very arrays between steps, so assigning a
new array to the name p changes nothing outside your function. g is read only. Return nothing. Keep float32 arrays
float32 (every scalar is a Python float).

The grader runs five steps of yours beside tinygrad_lite.optim.AdamW on the same parameters and gradients, with and
without weight decay, a large eps, float32 and a single-element parameter, comparing p, m and v after every step;
then AdamW itself with your step plugged in. With `train.py --exercises`, every optimizer step of training is yours.

    python -m exercises check adamw        python -m exercises hint adamw
"""

import math  # noqa: F401

import numpy as np  # noqa: F401


def adamw_step(p, g, m, v, t, lr, beta1, beta2, eps, wd) -> None:
    """Update p, m and v in place: one AdamW step number t (from 1) with gradient g."""
    raise NotImplementedError  # TODO
