"""tinygrad_lite: a reverse-mode autograd engine over NumPy arrays, small enough to step through in a debugger."""

from .function import (AnomalyError, Function, detect_anomaly, enable_grad, is_fused_enabled, is_grad_enabled, no_grad,
                       set_fused, use_implementations)
from .gradcheck import GradcheckError, gradcheck
from .module import Module, Parameter
from .tensor import Tensor, as_generator

__all__ = [
    "AnomalyError",
    "Function",
    "GradcheckError",
    "Module",
    "Parameter",
    "Tensor",
    "detect_anomaly",
    "enable_grad",
    "as_generator",
    "gradcheck",
    "is_fused_enabled",
    "is_grad_enabled",
    "no_grad",
    "set_fused",
    "use_implementations",
]
