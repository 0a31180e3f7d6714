"""What a grader (exercises/checks/NAME.py) builds its checks from, so every failure reads the same way.

    with case("Mul: a (2, 3, 4) * b (3, 1)"):                  names the input in any failure or exception inside
        out, (da, db) = forward_backward(mod.Mul, [a, b], g)   the learner's forward and backward, called directly
        compare("da", da, expected_da, mistakes=[(wrong, "you forgot to unbroadcast: ...")])
        gradcheck("a * b", lambda x, y: mod.Mul.apply(x, y), ta, tb)

`compare` says which element differs, the expected and the computed value, and, when the learner's array equals
one of the known-wrong variants given in `mistakes` (arrays, or callables computed only on failure), what that
mistake is. A grader raises `Failure` for anything else it finds.
"""

from __future__ import annotations

import contextlib

import numpy as np

from tinygrad_lite import GradcheckError, Tensor
from tinygrad_lite import gradcheck as _gradcheck

_cases: list[str] = []  # the innermost case() last


class Failure(Exception):
    """The learner's code gave a wrong answer: `lines` say what and where, in a learner's words."""

    def __init__(self, *lines: str):
        self.lines = [line for line in lines if line]
        self.case = _cases[-1] if _cases else None
        super().__init__("; ".join(self.lines))


@contextlib.contextmanager
def case(description: str):
    """Name the input being checked; a Failure or a learner's exception inside carries the name."""
    _cases.append(description)
    try:
        yield
    except BaseException as e:
        if getattr(e, "case", None) is None:
            try:
                e.case = description
            except AttributeError:  # an exception type without a __dict__
                pass
        raise
    finally:
        _cases.pop()


def fmt(x) -> str:
    return f"{float(x):.7g}" if np.isfinite(x) else str(float(x))


def as_array(what: str, got) -> np.ndarray:
    if got is None:
        raise Failure(f"{what} is None: return a NumPy array")
    if isinstance(got, Tensor):
        raise Failure(f"{what} is a Tensor; here the arrays are NumPy arrays (use .data, or compute with np.*)")
    if isinstance(got, (list, tuple)):
        raise Failure(f"{what} is a {type(got).__name__}, not an array")
    return np.asarray(got)


def _matches(got: np.ndarray, wrong, rtol: float, atol: float) -> bool:
    try:
        wrong = np.asarray(wrong() if callable(wrong) else wrong)
        return wrong.shape == got.shape and bool(np.allclose(got, wrong, rtol=rtol, atol=atol, equal_nan=True))
    except Exception:  # a variant that does not apply to this input (its own shapes fail): not this mistake
        return False


def diagnose(got: np.ndarray, mistakes, expected=None, rtol: float = 1e-5, atol: float = 1e-7) -> str:
    """The text of the first known-wrong variant the learner's array equals, else a sign or scale that is off."""
    for wrong, text in mistakes:
        if _matches(got, wrong, rtol, atol):
            return "likely mistake: " + text
    if expected is None or expected.shape != got.shape or not np.isfinite(got).all() or not np.abs(expected).max():
        return ""
    if _matches(got, -expected, rtol, atol):
        return "likely mistake: the sign is flipped everywhere"
    factor = float(np.vdot(got, expected) / np.vdot(expected, expected))
    if abs(factor) > 1e-3 and _matches(got, factor * expected, rtol, atol):
        return f"likely mistake: every element is {factor:.6g} times the right one (a missing or extra factor)"
    return ""


def compare(what: str, got, expected, rtol: float = 1e-6, atol: float = 1e-9, mistakes=(), dtype: bool = False,
            otherwise: str = ""):
    """Raise Failure unless `got` has expected's shape (and dtype, if asked) and values to the tolerance; the
    diagnosis is the first of `mistakes` that `got` equals, a flipped sign or scale, else `otherwise`."""
    expected = np.asarray(expected)
    got = as_array(what, got)
    if got.shape != expected.shape:
        raise Failure(f"{what} has shape {got.shape}, expected {expected.shape}", diagnose(got, mistakes) or otherwise)
    if dtype and got.dtype != expected.dtype:
        raise Failure(f"{what} has dtype {got.dtype}, expected {expected.dtype} (the input's): a float64 constant "
                      "or np.float64 scalar turns float32 arrays into float64; use Python floats")
    bad = ~np.isclose(got, expected, rtol=rtol, atol=atol, equal_nan=True)
    if not bad.any():
        return
    err = np.where(bad, np.abs(got.astype(np.float64) - expected), 0.0)
    nonfinite = bad & ~np.isfinite(got)
    index = np.unravel_index(int(np.argmax(nonfinite if nonfinite.any() else np.nan_to_num(err, nan=np.inf))),
                             got.shape) if got.ndim else ()
    at = f" at element {tuple(int(i) for i in index)}" if got.ndim else ""
    summary = f"{int(bad.sum())} of {bad.size} elements differ"
    if nonfinite.any():
        summary += f", {int(nonfinite.sum())} of them nan or inf"
    raise Failure(f"{what} is wrong{at}: expected {fmt(expected[index])}, got {fmt(got[index])} ({summary})",
                  diagnose(got, mistakes, expected) or otherwise)


def check_true(condition: bool, *lines: str) -> None:
    if not condition:
        raise Failure(*lines)


def forward_backward(cls, arrays: list, grad=None, seed: int = 0, **kwargs):
    """Run a learner's Function by hand: (out, grads), grads one per input, with `grad` (default: random) as the
    gradient of the output. Every input is marked as needing its gradient."""
    ctx = cls()
    ctx.needs_input_grad = tuple(True for _ in arrays)
    out = as_array(f"{cls.__name__}.forward's result", ctx.forward(*arrays, **kwargs))
    if grad is None:
        grad = np.random.default_rng(seed).standard_normal(out.shape).astype(out.dtype)
    grads = ctx.backward(grad)
    if not isinstance(grads, (tuple, list)):
        grads = (grads,)
    if len(grads) != len(arrays):
        raise Failure(f"{cls.__name__}.backward returned {len(grads)} gradient(s) for {len(arrays)} input(s): "
                      "return one per input of forward, in the same order")
    return out, tuple(grads), grad


def gradcheck(what: str, fn, *tensors, atol: float = 1e-5, rtol: float = 1e-3) -> None:
    """tinygrad_lite.gradcheck in float64 (the tensors are converted), as a learner's failure."""
    try:
        _gradcheck(fn, *tensors, atol=atol, rtol=rtol)
    except GradcheckError as e:
        raise Failure(f"gradcheck of {what} in float64: {str(e).removeprefix('gradcheck: ')}",
                      "your backward does not match finite differences of your forward") from None


def random(shape, seed: int = 0, dtype=np.float64, scale: float = 1.0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def tensor(array: np.ndarray, requires_grad: bool = True) -> Tensor:
    return Tensor(np.array(array), requires_grad=requires_grad)
