"""The fused MLP Function equals c_fc -> gelu -> c_proj as three ops, in values and gradients; gradcheck in float64;
the MLP module follows tinygrad_lite.set_fused."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_lite.functional as F
from layers import MLP
from layers.mlp_function import mlp
from tinygrad_lite import Tensor, gradcheck, set_fused


def composed(x, w1, w2, b1=None, b2=None, approximate="tanh"):
    return F.linear(F.linear(x, w1, b1).gelu(approximate), w2, b2)


def grads(fn, arrays, g):
    ts = [Tensor(a, requires_grad=True) for a in arrays]
    out = fn(*ts)
    out.backward(g)
    return [out.data] + [t.grad for t in ts]


@pytest.mark.parametrize("approximate", ["tanh", "none"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_equals_composed(rng, approximate, bias, dtype):
    arrays = [rng.standard_normal(s).astype(dtype) for s in [(3, 7, 5), (5, 12), (12, 4)]]
    if bias:
        arrays += [rng.standard_normal(12).astype(dtype), rng.standard_normal(4).astype(dtype)]
    g = rng.standard_normal((3, 7, 4)).astype(dtype)
    fused = grads(lambda *t: mlp(*t, approximate=approximate), arrays, g)
    ref = grads(lambda *t: composed(*t, approximate=approximate), arrays, g)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-5)
    for a, b in zip(fused, ref):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, **tol)


@pytest.mark.parametrize("approximate", ["tanh", "none"])
def test_fused_gradcheck(rng, approximate):
    arrays = [rng.standard_normal(s) for s in [(2, 3, 4), (4, 6), (6, 3), (6,), (3,)]]
    ts = [Tensor(a, requires_grad=True) for a in arrays]
    assert gradcheck(lambda *t: mlp(*t, approximate=approximate), *ts)


def test_module_follows_the_switch_and_only_some_grads(rng):
    m = MLP(6, 10, rng=np.random.default_rng(1), dtype=np.float64)
    xt = Tensor(rng.standard_normal((2, 3, 6)))  # no gradient for the input: only the weights get one
    results = []
    for fused in (True, False):
        m.zero_grad()
        with set_fused(fused):
            out = m(xt)
            out.sum().backward()
        op = type(out._ctx).__name__
        assert (op == "FusedMLP") == fused, op  # the reference path ends in c_proj's bias add, not FusedMLP
        results.append([out.data] + [p.grad for p in m.parameters()])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-10)


def test_errors():
    x, w1, w2 = Tensor(np.ones((2, 5))), Tensor(np.ones((5, 8))), Tensor(np.ones((7, 3)))
    with pytest.raises(ValueError, match="not aligned"):
        mlp(x, w1, w2)
    with pytest.raises(ValueError, match="both biases or neither"):
        mlp(x, w1, Tensor(np.ones((8, 3))), b1=Tensor(np.ones(8)))
