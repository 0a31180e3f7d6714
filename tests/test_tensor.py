"""Tensor basics: construction and dtype rules, properties and conversions, repr, and errors meant for people."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_lite.functional as F
from tinygrad_lite import Tensor, no_grad

# ----------------------------------------------------------------------------- construction and dtype


def test_python_floats_default_to_float32():
    assert Tensor([1.0, 2.0]).dtype == np.float32
    assert Tensor(3.5).dtype == np.float32
    assert Tensor([[1, 2.5]]).dtype == np.float32


def test_float64_arrays_stay_float64_and_share_memory():
    a = np.array([1.0, 2.0])
    t = Tensor(a)
    assert t.dtype == np.float64
    a[0] = 7.0
    assert t.data[0] == 7.0  # like torch.from_numpy


def test_explicit_dtype_wins():
    assert Tensor([1.0, 2.0], dtype=np.float64).dtype == np.float64
    assert Tensor(np.array([1.5]), dtype=np.float32).dtype == np.float32
    assert Tensor([1, 2], dtype=np.float32).dtype == np.float32


def test_integers_and_bools_keep_their_dtype():
    assert np.issubdtype(Tensor([1, 2]).dtype, np.integer)
    assert Tensor(np.array([1, 2], dtype=np.int32)).dtype == np.int32
    assert Tensor([True, False]).dtype == np.bool_


def test_integer_tensors_never_require_grad():
    with pytest.raises(ValueError, match="floating-point"):
        Tensor([1, 2], requires_grad=True)
    with pytest.raises(ValueError, match="floating-point"):
        Tensor([1, 2]).requires_grad_()
    x = Tensor([1.5, 2.5], requires_grad=True)
    assert not x.astype(np.int64).requires_grad  # a cast to int carries no gradient, as in torch


def test_tensor_from_tensor_shares_data():
    a = Tensor([1.0, 2.0])
    b = Tensor(a)
    assert b.data is a.data


def test_constructors():
    z = Tensor.zeros(2, 3)
    assert z.shape == (2, 3) and z.dtype == np.float32 and not z.data.any()
    o = Tensor.ones((4,), dtype=np.float64, requires_grad=True)
    assert o.shape == (4,) and o.dtype == np.float64 and o.requires_grad
    r1 = Tensor.randn(3, 2, rng=np.random.default_rng(0))
    r2 = Tensor.randn(3, 2, rng=np.random.default_rng(0))
    assert r1.dtype == np.float32
    np.testing.assert_array_equal(r1.data, r2.data)


# ----------------------------------------------------------------------------- properties and conversions


def test_properties():
    x = Tensor(np.zeros((2, 3, 4), dtype=np.float32), requires_grad=True)
    assert x.shape == (2, 3, 4) and x.ndim == 3 and x.size == 24 and x.dtype == np.float32
    assert x.requires_grad and x.is_leaf and x.grad is None
    assert len(x) == 2
    y = x * 2
    assert y.requires_grad and not y.is_leaf


def test_numpy_item_tolist():
    x = Tensor([[1.0, 2.0]])
    assert isinstance(x.numpy(), np.ndarray) and x.numpy() is x.data
    assert Tensor([[2.5]]).item() == 2.5 and isinstance(Tensor(2.5).item(), float)
    assert x.tolist() == [[1.0, 2.0]]
    with pytest.raises(ValueError, match="one element"):
        x.item()
    assert float(Tensor(1.5)) == 1.5 and int(Tensor([3])) == 3


def test_bool_follows_the_value_not_the_length():
    assert not Tensor([0.0]) and Tensor(1.0)
    assert not (Tensor(2.0) > 3.0)
    with pytest.raises(ValueError, match="ambiguous"):
        bool(Tensor([1.0, 2.0]))


def test_detach_cuts_the_graph_and_shares_data():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    d = y.detach()
    assert not d.requires_grad and d.is_leaf and d.data is y.data
    (d * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])  # only through the x factor


def test_requires_grad_():
    x = Tensor([1.0])
    assert x.requires_grad_() is x and x.requires_grad
    assert not x.requires_grad_(False).requires_grad
    with pytest.raises(RuntimeError, match="non-leaf"):
        (Tensor([1.0], requires_grad=True) * 2).requires_grad_(False)


def test_astype_float_double():
    x = Tensor([1.0, 2.0])
    assert x.double().dtype == np.float64 and x.double().float().dtype == np.float32
    assert x.astype("float16").dtype == np.float16


def test_comparisons_give_bool_tensors_without_grad():
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    for r, expected in [(x < 2, [1, 0, 0]), (x <= 2, [1, 1, 0]), (x > 2, [0, 0, 1]), (x >= 2, [0, 1, 1]),
                        (x == 2, [0, 1, 0]), (x != 2, [1, 0, 1]), (x == Tensor([1.0, 0.0, 3.0]), [1, 0, 1])]:
        assert r.dtype == np.bool_ and not r.requires_grad
        np.testing.assert_array_equal(r.data, np.array(expected, dtype=bool))
    assert len({x, x}) == 1  # tensors still hash by identity


# ----------------------------------------------------------------------------- repr


def test_repr_shows_values_shape_dtype_and_op():
    leaf = Tensor([1.0, 2.0], requires_grad=True)
    r = repr(leaf)
    assert "shape=(2,)" in r and "float32" in r and "requires_grad=True" in r and "1." in r
    r = repr(leaf * 2)
    assert "grad_fn=Mul" in r and "shape=(2,)" in r
    assert "grad_fn=Matmul" in repr(Tensor.ones(2, 3, requires_grad=True) @ Tensor.ones(3, 1))
    assert "grad_fn" not in repr(Tensor([1.0]))


def test_repr_of_large_tensor_is_summarised():
    r = repr(Tensor.zeros(1000, 1000))
    assert "..." in r and len(r) < 400 and "shape=(1000, 1000)" in r


# ----------------------------------------------------------------------------- dtype rules in expressions


def test_python_scalars_never_change_dtype():
    for dtype in (np.float32, np.float64, np.float16):
        x = Tensor(np.ones(3, dtype=dtype))
        for y in (x + 1, 1 + x, x - 2.5, 2.5 - x, x * 3, 0.5 * x, x / 2, 2 / x, x**2, x**0.5, 2.0**x, -x,
                  x + True, Tensor.where(x.data > 0, x, 0.0), x.masked_fill(x.data > 0, -1e4)):
            assert y.dtype == dtype


def test_numpy_scalars_never_change_dtype():
    x = Tensor(np.ones(3, dtype=np.float32))
    for y in (x + np.float64(1.0), np.float64(2.0) * x, x ** np.float64(2.0), x * np.int64(3), x**np.int64(2)):
        assert y.dtype == np.float32


def test_numpy_scalars_are_exact_for_float64_tensors():
    assert Tensor(np.float64(2.0)).dtype == np.float64  # NumPy data keeps its dtype
    x = Tensor(np.ones(2))
    np.testing.assert_array_equal((x * np.float64(np.pi)).data, [np.pi, np.pi])  # not rounded through float32
    np.testing.assert_array_equal((np.sqrt(np.float64(2.0)) + x).data, [1 + np.sqrt(2.0)] * 2)


def test_zero_dim_tensors_act_as_scalars_for_dtype():
    x = Tensor(np.ones(3, dtype=np.float32))
    s = Tensor(np.array(2.0), requires_grad=True)  # 0-d float64
    y = x * s
    assert y.dtype == np.float32
    y.sum().backward()
    assert s.grad.dtype == np.float64 and s.grad == 3.0


def test_float_with_integer_tensors_keeps_the_float_dtype():
    x = Tensor(np.ones((2, 3), dtype=np.float32))
    i = np.arange(6).reshape(3, 2)
    assert (x @ i).dtype == np.float32 and (i.T @ x.T).dtype == np.float32
    assert (x + Tensor(np.arange(3))).dtype == np.float32
    assert (Tensor(np.arange(3)) * x).dtype == np.float32
    assert Tensor.where(np.array([True, False, True]), x, Tensor(np.arange(3))).dtype == np.float32


def test_two_float_tensors_promote_like_torch():
    a = Tensor(np.ones(2, dtype=np.float32))
    b = Tensor(np.ones(2, dtype=np.float64))
    assert (a + b).dtype == np.float64


def test_integer_arithmetic():
    i = Tensor([1, 2, 3])
    assert np.issubdtype((i + 1).dtype, np.integer) and np.issubdtype((i * 2).dtype, np.integer)
    assert (i / 2).dtype == np.float32  # true division, as torch
    np.testing.assert_allclose((i / 2).data, [0.5, 1.0, 1.5])
    assert (i * 0.5).dtype == np.float32 and (i**0.5).dtype == np.float32
    assert (1 / i).dtype == np.float32
    np.testing.assert_array_equal((Tensor([True, False]) + 2).data, [3, 2])


def test_ndarray_on_the_left_gives_a_tensor():
    x = Tensor([1.0, 2.0], requires_grad=True)
    for y in (np.array([1.0, 2.0]) + x, np.array([3.0]) * x, np.ones(2) - x, np.ones(2) / x, np.float32(2) * x):
        assert isinstance(y, Tensor) and y.requires_grad


# ----------------------------------------------------------------------------- movement helpers


def test_shape_helpers():
    x = Tensor(np.arange(24.0).reshape(2, 3, 4))
    assert x.reshape(6, 4).shape == (6, 4) and x.reshape((4, -1)).shape == (4, 6) and x.view(24).shape == (24,)
    assert x.permute(2, 0, 1).shape == (4, 2, 3) and x.permute((1, 0, 2)).shape == (3, 2, 4)
    assert x.transpose(0, 2).shape == (4, 3, 2) and x.transpose().shape == (2, 4, 3)
    assert x.T.shape == (4, 3, 2)
    assert x[:, :1].squeeze(1).shape == (2, 4) and x[:1, :1].squeeze().shape == (4,)
    assert x.unsqueeze(0).shape == (1, 2, 3, 4) and x.unsqueeze(-1).shape == (2, 3, 4, 1)
    assert x.flatten().shape == (24,) and x.flatten(1).shape == (2, 12) and x.flatten(0, 1).shape == (6, 4)
    assert Tensor(3.0).flatten().shape == (1,)
    assert x[:, :1].expand(2, 5, 4).shape == (2, 5, 4) and x[:, :1].expand(-1, 3, -1).shape == (2, 3, 4)
    np.testing.assert_array_equal(x.permute(2, 0, 1).data, np.transpose(x.data, (2, 0, 1)))


def test_split_like_torch():
    x = Tensor(np.arange(14.0).reshape(2, 7))
    pieces = x.split(3, axis=1)
    assert [p.shape for p in pieces] == [(2, 3), (2, 3), (2, 1)]
    np.testing.assert_array_equal(pieces[2].data, [[6.0], [13.0]])
    assert [p.shape for p in x.split(1)] == [(1, 7), (1, 7)]
    assert [p.shape for p in x.split(10, axis=-1)] == [(2, 7)]


def test_cat_stack_where_masked_fill_values():
    a, b = Tensor([[1.0, 2.0]]), Tensor([[3.0, 4.0]])
    np.testing.assert_array_equal(Tensor.cat([a, b], 0).data, [[1, 2], [3, 4]])
    np.testing.assert_array_equal(Tensor.cat([a, b], axis=-1).data, [[1, 2, 3, 4]])
    np.testing.assert_array_equal(Tensor.stack([a, b], 1).data, [[[1, 2], [3, 4]]])
    np.testing.assert_array_equal(Tensor.where(np.array([True, False]), a, b).data, [[1, 4]])
    np.testing.assert_array_equal(Tensor.where(Tensor(np.array([False, True])), 0.0, b).data, [[3, 0]])
    np.testing.assert_array_equal(a.masked_fill(np.array([False, True]), -5).data, [[1, -5]])
    np.testing.assert_array_equal(a.masked_fill(Tensor(np.array([[True], ])), 0).data, [[0, 0]])


def test_getitem_values_follow_numpy():
    a = np.arange(24.0).reshape(2, 3, 4)
    x = Tensor(a)
    for index in [1, (-1, 1), (slice(None), None, slice(None, None, 2)), (Ellipsis, 1), np.array([1, 1, 0]),
                  (slice(None), [2, 0]), a > 10, ([0, 1], [2, 0], 3), (0, slice(None, None, -1))]:
        np.testing.assert_array_equal(x[index].data, a[index])


# ----------------------------------------------------------------------------- errors for people


def test_matmul_shape_error_names_op_and_both_shapes():
    with pytest.raises(ValueError, match=r"matmul.*\(2, 3\).*\(4, 5\)"):
        Tensor.ones(2, 3) @ Tensor.ones(4, 5)
    with pytest.raises(ValueError, match=r"matmul.*\(2, 2, 3\).*\(3, 3, 4\)"):
        Tensor.ones(2, 2, 3) @ Tensor.ones(3, 3, 4)
    with pytest.raises(ValueError, match="matmul"):
        Tensor(1.0) @ Tensor.ones(2)


@pytest.mark.parametrize("op,name", [(lambda a, b: a + b, "add"), (lambda a, b: a - b, "sub"),
                                     (lambda a, b: a * b, "mul"), (lambda a, b: a / b, "div"),
                                     (lambda a, b: a**b, "pow")])
def test_broadcast_error_names_op_and_both_shapes(op, name):
    with pytest.raises(ValueError, match=rf"{name}.*\(2, 3\).*\(4,\)"):
        op(Tensor.ones(2, 3), Tensor.ones(4))


def test_other_shape_errors_name_op_and_shapes():
    x = Tensor.ones(2, 3)
    with pytest.raises(ValueError, match=r"reshape.*\(2, 3\).*\(4, 2\)"):
        x.reshape(4, 2)
    with pytest.raises(ValueError, match=r"expand.*\(2, 3\)"):
        x.expand(4, 5)
    with pytest.raises(ValueError, match=r"cat.*\(2, 3\).*\(3, 2\)"):
        Tensor.cat([x, Tensor.ones(3, 2)], 0)
    with pytest.raises(ValueError, match=r"stack.*\(2, 3\).*\(3, 2\)"):
        Tensor.stack([x, Tensor.ones(3, 2)])
    with pytest.raises(ValueError, match=r"squeeze.*size 3"):
        x.squeeze(1)
    with pytest.raises(ValueError, match="permute"):
        x.permute(0, 0)
    with pytest.raises(ValueError, match=r"where.*\(2, 3\).*\(4,\)"):
        Tensor.where(np.ones((2, 3), bool), x, Tensor.ones(4))
    with pytest.raises(ValueError, match=r"masked_fill.*\(4,\).*\(2, 3\)"):
        x.masked_fill(np.ones(4, bool), 0.0)
    with pytest.raises(IndexError, match=r"getitem.*\(2, 3\)"):
        x[5]
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        x.sum(axis=2)
    with pytest.raises(ValueError, match="gelu"):
        x.gelu(approximate="erf")
    with pytest.raises(ValueError, match="split"):
        x.split(0)


def test_functional_shape_errors():
    x = Tensor.ones(2, 4)
    with pytest.raises(ValueError, match=r"linear.*\(2, 4\).*\(3, 5\)"):
        F.linear(x, Tensor.ones(3, 5))
    with pytest.raises(ValueError, match=r"layer_norm.*\(3,\).*\(2, 4\)"):
        F.layer_norm(x, Tensor.ones(3))
    with pytest.raises(ValueError, match=r"rms_norm.*\(3,\).*\(2, 4\)"):
        F.rms_norm(x, Tensor.ones(3))
    with pytest.raises(ValueError, match=r"cross_entropy.*\(2, 4\).*\(3,\)"):
        F.cross_entropy(x, np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="integers"):
        F.cross_entropy(x, np.array([0.0, 1.0]))
    with pytest.raises(IndexError, match="target 4 is out of range for 4 classes"):
        F.cross_entropy(x, np.array([0, 4]))
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(x, np.array([0, 1]), reduction="avg")
    with pytest.raises(IndexError, match="id 7 is out of range"):
        F.embedding(Tensor.ones(5, 2), np.array([1, 7]))
    with pytest.raises(TypeError, match="integers"):
        F.embedding(Tensor.ones(5, 2), np.array([1.0]))
    with pytest.raises(ValueError, match="p must be"):
        F.dropout(x, 1.5)


def test_backward_errors():
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor([1.0]).sum().backward()
    x = Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="one-element"):
        (x * 2).backward()
    with pytest.raises(ValueError, match=r"\(3,\).*\(2,\)"):
        (x * 2).backward(np.ones(3))
    with no_grad():
        y = x * 2
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()


def test_apply_rejects_non_tensors():
    from tinygrad_lite.ops import Add

    with pytest.raises(TypeError, match="Add.apply takes Tensors"):
        Add.apply(Tensor([1.0]), np.array([1.0]))


def test_out_of_range_axes_raise_instead_of_wrapping():
    x = Tensor.ones(3, 1)
    for call, op in [(lambda: x.squeeze(5), "squeeze"), (lambda: x.unsqueeze(3), "unsqueeze"),
                     (lambda: x.unsqueeze(-4), "unsqueeze"), (lambda: x.flatten(2), "flatten"),
                     (lambda: x.split(1, axis=2), "split"), (lambda: Tensor.ones(3).transpose(), "transpose"),
                     (lambda: Tensor.cat([x, x], 2), "cat"), (lambda: Tensor.stack([x, x], 3), "stack")]:
        with pytest.raises(IndexError, match=rf"{op}: axis -?\d+ is out of range"):
            call()
    with pytest.raises(ValueError, match="permute"):
        x.permute(0, 2)
    assert x.unsqueeze(2).shape == (3, 1, 1) and x.unsqueeze(-3).shape == (1, 3, 1)
    assert Tensor.stack([x, x], -3).shape == (2, 3, 1) and Tensor.stack([x, x], 2).shape == (3, 1, 2)
