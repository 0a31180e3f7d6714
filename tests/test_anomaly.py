"""detect_anomaly: NaN/Inf in a forward or a backward is an error naming the op and the user's line that made it."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import tinygrad_lite as tl
import tinygrad_lite.functional as F
from tinygrad_lite import AnomalyError, Tensor, detect_anomaly

# ----------------------------------------------------------------------------- anomaly detection


def _line_of(marker: str) -> int:
    src, start = inspect.getsourcelines(inspect.currentframe().f_back.f_code)
    return start + next(i for i, line in enumerate(src) if marker in line)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy warns about the NaN/Inf on purpose
def test_anomaly_in_forward_names_op_and_user_line():
    x = Tensor(np.array([1.0, -1.0]))
    with detect_anomaly():
        with pytest.raises(AnomalyError) as info:
            x.log()  # MARK-forward
    msg = str(info.value)
    assert "Log" in msg and "forward" in msg
    assert "test_anomaly.py" in msg and f"line {_line_of('MARK-forward')}" in msg


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy warns about the NaN/Inf on purpose
def test_anomaly_in_backward_names_op_and_the_line_that_created_it():
    x = Tensor(np.array([0.0, 4.0]), requires_grad=True)
    with detect_anomaly():
        y = x.sqrt()  # MARK-backward  (finite forward; d sqrt/dx = inf at 0)
        z = (y * 2.0).sum()
        with pytest.raises(AnomalyError) as info:
            z.backward()
    msg = str(info.value)
    assert "Sqrt" in msg and "backward" in msg
    assert "test_anomaly.py" in msg and f"line {_line_of('MARK-backward')}" in msg


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy warns about the NaN/Inf on purpose
def test_anomaly_through_functional_names_the_user_line_not_the_library():
    x = Tensor(np.array([[1e30, 2e30]], dtype=np.float32))
    w = Tensor(np.full((2, 3), 1e30, dtype=np.float32))
    with detect_anomaly():
        with pytest.raises(AnomalyError) as info:
            F.linear(x, w)  # MARK-functional: x @ w overflows float32
    msg = str(info.value)
    assert "Linear" in msg and f"line {_line_of('MARK-functional')}" in msg and "functional.py" not in msg


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy warns about the NaN/Inf on purpose
def test_anomaly_off_lets_nan_through_and_state_is_restored():
    assert not tl.function._anomaly_enabled
    with np.errstate(invalid="ignore"):
        y = Tensor(np.array([-1.0])).log()
    assert np.isnan(y.data).all()
    with pytest.raises(AnomalyError):
        with detect_anomaly():
            Tensor(np.array([-1.0])).log()
    assert not tl.function._anomaly_enabled


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_anomaly_catches_nan_made_from_a_deliberate_inf():
    x = Tensor(np.zeros((1, 2)), requires_grad=True)
    with detect_anomaly():
        masked = x.masked_fill(np.array([[True, False]]), float("-inf"))  # allowed: asked for
        with pytest.raises(AnomalyError, match="Mul produced NaN/Inf in forward"):
            masked * 0.0  # -inf * 0 = nan: produced here


def test_anomaly_tolerates_a_deliberate_infinite_mask():
    """Causal attention masks with -inf: the Inf was asked for, and softmax turns it into exact zeros."""
    x = Tensor(np.random.default_rng(0).standard_normal((3, 3)), requires_grad=True)
    mask = np.triu(np.ones((3, 3), bool), k=1)
    with detect_anomaly():
        p = x.masked_fill(mask, float("-inf")).softmax(-1)
        (p * p).sum().backward()
    assert np.isfinite(x.grad).all()
    np.testing.assert_array_equal(x.grad[mask], 0.0)
