"""Function: the unit of reverse-mode autodiff.

Every differentiable op is a subclass with two methods side by side:

    forward(self, *arrays, **kwargs) -> np.ndarray       computes the output, saves what backward needs on self
    backward(self, grad) -> tuple                          one gradient (np.ndarray or None) per tensor input

`MyOp.apply(*tensors, **kwargs)` runs forward on the tensors' arrays. When grad mode is on and some input requires
grad, the Function instance is attached to the output as its `_ctx`, with the inputs as `parents`: that link is the
graph that `Tensor.backward` walks. Under `no_grad()` no Function is kept, so evaluation builds no graph.

Saved arrays live in the instance `__dict__`; the bookkeeping lives in `__slots__`. Releasing a node after backward
is therefore `self.__dict__.clear()`, whatever names a subclass used for what it saved.
"""

from __future__ import annotations

import functools
import math
import os
import traceback

import numpy as np

# Grad mode, anomaly mode and the fused switch are process-global, as grad mode is in PyTorch (single-threaded use).
_grad_enabled = True
_anomaly_enabled = False
_fused_enabled = True


def is_fused_enabled() -> bool:
    """True when nn ops run as fused Functions (the default), False when they run as their composed reference twins."""
    return _fused_enabled


class set_fused:
    """Choose the path of every nn op in the stack: fused Functions (True) or compositions of primitive ops (False).

    Takes effect at once, and as a context manager restores the previous setting on exit, the pattern of
    torch.set_grad_enabled:

        tinygrad_lite.set_fused(False)          # from here on, the reference path
        with tinygrad_lite.set_fused(False):    # only inside the block
            loss = model(x, targets=y)[1]

    Layers and models read the switch each time they run, so the same model object runs either path.
    """

    def __init__(self, enabled: bool):
        global _fused_enabled
        self._prev = _fused_enabled
        _fused_enabled = bool(enabled)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        global _fused_enabled
        _fused_enabled = self._prev
        return False


# Switch point -> override, empty unless use_implementations() is active (exercises/ plugs learners' code in here).
_implementations: dict = {}


class use_implementations:
    """Run other implementations at the library's switch points, as set_fused does, e.g. a learner's (exercises/):
    `with use_implementations({Matmul: MyMatmul, "layer_norm": my_layer_norm}):`. A Function subclass key is
    replaced by its value (a class with the same forward arguments) wherever Function.apply builds it; a string key
    names a line `_implementations.get(name)` where the library calls the value instead of its own code
    ("unbroadcast", "backward_order", "layer_norm", "gelu", "cross_entropy", "adamw_step", ...).
    """

    def __init__(self, overrides: dict):
        self._prev = dict(_implementations)
        _implementations.update(overrides)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _implementations.clear()
        _implementations.update(self._prev)
        return False


def is_grad_enabled() -> bool:
    return _grad_enabled


class no_grad:
    """Context manager and decorator that disables graph building (torch.no_grad).

    Usable as `with no_grad():`, `@no_grad()` and, as in recent PyTorch, bare `@no_grad`.
    """

    def __new__(cls, fn=None):
        self = super().__new__(cls)
        return self if fn is None else self(fn)

    def __init__(self, fn=None):
        pass

    def __enter__(self):
        global _grad_enabled
        self._prev = _grad_enabled
        _grad_enabled = False
        return self

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with no_grad():
                return fn(*args, **kwargs)

        return wrapper


class enable_grad(no_grad):
    """Re-enables graph building inside a no_grad region."""

    def __enter__(self):
        global _grad_enabled
        self._prev = _grad_enabled
        _grad_enabled = True
        return self


class AnomalyError(RuntimeError):
    """A NaN or Inf appeared in forward or backward while detect_anomaly() was active."""


class detect_anomaly:
    """Context manager: raise as soon as an op produces NaN/Inf, naming the op and the user line that created it."""

    def __enter__(self):
        global _anomaly_enabled
        self._prev = _anomaly_enabled
        _anomaly_enabled = True
        return self

    def __exit__(self, *exc):
        global _anomaly_enabled
        _anomaly_enabled = self._prev
        return False


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep  # the separator: not tinygrad_lite_examples/


def _user_frame() -> str:
    """The innermost stack frame outside tinygrad_lite: the line of user code that called the op."""
    for frame in reversed(traceback.extract_stack()[:-1]):
        if not os.path.abspath(frame.filename).startswith(_PACKAGE_DIR):
            return f'File "{frame.filename}", line {frame.lineno}, in {frame.name}: {frame.line}'
    return "<unknown>"


def _finite(a) -> bool:
    return a is None or not np.issubdtype(np.asarray(a).dtype, np.floating) or bool(np.isfinite(a).all())


def _produced_nonfinite(out, arrays, kwargs) -> bool:
    """True when the op itself created a NaN (no input had one) or an Inf (no input or scalar argument had one).

    An Inf that was already in an input, or that the user asked for (`masked_fill(mask, -inf)` for attention), is
    not an anomaly of this op: the first op that produced it is the one worth naming. NaN and Inf are told apart so
    that a NaN made from a deliberate Inf (-inf * 0) is still caught where it appears.
    """
    if _finite(out):
        return False
    floats = [a for a in arrays if a.dtype.kind == "f"]
    if np.isnan(out).any() and not any(np.isnan(a).any() for a in floats):
        return True
    if np.isinf(out).any():
        asked = any(isinstance(v, float) and math.isinf(v) for v in kwargs.values())
        return not asked and not any(np.isinf(a).any() for a in floats)
    return False


class Function:
    __slots__ = ("parents", "needs_input_grad", "released", "created_at", "__dict__", "__weakref__")

    def forward(self, *arrays, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__}.forward is not implemented")

    def backward(self, grad):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__}.backward is not implemented")

    @classmethod
    def apply(cls, *tensors, **kwargs):
        try:
            arrays = [t.data for t in tensors]
            needs = tuple([t.requires_grad for t in tensors])
            wrap = tensors[0]._wrap
        except (AttributeError, IndexError):
            bad = next((t for t in tensors if not hasattr(t, "requires_grad")), None)
            got = type(bad).__name__ if tensors else "none"
            raise TypeError(f"{cls.__name__}.apply takes Tensors as positional arguments, got {got}") from None
        ctx = _implementations.get(cls, cls)()  # another class for this op while use_implementations() says so
        # Set before forward so forward may skip saving what no backward will need.
        ctx.needs_input_grad = needs
        out = ctx.forward(*arrays, **kwargs)
        if not isinstance(out, np.ndarray):
            out = np.asarray(out)  # a user op may return a NumPy or Python scalar
        if _anomaly_enabled and _produced_nonfinite(out, arrays, kwargs):
            raise AnomalyError(f"{cls.__name__} produced NaN/Inf in forward, called from {_user_frame()}")
        # Integer results (a cast to int) carry no gradient, as in torch: integer tensors never require grad.
        requires_grad = _grad_enabled and True in needs and out.dtype.kind == "f"
        result = wrap(out, requires_grad)  # Tensor._wrap, reached through an input: tensor.py imports every op
        if requires_grad:
            ctx.parents = tensors
            ctx.released = False
            ctx.created_at = _user_frame() if _anomaly_enabled else None
            result._ctx = ctx
        return result

    def release(self):
        """Drop saved arrays and parent links so the graph's memory can be freed."""
        self.__dict__.clear()
        self.parents = ()
        self.released = True

    def __repr__(self):
        return f"<{type(self).__name__}>"
