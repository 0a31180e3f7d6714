"""Activations and clip/sign (tinygrad_lite/ops/activation.py): gradients against finite differences in float64 away
from the kinks, the gradient at each kink exactly (the values PyTorch 2.13 gives, written out by hand), dtypes and
shapes kept, stability at large |x|, and bad arguments. tests/test_ref_torch_activations.py checks against torch."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import tinygrad_lite.functional as F
from tinygrad_lite import Tensor, gradcheck

# name -> (function, the x values where its derivative jumps)
OPS = {
    "clip": (lambda x: x.clip(-1.0, 2.0), (-1.0, 2.0)),
    "clip_min_only": (lambda x: x.clip(min=0.5), (0.5,)),
    "clip_max_only": (lambda x: x.clamp(max=-0.5), (-0.5,)),
    "sign": (lambda x: x.sign(), (0.0,)),
    "softplus": (lambda x: x.softplus(), ()),
    "softplus_beta_threshold": (lambda x: x.softplus(beta=2.0, threshold=3.0), (1.5,)),  # beta x = threshold
    "softplus_negative_beta": (lambda x: x.softplus(beta=-0.5, threshold=2.0), (-4.0,)),
    "elu": (lambda x: x.elu(), (0.0,)),
    "elu_alpha": (lambda x: x.elu(alpha=0.3), (0.0,)),
    "leaky_relu": (lambda x: x.leaky_relu(), (0.0,)),
    "leaky_relu_slope": (lambda x: x.leaky_relu(negative_slope=-0.2), (0.0,)),
    "relu6": (lambda x: x.relu6(), (0.0, 6.0)),
    "hardswish": (lambda x: x.hardswish(), (-3.0, 3.0)),
    "mish": (lambda x: x.mish(), ()),
}


def away_from(kinks, shape, seed=0, low=-8.0, high=8.0):
    """Uniform float64 values with none within 0.1 of a kink, so a 1e-6 finite difference never straddles one."""
    x = np.random.default_rng(seed).uniform(low, high, shape)
    for k in kinks:
        x = np.where(np.abs(x - k) < 0.1, x + 0.25, x)
    return x


@pytest.mark.parametrize("shape", [(), (7,), (3, 5)])
@pytest.mark.parametrize("name", OPS)
def test_gradcheck_away_from_kinks(name, shape):
    fn, kinks = OPS[name]
    assert gradcheck(fn, Tensor(away_from(kinks, shape), requires_grad=True))


@pytest.mark.parametrize("name", ["softplus", "mish", "elu"])
def test_gradcheck_in_the_tails(name):
    # Where softplus(x) = x + e^-x and mish(x) ~ x - 2x e^-2x: the small correction terms carry the gradient.
    x = Tensor(np.array([-15.0, -9.0, 9.0, 15.0, 19.0]), requires_grad=True)
    assert gradcheck(OPS[name][0], x)


def grad_at(fn, values, dtype=np.float64):
    x = Tensor(np.array(values, dtype=dtype), requires_grad=True)
    fn(x).sum().backward()
    return x.grad


# ----------------------------------------------------------------------------- the kinks, exactly as torch has them


def test_clip_passes_the_gradient_at_both_bounds_inclusive():
    np.testing.assert_array_equal(grad_at(lambda x: x.clip(0.0, 1.0), [-1.0, 0.0, 0.5, 1.0, 2.0]), [0, 1, 1, 1, 0])
    np.testing.assert_array_equal(grad_at(lambda x: x.clip(min=0.0), [-1.0, 0.0, 2.0]), [0, 1, 1])
    np.testing.assert_array_equal(grad_at(lambda x: x.clip(max=0.0), [-1.0, 0.0, 2.0]), [1, 1, 0])
    np.testing.assert_array_equal(grad_at(lambda x: x.clip(1.0, 1.0), [0.0, 1.0, 2.0]), [0, 1, 0])


def test_clip_with_min_above_max_is_max_everywhere_with_no_gradient():
    x = Tensor(np.array([-1.0, 1.0, 1.5, 2.0, 3.0]), requires_grad=True)
    y = x.clip(2.0, 1.0)
    np.testing.assert_array_equal(y.data, [1.0] * 5)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0] * 5)


def test_sign_values_and_zero_gradient_everywhere():
    x = Tensor(np.array([-2.0, -0.0, 0.0, 3.0, np.nan]), requires_grad=True)
    y = x.sign()
    np.testing.assert_array_equal(y.data, [-1.0, 0.0, 0.0, 1.0, 0.0])  # sign(NaN) is 0 in torch
    assert not np.signbit(y.data[1])  # sign(-0.0) is +0.0 in torch
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0] * 5)
    np.testing.assert_array_equal(Tensor(np.array([-3, 0, 2])).sign().data, [-1, 0, 1])
    np.testing.assert_array_equal(Tensor(np.array([True, False])).sign().data, [True, False])


def test_relu6_gradient_is_zero_at_0_and_at_6():
    np.testing.assert_array_equal(grad_at(lambda x: x.relu6(), [-1.0, 0.0, 3.0, 6.0, 7.0]), [0, 0, 1, 0, 0])


def test_hardswish_gradient_is_0_at_minus_3_and_1_at_3():
    g = grad_at(lambda x: x.hardswish(), [-4.0, -3.0, 0.0, 1.5, 3.0, 4.0])
    np.testing.assert_array_equal(g, [0.0, 0.0, 0.5, 1.0, 1.0, 1.0])


def test_leaky_relu_gradient_at_0_is_the_slope():
    np.testing.assert_array_equal(grad_at(lambda x: x.leaky_relu(0.1), [-1.0, 0.0, 1.0]), [0.1, 0.1, 1.0])
    np.testing.assert_array_equal(grad_at(lambda x: x.leaky_relu(-0.5), [-1.0, 0.0, 1.0]), [-0.5, -0.5, 1.0])


def test_elu_gradient_at_0_is_alpha():
    np.testing.assert_array_equal(grad_at(lambda x: x.elu(2.0), [0.0, 1.0]), [2.0, 1.0])
    np.testing.assert_allclose(grad_at(lambda x: x.elu(2.0), [-1.0]), [2.0 * np.exp(-1.0)], rtol=1e-15)


def test_softplus_is_linear_above_the_threshold_and_smooth_at_it():
    x = Tensor(np.array([20.0, 20.5, 30.0]), requires_grad=True)
    y = x.softplus()  # beta x == 20 is not above the threshold: log1p(e^20) = 20 + 2.06e-9
    y.sum().backward()
    np.testing.assert_allclose(y.data, [20.0 + np.log1p(np.exp(-20.0)), 20.5, 30.0], rtol=1e-15)
    np.testing.assert_allclose(x.grad, [1.0 / (1.0 + np.exp(-20.0)), 1.0, 1.0], rtol=1e-15)
    assert y.data[1] == 20.5 and x.grad[1] == 1.0  # exactly x and 1, not 20.5 + 1.25e-9
    x = Tensor(np.array([0.4, 0.6]), requires_grad=True)  # beta 2, threshold 1: the switch is at x = 0.5
    y = x.softplus(2.0, 1.0)
    y.sum().backward()
    np.testing.assert_allclose(y.data, [np.log1p(np.exp(0.8)) / 2.0, 0.6], rtol=1e-15)
    np.testing.assert_allclose(x.grad, [1.0 / (1.0 + np.exp(-0.8)), 1.0], rtol=1e-15)


def test_values_at_hand_computed_points():
    x = Tensor(np.array([-4.0, -1.0, 0.0, 2.0, 7.0]))
    np.testing.assert_allclose(x.relu6().data, [0, 0, 0, 2, 6])
    np.testing.assert_allclose(x.hardswish().data, [0, -1 * 2 / 6, 0, 2 * 5 / 6, 7])
    np.testing.assert_allclose(x.leaky_relu().data, [-0.04, -0.01, 0, 2, 7])
    np.testing.assert_allclose(x.elu(0.5).data, [0.5 * np.expm1(-4.0), 0.5 * np.expm1(-1.0), 0, 2, 7])
    np.testing.assert_allclose(x.softplus().data, np.log1p(np.exp([-4.0, -1.0, 0.0, 2.0, 7.0])))
    np.testing.assert_allclose(x.mish().data, x.data * np.tanh(np.log1p(np.exp(x.data))))
    np.testing.assert_allclose(x.clip(-2, 3).data, [-2, -1, 0, 2, 3])


def test_gradient_at_nan():
    # NaN for the formulas; 0 for sign and the masks of clip and relu6, the slope for leaky_relu (torch's, where torch
    # has one choice; its elu/relu6/hardswish gradient at NaN varies with the element's place in its vectorized loop)
    expected = {
        "clip": 0.0,
        "sign": 0.0,
        "relu6": 0.0,
        "leaky_relu_slope": -0.2,
        "softplus": np.nan,
        "elu": np.nan,
        "hardswish": np.nan,
        "mish": np.nan,
    }
    for name, g in expected.items():
        np.testing.assert_array_equal(grad_at(OPS[name][0], [np.nan]), [g], err_msg=name)


# ----------------------------------------------------------------------------- numerics at large |x|


def test_softplus_and_mish_do_not_overflow_in_float32():
    x = Tensor(np.array([-1e4, -100.0, 100.0, 1e4], dtype=np.float32), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning either
        y = x.softplus(threshold=1e30)  # the smooth branch everywhere: log1p(exp(1e4)) would be inf
        y.sum().backward()
        np.testing.assert_array_equal(y.data, np.array([0.0, np.exp(-100.0), 100.0, 1e4], dtype=np.float32))
        np.testing.assert_array_equal(x.grad, [0.0, 0.0, 1.0, 1.0])
        x.grad = None
        y = x.mish()
        y.sum().backward()
    assert np.all(np.isfinite(y.data)) and np.all(np.isfinite(x.grad))
    np.testing.assert_array_equal(y.data[2:], [100.0, 1e4])
    assert -1e-40 < y.data[1] <= 0.0 and y.data[0] == 0.0  # x e^x: -3.8e-42 at -100
    np.testing.assert_array_equal(x.grad[[0, 2, 3]], [0.0, 1.0, 1.0])


def test_elu_and_leaky_relu_at_large_magnitude():
    x = Tensor(np.array([-1e4, 1e4], dtype=np.float32), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e^1e4 in the unused branch must not be computed
        y = x.elu(1.5)
        y.sum().backward()
    np.testing.assert_array_equal(y.data, [-1.5, 1e4])
    np.testing.assert_array_equal(x.grad, [0.0, 1.0])


def test_nan_in_nan_out_without_warnings():
    x = Tensor(np.array([np.nan, 1.0]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in ("softplus", "mish", "elu", "leaky_relu", "relu6", "hardswish"):
            y = getattr(x, name)().data
            assert np.isnan(y[0]) and np.isfinite(y[1]), name


# ----------------------------------------------------------------------------- dtypes, shapes, functional names


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", OPS)
def test_dtype_and_shape_are_kept(name, dtype):
    x = Tensor(np.zeros((2, 3, 4), dtype=dtype) + 0.3, requires_grad=True)
    y = OPS[name][0](x)
    assert y.dtype == dtype and y.shape == (2, 3, 4)
    y.backward(np.ones((2, 3, 4), dtype=dtype))
    assert x.grad.dtype == dtype and x.grad.shape == (2, 3, 4)


def test_numpy_float64_arguments_do_not_upcast_float32():
    x = Tensor(np.array([-2.0, 0.5, 4.0], dtype=np.float32))
    c = np.float64(0.5)
    for y in (x.clip(c, np.float64(3.0)), x.softplus(c, np.float64(10.0)), x.elu(c), x.leaky_relu(c)):
        assert y.dtype == np.float32


def test_zero_dim_tensor():
    x = Tensor(np.array(-0.5), requires_grad=True)
    for name, (fn, _) in OPS.items():
        y = fn(x)
        assert y.shape == () and isinstance(y.data, np.ndarray), name


def test_clip_on_integer_tensors_follows_torch():
    x = Tensor(np.array([1, 2, 3]))
    y = x.clip(min=2)
    assert y.dtype == np.int64 and y.data.tolist() == [2, 2, 3]
    y = x.clip(min=1.5)  # a float bound makes the result float32, as torch
    assert y.dtype == np.float32 and y.data.tolist() == [1.5, 2.0, 3.0]


def test_clip_bad_arguments():
    x = Tensor(np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="at least one of min and max"):
        x.clip()
    with pytest.raises(ValueError, match="at least one of min and max"):
        F.clamp(x)
    with pytest.raises(TypeError, match="numbers or None, got Tensor"):
        x.clip(Tensor(np.array(0.0)))


def test_functional_wrappers_are_the_methods():
    x = Tensor(np.linspace(-5.0, 7.0, 13), requires_grad=True)
    pairs = [
        (F.clip(x, -1.0, 2.0), x.clip(-1.0, 2.0)),
        (F.clamp(x, min=0.5), x.clamp(min=0.5)),
        (F.sign(x), x.sign()),
        (F.softplus(x, beta=2.0, threshold=4.0), x.softplus(2.0, 4.0)),
        (F.elu(x, alpha=0.5), x.elu(0.5)),
        (F.leaky_relu(x, negative_slope=0.2), x.leaky_relu(0.2)),
        (F.relu6(x), x.relu6()),
        (F.hardswish(x), x.hardswish()),
        (F.mish(x), x.mish()),
    ]
    for a, b in pairs:
        assert type(a._ctx) is type(b._ctx)
        np.testing.assert_array_equal(a.data, b.data)
    assert F.clamp is F.clip and Tensor.clamp is Tensor.clip


def test_defaults_match_torch():
    x = Tensor(np.array([-2.0, 25.0]))
    np.testing.assert_allclose(F.leaky_relu(x).data, [-0.02, 25.0])  # negative_slope 0.01
    np.testing.assert_allclose(F.elu(x).data, [np.expm1(-2.0), 25.0])  # alpha 1
    assert F.softplus(x).data[1] == 25.0  # threshold 20: linear above it
