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
import traceback

import numpy as np

# Grad mode and anomaly mode are process-global switches, as in PyTorch (single-threaded use).
_grad_enabled = True
_anomaly_enabled = False


def is_grad_enabled() -> bool:
    return _grad_enabled


class no_grad:
    """Context manager and decorator that disables graph building (torch.no_grad)."""

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


Tensor = None  # set by tensor.py once Tensor exists (avoids an import on every op)


def _user_frame() -> str:
    """The innermost stack frame outside tinygrad_lite: the line of user code that called the op."""
    here = __file__.rsplit("/", 1)[0]
    for frame in reversed(traceback.extract_stack()[:-1]):
        if not frame.filename.startswith(here):
            return f'File "{frame.filename}", line {frame.lineno}, in {frame.name}: {frame.line}'
    return "<unknown>"


def _finite(a) -> bool:
    return a is None or not np.issubdtype(np.asarray(a).dtype, np.floating) or bool(np.isfinite(a).all())


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
        except AttributeError:
            bad = next(t for t in tensors if not isinstance(t, Tensor))
            raise TypeError(
                f"{cls.__name__}.apply takes Tensors as positional arguments, got {type(bad).__name__}"
            ) from None
        ctx = cls()
        # Set before forward so forward may skip saving what no backward will need.
        ctx.needs_input_grad = needs
        out = ctx.forward(*arrays, **kwargs)
        if _anomaly_enabled and not _finite(out):
            raise AnomalyError(f"{cls.__name__} produced NaN/Inf in forward, called from {_user_frame()}")
        requires_grad = _grad_enabled and True in needs
        result = Tensor._wrap(out, requires_grad)
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
