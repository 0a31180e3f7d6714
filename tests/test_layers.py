"""Basic layers: Linear, Embedding, LayerNorm, RMSNorm, Dropout, MLP, SwiGLU."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_layers_support import gradcheck_module

from layers import MLP, Dropout, Embedding, LayerNorm, Linear, RMSNorm, SwiGLU
from tinygrad_lite import Tensor


def t64(rng, *shape, grad=True):
    return Tensor(rng.standard_normal(shape), requires_grad=grad)


# --------------------------------------------------------------------------------------------- Linear, Embedding


def test_linear_layout_formula_and_init(rng):
    lin = Linear(5, 3, rng=rng)
    assert [(n, p.shape, p.dtype) for n, p in lin.named_parameters()] == [
        ("weight", (5, 3), np.float32), ("bias", (3,), np.float32)]
    assert np.abs(lin.weight.data).max() <= 1 / math.sqrt(5) and not lin.bias.data.any()
    lin.bias.data[:] = [1.0, 2.0, 3.0]
    x = rng.standard_normal((2, 4, 5)).astype(np.float32)
    np.testing.assert_allclose(lin(Tensor(x)).data, x @ lin.weight.data + lin.bias.data, rtol=1e-6)
    assert Linear(5, 3, bias=False).bias is None
    assert [n for n, _ in Linear(5, 3, bias=False).named_parameters()] == ["weight"]


@pytest.mark.parametrize("bias", [True, False])
def test_linear_gradcheck(rng, bias):
    lin = Linear(4, 3, bias=bias, rng=rng)
    assert gradcheck_module(lin, t64(rng, 2, 3, 4))


def test_embedding_lookup_and_gradcheck(rng):
    emb = Embedding(6, 3, rng=rng)
    assert emb.weight.shape == (6, 3)
    ids = np.array([[0, 5, 5], [2, 0, 1]])
    np.testing.assert_array_equal(emb(ids).data, emb.weight.data[ids])
    assert gradcheck_module(emb, ids)
    with pytest.raises(IndexError, match="out of range"):
        emb(np.array([6]))


# --------------------------------------------------------------------------------------------- norms


def test_layer_norm_formula(rng):
    ln = LayerNorm(8)
    ln.weight.data[:] = rng.standard_normal(8)
    ln.bias.data[:] = rng.standard_normal(8)
    x = rng.standard_normal((3, 8)).astype(np.float32) * 3 + 1
    ref = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5) * ln.weight.data + ln.bias.data
    np.testing.assert_allclose(ln(Tensor(x)).data, ref, rtol=1e-5, atol=1e-5)
    assert [n for n, _ in ln.named_parameters()] == ["weight", "bias"]


def test_rms_norm_formula(rng):
    rn = RMSNorm(8)
    assert rn.eps == 1e-6 and [n for n, _ in rn.named_parameters()] == ["weight"]
    rn.weight.data[:] = rng.standard_normal(8)
    x = rng.standard_normal((3, 8)).astype(np.float32)
    ref = x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-6) * rn.weight.data
    np.testing.assert_allclose(rn(Tensor(x)).data, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make", [lambda: LayerNorm(5), lambda: LayerNorm(5, bias=False), lambda: RMSNorm(5)])
def test_norm_gradcheck(rng, make):
    norm = make()
    for p in norm.parameters():
        p.data[:] = rng.standard_normal(p.shape)
    assert gradcheck_module(norm, t64(rng, 2, 3, 5))


# --------------------------------------------------------------------------------------------- dropout


def test_dropout_train_and_eval():
    x = Tensor(np.ones((200, 100), dtype=np.float32), requires_grad=True)
    d = Dropout(0.25, rng=np.random.default_rng(1))
    y = d(x)
    kept = y.data != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(y.data[kept], 1 / 0.75)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, y.data)  # d(x * m/(1-p))/dx = m/(1-p)
    d.eval()
    assert d(x) is x
    with pytest.raises(ValueError, match="p must be"):
        Dropout(1.5)


def test_dropout_reproducible_with_rng():
    x = Tensor(np.ones((4, 5), dtype=np.float32))
    a = Dropout(0.5, rng=np.random.default_rng(3))(x).data
    b = Dropout(0.5, rng=np.random.default_rng(3))(x).data
    np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------------------------- MLP, SwiGLU


def gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def test_mlp_gpt2_names_and_formula(rng):
    mlp = MLP(6, rng=rng)
    assert [(n, p.shape) for n, p in mlp.named_parameters()] == [
        ("c_fc.weight", (6, 24)), ("c_fc.bias", (24,)), ("c_proj.weight", (24, 6)), ("c_proj.bias", (6,))]
    for p in mlp.parameters():
        p.data[:] = rng.standard_normal(p.shape) * 0.3
    x = rng.standard_normal((2, 3, 6)).astype(np.float32)
    h = gelu_tanh(x @ mlp.c_fc.weight.data + mlp.c_fc.bias.data)
    ref = h @ mlp.c_proj.weight.data + mlp.c_proj.bias.data
    np.testing.assert_allclose(mlp(Tensor(x)).data, ref, rtol=1e-4, atol=1e-5)


def test_mlp_gradcheck_and_dropout(rng):
    mlp = MLP(4, 6, rng=rng)
    assert gradcheck_module(mlp, t64(rng, 2, 3, 4))
    mlp = MLP(4, 6, dropout=0.5, rng=rng)
    x = Tensor(rng.standard_normal((50, 4)).astype(np.float32))
    assert (mlp(x).data == 0).mean() > 0.3  # training mode drops
    mlp.eval()
    assert not (mlp(x).data == 0).any()


def test_swiglu_names_formula_gradcheck(rng):
    ff = SwiGLU(4, 6, rng=rng)
    assert [(n, p.shape) for n, p in ff.named_parameters()] == [
        ("w1.weight", (4, 6)), ("w3.weight", (4, 6)), ("w2.weight", (6, 4))]
    x = rng.standard_normal((3, 4)).astype(np.float32)
    a = x @ ff.w1.weight.data
    ref = (a / (1 + np.exp(-a)) * (x @ ff.w3.weight.data)) @ ff.w2.weight.data
    np.testing.assert_allclose(ff(Tensor(x)).data, ref, rtol=1e-5, atol=1e-6)
    assert gradcheck_module(ff, t64(rng, 2, 4))


@pytest.mark.ref
def test_mlp_and_norms_match_torch(rng):
    torch = pytest.importorskip("torch")
    mlp = MLP(8, rng=rng)
    ln, rn = LayerNorm(8), RMSNorm(8)
    for p in ln.parameters() + rn.parameters():
        p.data[:] = rng.standard_normal(p.shape)
    x = rng.standard_normal((2, 5, 8)).astype(np.float32)
    xt = torch.tensor(x)
    W = {n: torch.tensor(p.data) for n, p in mlp.named_parameters()}
    ref = torch.nn.functional.gelu(xt @ W["c_fc.weight"] + W["c_fc.bias"], approximate="tanh")
    ref = ref @ W["c_proj.weight"] + W["c_proj.bias"]
    np.testing.assert_allclose(mlp(Tensor(x)).data, ref.numpy(), rtol=1e-5, atol=1e-5)
    ref = torch.nn.functional.layer_norm(xt, (8,), torch.tensor(ln.weight.data), torch.tensor(ln.bias.data), 1e-5)
    np.testing.assert_allclose(ln(Tensor(x)).data, ref.numpy(), rtol=1e-5, atol=1e-5)
    ref = torch.nn.functional.rms_norm(xt, (8,), torch.tensor(rn.weight.data), 1e-6)
    np.testing.assert_allclose(rn(Tensor(x)).data, ref.numpy(), rtol=1e-5, atol=1e-5)
