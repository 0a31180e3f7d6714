"""gradcheck itself: it accepts correct gradients, and rejects a backward that is 1% off, naming the input, the
element and both values."""

from __future__ import annotations

import re

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import Function, GradcheckError, Tensor, gradcheck


class MulOnePercentOff(Function):
    """a * b whose gradient for b is 1% too large at element (1, 2) only."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        gb = g * self.a
        gb[1, 2] *= 1.01
        return g * self.b, gb


class ScaleOnePercentOff(Function):
    def forward(self, x):
        return 3.0 * x

    def backward(self, g):
        return g * 3.0 * 1.01


class ForgetsAnInput(Function):
    def forward(self, a, b):
        return a + b

    def backward(self, g):
        return g, None  # b's gradient is silently dropped


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    return (Tensor(rng.uniform(1, 2, (2, 3)), requires_grad=True),
            Tensor(rng.uniform(1, 2, (2, 3)), requires_grad=True))


def test_gradcheck_rejects_a_backward_one_percent_off_and_names_input_element_and_values():
    a, b = _inputs()
    with pytest.raises(GradcheckError) as info:
        gradcheck(MulOnePercentOff.apply, a, b)
    msg = str(info.value)
    assert "input 1" in msg and "element (1, 2)" in msg
    analytical, numerical = (float(v) for v in re.search(r"analytical (\S+) != numerical (\S+)", msg).groups())
    assert analytical == pytest.approx(1.01 * numerical, rel=1e-6)


def test_gradcheck_rejects_one_percent_off_everywhere():
    with pytest.raises(GradcheckError, match=r"input 0 \(shape \(4,\)\), element \(0,\)"):
        gradcheck(ScaleOnePercentOff.apply, Tensor(np.linspace(-1, 1, 4), requires_grad=True))


def test_gradcheck_rejects_a_missing_gradient():
    a, b = _inputs()
    with pytest.raises(GradcheckError, match="input 1"):
        gradcheck(ForgetsAnInput.apply, a, b)


def test_gradcheck_accepts_correct_gradients_and_returns_true():
    a, b = _inputs()
    assert gradcheck(lambda a, b: (a * b).log() / b, a, b) is True


def test_gradcheck_works_in_float64_on_float32_inputs_without_touching_them():
    x = Tensor(np.array([0.5, 1.5], np.float32), requires_grad=True)
    seen = []

    def f(t):
        seen.append(t.dtype)
        return t.exp()

    assert gradcheck(f, x)
    assert set(seen) == {np.dtype(np.float64)}
    np.testing.assert_array_equal(x.data, np.array([0.5, 1.5], np.float32))
    assert x.grad is None and x.dtype == np.float32


def test_gradcheck_skips_inputs_without_grad_and_passes_other_arguments_through():
    a = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    c = Tensor(np.array([3.0, 4.0]))
    assert gradcheck(lambda a, c, k: (a * c) ** k, a, c, 2)
    with pytest.raises(ValueError, match="no input"):
        gradcheck(lambda c: c * 2.0, c)


def test_gradcheck_error_is_exported_and_an_assertion_error():
    assert tl.GradcheckError is GradcheckError and issubclass(GradcheckError, AssertionError)


def test_tolerances_are_respected():
    x = Tensor(np.array([1.0]), requires_grad=True)
    assert gradcheck(ScaleOnePercentOff.apply, x, rtol=0.02)  # 1% off passes a 2% tolerance
