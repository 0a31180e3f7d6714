"""Activations and clip/sign against PyTorch: values and gradients on random float32 and float64 inputs, with every
kink point, NaN, and large |x| (softplus and mish must stay finite and agree with torch there) in the same array.

Tolerances: float64 to 1e-12 relative; float32 to 1e-6 relative (NumPy's and torch's exp/log1p/tanh round
differently in the last bit). atol 1e-37 covers one difference in the tails: 1 / (1 + e^100) is 3.8e-44 in float32
as a denormal, which torch keeps and our sigmoid flushes to 0 (e^100 overflows); nothing of size is at stake.
The piecewise-linear ops (clip, relu6, leaky_relu, hardswish, sign) agree bit for bit. Gradients at NaN inputs are
compared where torch has one answer: for elu, relu6 and hardswish its gradient at NaN depends on where the element
falls in its vectorized loop (1 in the scalar tail, NaN or 0 in the vector body).
"""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_lite.functional as F
from tinygrad_lite import Tensor

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.ref

TF = torch.nn.functional
NAN_GRADIENT_VARIES = {"elu", "elu_alpha", "relu6", "hardswish"}
KINKS = [-6.0, -3.0, -1.0, -0.5, -0.0, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 6.0, 20.0, np.nan]
LARGE = [-1e4, -100.0, -30.0, -20.0, 20.0, 30.0, 100.0, 1e4]

# name -> (ours, torch's, exact): the same call on each side
CASES = {
    "clip": (lambda x: F.clip(x, -1.0, 2.0), lambda x: torch.clip(x, -1.0, 2.0), True),
    "clamp_min": (lambda x: F.clamp(x, min=0.5), lambda x: torch.clamp(x, min=0.5), True),
    "clamp_max": (lambda x: x.clamp(max=-0.5), lambda x: x.clamp(max=-0.5), True),
    "clamp_min_above_max": (lambda x: x.clamp(2.0, -1.0), lambda x: x.clamp(2.0, -1.0), True),
    "sign": (F.sign, torch.sign, True),
    "softplus": (F.softplus, TF.softplus, False),
    "softplus_beta_threshold": (lambda x: F.softplus(x, 2.0, 3.0), lambda x: TF.softplus(x, 2.0, 3.0), False),
    "softplus_negative_beta": (lambda x: F.softplus(x, -0.5, 2.0), lambda x: TF.softplus(x, -0.5, 2.0), False),
    "elu": (F.elu, TF.elu, False),
    "elu_alpha": (lambda x: F.elu(x, 0.3), lambda x: TF.elu(x, 0.3), False),
    "leaky_relu": (F.leaky_relu, TF.leaky_relu, True),
    "leaky_relu_slope": (lambda x: F.leaky_relu(x, 0.2), lambda x: TF.leaky_relu(x, 0.2), True),
    "relu6": (F.relu6, TF.relu6, True),
    "hardswish": (F.hardswish, TF.hardswish, True),
    "mish": (F.mish, TF.mish, False),
}


def inputs(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.uniform(-8.0, 8.0, 60), rng.standard_normal(20), KINKS, LARGE]).astype(dtype)


def close(ours, theirs, dtype, exact, what):
    assert ours.dtype == dtype, f"{what}: dtype {ours.dtype}, expected {dtype}"
    if exact:
        np.testing.assert_array_equal(ours, theirs, err_msg=what)
    else:
        rtol = 1e-12 if dtype == np.float64 else 1e-6
        np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=1e-37, equal_nan=True, err_msg=what)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", CASES)
def test_values_and_gradients_match_torch(name, dtype):
    ours_fn, torch_fn, exact = CASES[name]
    a = inputs(dtype)
    w = np.random.default_rng(1).standard_normal(a.shape).astype(dtype)
    x = Tensor(a.copy(), requires_grad=True)
    y = ours_fn(x)
    y.backward(w)
    tx = torch.from_numpy(a.copy()).requires_grad_()
    ty = torch_fn(tx)
    ty.backward(torch.from_numpy(w))
    close(y.data, ty.detach().numpy(), dtype, exact, f"{name} forward")
    keep = ~np.isnan(a) if name in NAN_GRADIENT_VARIES else slice(None)
    close(x.grad[keep], tx.grad.numpy()[keep], dtype, exact, f"{name} gradient")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softplus_and_mish_stay_finite_at_large_magnitude(dtype):
    a = np.array(LARGE + [-1e30, 1e30], dtype=dtype)
    for ours_fn, torch_fn in ((F.softplus, TF.softplus), (F.mish, TF.mish)):
        x = Tensor(a.copy(), requires_grad=True)
        y = ours_fn(x)
        y.sum().backward()
        tx = torch.from_numpy(a.copy()).requires_grad_()
        torch_fn(tx).sum().backward()
        assert np.all(np.isfinite(y.data)) and np.all(np.isfinite(x.grad))
        close(y.data, torch_fn(torch.from_numpy(a)).numpy(), dtype, False, "forward")
        close(x.grad, tx.grad.numpy(), dtype, False, "gradient")


def test_two_dimensional_input_and_integer_clip_match_torch():
    a = np.random.default_rng(2).standard_normal((4, 5)) * 4
    np.testing.assert_array_equal(F.hardswish(Tensor(a)).data, TF.hardswish(torch.from_numpy(a)).numpy())
    ints = np.array([-3, 0, 2, 7])
    for kw in ({"min": 0}, {"max": 1.5}, {"min": -1, "max": 5}):
        ours, theirs = Tensor(ints).clip(**kw), torch.clamp(torch.from_numpy(ints), **kw)
        assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "")
        np.testing.assert_array_equal(ours.data, theirs.numpy())


def test_clip_without_bounds_raises_as_torch_does():
    with pytest.raises(RuntimeError, match="At least one of 'min' or 'max'"):
        torch.clamp(torch.zeros(2))
    with pytest.raises(ValueError, match="at least one of min and max"):
        Tensor(np.zeros(2)).clip()
