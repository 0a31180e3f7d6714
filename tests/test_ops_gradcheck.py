"""Every op and every functional against central finite differences in float64 (tinygrad_lite.gradcheck), on
several shapes including broadcasting pairs, 0-d tensors and Python scalars; plus the cases finite differences
cannot see (gradients at relu's/abs's kink and among tied maxima), checked against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from _engine_cases import all_cases, as_tensors, make_inputs

import tinygrad_lite.functional as F
from tinygrad_lite import Tensor, gradcheck

CASES = all_cases()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_gradcheck(case):
    inputs = as_tensors(case, make_inputs(case))
    assert gradcheck(case.fn, *inputs)


def test_every_op_class_is_covered():
    """The table must exercise each Function of the engine: a new op without a case fails here."""
    from tinygrad_lite import ops

    seen = set()
    for case in CASES:
        for t in [case.fn(*as_tensors(case, make_inputs(case)))]:
            stack = [t]
            while stack:
                node = stack.pop()
                if node._ctx is not None:
                    seen.add(type(node._ctx).__name__)
                    stack.extend(node._ctx.parents)
    expected = {name for name in dir(ops) if isinstance(getattr(ops, name), type)}
    expected |= {"CrossEntropy", "LayerNorm", "RMSNorm", "Embedding", "Linear", "Gelu"}  # tinygrad_lite/fused/
    expected -= {"Cast"}  # float64 -> float32 loses the precision finite differences need; tested directly
    assert expected - seen == set()


def test_gradcheck_dropout_fixed_mask():
    x = Tensor(np.random.default_rng(0).standard_normal((4, 5)), requires_grad=True)
    assert gradcheck(lambda x: F.dropout(x, 0.3, True, np.random.default_rng(1)), x)


def test_gradcheck_with_inputs_not_requiring_grad():
    rng = np.random.default_rng(1)
    a = Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    b = Tensor(rng.standard_normal((3, 4)))
    assert gradcheck(lambda a, b: (a * b).tanh() @ b.T, a, b)
    assert b.grad is None


def test_gradcheck_deep_composition():
    rng = np.random.default_rng(2)
    x = Tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    w = Tensor(rng.standard_normal((4, 4)), requires_grad=True)

    def f(x, w):
        h = F.layer_norm(x @ w).gelu()
        return (h.softmax(-1) * h).sum(axis=1) + h.var(axis=(0, 1)).reshape(1, 4)

    assert gradcheck(f, x, w)


# ----------------------------------------------------------------------------- kinks and ties, exactly


def test_relu_gradient_is_zero_at_exactly_zero():
    x = Tensor([-1.0, 0.0, 2.0], requires_grad=True)
    x.relu().sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 1.0])


def test_abs_gradient_is_zero_at_exactly_zero():
    x = Tensor([-1.5, 0.0, 2.0], requires_grad=True)
    x.abs().sum().backward()
    np.testing.assert_array_equal(x.grad, [-1.0, 0.0, 1.0])


def test_max_splits_gradient_equally_among_ties():
    x = Tensor([1.0, 3.0, 3.0], requires_grad=True)
    x.max().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.5, 0.5])


def test_min_ties_along_axis_with_keepdims():
    x = Tensor([[2.0, 1.0, 1.0, 1.0], [0.0, 5.0, 0.0, 7.0]], requires_grad=True)
    y = x.min(axis=1, keepdims=True)
    np.testing.assert_array_equal(y.data, [[1.0], [0.0]])
    y.backward(np.array([[3.0], [10.0]], dtype=np.float32))
    np.testing.assert_allclose(x.grad, [[0, 1, 1, 1], [5, 0, 5, 0]], rtol=1e-6)


def test_max_ties_over_several_axes():
    x = Tensor(np.array([[[1.0, 4.0], [4.0, 0.0]], [[4.0, 4.0], [2.0, 3.0]]]), requires_grad=True)
    y = x.max(axis=(1, 2))  # block 0: two 4s, block 1: two 4s
    y.backward(np.array([2.0, 6.0]))
    np.testing.assert_array_equal(x.grad, [[[0, 1], [1, 0]], [[3, 3], [0, 0]]])


def test_all_equal_max_shares_among_all():
    x = Tensor(np.full((2, 5), 7.0), requires_grad=True)
    x.max().backward()
    np.testing.assert_allclose(x.grad, np.full((2, 5), 0.1))


def test_repeated_gather_indices_accumulate():
    x = Tensor(np.arange(4.0), requires_grad=True)
    x[np.array([0, 2, 0, 0])].backward(np.array([1.0, 10.0, 100.0, 1000.0]))
    np.testing.assert_array_equal(x.grad, [1101.0, 0.0, 10.0, 0.0])


def test_pow_zero_base_zero_exponent_has_zero_gradients():
    a = Tensor(np.zeros(2), requires_grad=True)
    b = Tensor(np.zeros(2), requires_grad=True)
    (a**b).sum().backward()  # d/da a^0 = 0 and d/db 0^b = 0 at b >= 0 (torch's conventions)
    np.testing.assert_array_equal(a.grad, [0.0, 0.0])
    np.testing.assert_array_equal(b.grad, [0.0, 0.0])


def test_pow_scalar_zero_exponent():
    x = Tensor([0.0, 2.0], requires_grad=True)
    (x**0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0])


def test_cast_gradient_comes_back_in_input_dtype():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = x.double() * 3.0
    assert y.dtype == np.float64
    y.sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])
