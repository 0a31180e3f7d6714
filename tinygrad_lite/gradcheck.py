"""Finite-difference gradient checking in float64.

For a function f of tensors with output y, backprop gives the vector-Jacobian product J^T w for any weighting w of
the outputs. We pick a fixed random w, so the scalar L = sum(w * y) has gradient J^T w, and compare each entry with
the central difference (L(x + eps e_i) - L(x - eps e_i)) / (2 eps), whose error is O(eps^2). A random w makes it
vanishingly unlikely that a wrong Jacobian entry hides behind a zero weight. Float64 keeps the rounding error of
the difference (about 1e-16 / eps) far below the tolerance; in float32 it would be about 1e-7 / 1e-6 = 10%.
"""

from __future__ import annotations

import numpy as np

from .function import no_grad
from .tensor import Tensor


class GradcheckError(AssertionError):
    """The analytical gradient disagrees with the numerical one."""


def _as_float64(x):
    if isinstance(x, Tensor) and np.issubdtype(x.dtype, np.floating):
        return Tensor(x.data.astype(np.float64), requires_grad=x.requires_grad)
    return x


def gradcheck(fn, *inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3, seed: int = 0) -> bool:
    """Check the gradient of fn(*inputs) with respect to every input Tensor that requires grad.

    Returns True, or raises GradcheckError naming the input, the element and both values.
    """
    xs = [_as_float64(x) for x in inputs]
    checked = [i for i, x in enumerate(xs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input Tensor has requires_grad=True")

    out = fn(*xs)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    w = np.random.default_rng(seed).standard_normal(out.shape)
    (out * Tensor(w)).sum().backward()
    analytical = {i: (xs[i].grad if xs[i].grad is not None else np.zeros_like(xs[i].data)) for i in checked}

    def loss() -> float:
        with no_grad():
            return float((fn(*xs).data * w).sum())

    for i in checked:
        data = xs[i].data
        flat = data.reshape(-1)  # a view: perturbing it perturbs the input in place
        for j in range(flat.size):
            orig = flat[j]
            flat[j] = orig + eps
            plus = loss()
            flat[j] = orig - eps
            minus = loss()
            flat[j] = orig
            numerical = (plus - minus) / (2 * eps)
            a = analytical[i].reshape(-1)[j]
            if not abs(a - numerical) <= atol + rtol * abs(numerical):
                element = np.unravel_index(j, data.shape) if data.ndim else ()
                raise GradcheckError(
                    f"gradcheck: input {i} (shape {data.shape}), element {tuple(int(e) for e in element)}: "
                    f"analytical {a:.10g} != numerical {numerical:.10g} (atol {atol}, rtol {rtol})"
                )
    return True
