"""tinygrad_lite: a reverse-mode autograd engine over NumPy arrays, small enough to step through in a debugger."""

from .function import AnomalyError, Function, detect_anomaly, enable_grad, is_grad_enabled, no_grad
from .gradcheck import GradcheckError, gradcheck
from .memory import keep_freed_memory
from .module import Module, Parameter
from .tensor import Tensor

__all__ = [
    "AnomalyError",
    "Function",
    "GradcheckError",
    "Module",
    "Parameter",
    "Tensor",
    "detect_anomaly",
    "enable_grad",
    "gradcheck",
    "is_grad_enabled",
    "no_grad",
]

keep_freed_memory()  # freed arrays stay in the process for the next step: see memory.py (TINYGRAD_LITE_KEEP_MEMORY=0)
