"""Forward and backward of every op and functional against PyTorch, in float64, to ~1e-10.

Both sides get the same inputs and the same random upstream gradient; values and every input's gradient must agree.
Reductions are compared with torch.amax/amin (which split the gradient among ties, as ours do).
"""

from __future__ import annotations

import numpy as np
import pytest
from _engine_cases import all_cases, as_tensors, is_differentiable, make_inputs

import tinygrad_lite.functional as F
from tinygrad_lite import Tensor

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.ref

CASES = [c for c in all_cases() if c.torch_fn is not None]
RTOL = ATOL = 1e-10


def _torch_inputs(case, arrays):
    out = []
    for a, (_, kind) in zip(arrays, case.specs):
        t = torch.from_numpy(np.array(a))
        out.append(t.requires_grad_() if is_differentiable(kind) else t)
    return out


def _close(ours, theirs, what):
    theirs = theirs.detach().numpy()
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} vs torch {theirs.shape}"
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL, err_msg=what)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_forward_and_backward_match_torch(case):
    arrays = make_inputs(case, seed=3)
    ours_in = as_tensors(case, arrays)
    torch_in = _torch_inputs(case, arrays)

    ours = case.fn(*ours_in)
    theirs = case.torch_fn(*torch_in)
    assert ours.dtype == np.float64
    _close(ours.data, theirs, "forward")

    w = np.random.default_rng(4).standard_normal(ours.shape)
    ours.backward(w)
    theirs.backward(torch.from_numpy(np.array(w)))
    for i, (a, b) in enumerate(zip(ours_in, torch_in)):
        if a.requires_grad:
            _close(a.grad, b.grad, f"gradient of input {i}")


def test_softmax_family_at_magnitude_1e3_matches_torch():
    x = np.array([[1000.0, 999.0, -1000.0], [-1e3, -1e3 + 1, -1e3 + 2]])
    for name in ("softmax", "log_softmax"):
        ours = getattr(Tensor(x), name)(-1).data
        theirs = getattr(torch, name)(torch.from_numpy(x), -1).numpy()
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-300)
        assert np.isfinite(ours).all()


def test_sigmoid_and_silu_at_large_magnitude_match_torch():
    x = np.array([-800.0, -40.0, 0.0, 40.0, 800.0])
    np.testing.assert_allclose(Tensor(x).sigmoid().data, torch.sigmoid(torch.from_numpy(x)).numpy(), rtol=1e-12)
    np.testing.assert_allclose(Tensor(x).silu().data, torch.nn.functional.silu(torch.from_numpy(x)).numpy(),
                               rtol=1e-12)


def test_max_ties_match_torch_amax():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    ours = Tensor(x, requires_grad=True)
    theirs = torch.from_numpy(x.copy()).requires_grad_()
    ours.max(axis=1).sum().backward()
    torch.amax(theirs, dim=1).sum().backward()
    np.testing.assert_array_equal(ours.grad, theirs.grad.numpy())


def test_relu_abs_at_zero_match_torch():
    x = np.array([-1.0, 0.0, 1.0])
    for name in ("relu", "abs"):
        ours = Tensor(x, requires_grad=True)
        theirs = torch.from_numpy(x.copy()).requires_grad_()
        getattr(ours, name)().sum().backward()
        getattr(theirs, name)().sum().backward()
        np.testing.assert_array_equal(ours.grad, theirs.grad.numpy())


def test_pow_edge_gradients_match_torch():
    a = np.array([0.0, 0.0, 2.0, 3.0])
    b = np.array([0.0, 2.0, 0.0, -1.0])
    ours_a, ours_b = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
    ta, tb = torch.from_numpy(a.copy()).requires_grad_(), torch.from_numpy(b.copy()).requires_grad_()
    (ours_a**ours_b).sum().backward()
    (ta**tb).sum().backward()
    np.testing.assert_allclose(ours_a.grad, ta.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours_b.grad, tb.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("correction", [0, 1, 2])
def test_var_corrections_match_torch(correction):
    x = np.random.default_rng(0).standard_normal((3, 5))
    ours = Tensor(x, requires_grad=True)
    theirs = torch.from_numpy(x.copy()).requires_grad_()
    ours.var(axis=1, correction=correction).sum().backward()
    torch.var(theirs, dim=1, correction=correction).sum().backward()
    np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-10)


def test_cross_entropy_all_targets_ignored_matches_torch():
    z = np.random.default_rng(0).standard_normal((3, 4))
    t = np.full(3, -100)
    ours = F.cross_entropy(Tensor(z), t)
    theirs = torch.nn.functional.cross_entropy(torch.from_numpy(z), torch.from_numpy(t))
    assert np.isnan(ours.item()) and torch.isnan(theirs)
    for reduction in ("sum", "none"):
        ours = F.cross_entropy(Tensor(z), t, reduction=reduction).data
        theirs = torch.nn.functional.cross_entropy(torch.from_numpy(z), torch.from_numpy(t), reduction=reduction)
        np.testing.assert_array_equal(ours, theirs.numpy())


def test_cross_entropy_custom_ignore_index_and_full_smoothing_match_torch():
    rng = np.random.default_rng(5)
    z = rng.standard_normal((6, 4))
    t = np.array([0, 3, 1, 3, 2, 0])
    for kw in ({"ignore_index": 3}, {"label_smoothing": 1.0}, {"ignore_index": 0, "label_smoothing": 0.3}):
        ours = Tensor(z, requires_grad=True)
        theirs = torch.from_numpy(z.copy()).requires_grad_()
        F.cross_entropy(ours, t, **kw).backward()
        torch.nn.functional.cross_entropy(theirs, torch.from_numpy(t), **kw).backward()
        np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=str(kw))


def test_float32_forward_close_to_torch_float32():
    """The float32 path (what training uses) agrees with torch's float32 to float32 precision."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((4, 8)).astype(np.float32)
    w = rng.standard_normal((8, 8)).astype(np.float32)
    t = rng.integers(0, 8, 4)
    ours = F.cross_entropy(F.layer_norm(Tensor(x) @ Tensor(w)).gelu(), t)
    tx, tw = torch.from_numpy(x), torch.from_numpy(w)
    theirs = torch.nn.functional.cross_entropy(
        torch.nn.functional.gelu(torch.nn.functional.layer_norm(tx @ tw, (8,)), approximate="tanh"),
        torch.from_numpy(t))
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours.item(), theirs.item(), rtol=1e-5)
