"""Helpers shared by the layers tests: gradcheck a whole Module with respect to its inputs and every parameter.

gradcheck copies each checked input to a fresh float64 Tensor, so the Module must compute with those copies, not
its own Parameters: `gradcheck_module` installs the copies in place of the Parameters for the duration of the check.
"""

from __future__ import annotations

import numpy as np

from tinygrad_lite import Module, Tensor, gradcheck


def set_by_path(module: Module, dotted: str, value) -> None:
    *path, name = dotted.split(".")
    obj = module
    for part in path:
        obj = obj[int(part)] if isinstance(obj, (list, tuple)) else getattr(obj, part)
    setattr(obj, name, value)


def gradcheck_module(module: Module, *inputs, call=None, **kwargs) -> bool:
    """gradcheck of call(module, *inputs) (default module(*inputs)) w.r.t. the inputs that require grad and every
    parameter of the module."""
    names, params = zip(*module.named_parameters())
    n = len(inputs)
    call = call or (lambda m, *xs: m(*xs))

    def fn(*tensors):
        for name, t in zip(names, tensors[n:]):
            set_by_path(module, name, t)
        return call(module, *tensors[:n])

    try:
        return gradcheck(fn, *inputs, *params, **kwargs)
    finally:
        for name, p in zip(names, params):
            set_by_path(module, name, p)


def test_gradcheck_module_restores_parameters():
    class Scale(Module):
        def __init__(self):
            from tinygrad_lite import Parameter

            self.w = Parameter(np.array([2.0, 3.0]))

        def forward(self, x):
            return x * self.w

    m = Scale()
    w = m.w
    assert gradcheck_module(m, Tensor(np.array([1.0, -1.0]), requires_grad=True))
    assert m.w is w
