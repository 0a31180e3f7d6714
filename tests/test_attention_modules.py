"""MultiHeadAttention, GroupedQueryAttention and KVCache."""

from __future__ import annotations

import numpy as np
import pytest
from test_layers_support import gradcheck_module

from layers import GroupedQueryAttention, KVCache, MultiHeadAttention, RotaryEmbedding
from tinygrad_lite import Tensor, no_grad


def x64(rng, *shape, grad=True):
    return Tensor(rng.standard_normal(shape), requires_grad=grad)


def test_parameter_names_hf_style(rng):
    mha = MultiHeadAttention(8, 2, rng=rng)
    assert [(n, p.shape) for n, p in mha.named_parameters()] == [
        ("q_proj.weight", (8, 8)), ("q_proj.bias", (8,)), ("k_proj.weight", (8, 8)), ("k_proj.bias", (8,)),
        ("v_proj.weight", (8, 8)), ("v_proj.bias", (8,)), ("o_proj.weight", (8, 8)), ("o_proj.bias", (8,))]
    gpt2 = MultiHeadAttention(8, 2, packed_qkv=True, rng=rng)
    assert [(n, p.shape) for n, p in gpt2.named_parameters()] == [
        ("c_attn.weight", (8, 24)), ("c_attn.bias", (24,)), ("c_proj.weight", (8, 8)), ("c_proj.bias", (8,))]
    gqa = GroupedQueryAttention(8, 4, 2, rng=rng)
    assert [(n, p.shape) for n, p in gqa.named_parameters()] == [
        ("q_proj.weight", (8, 8)), ("k_proj.weight", (8, 4)), ("v_proj.weight", (8, 4)), ("o_proj.weight", (8, 8))]


def fused_copy(mha: MultiHeadAttention) -> MultiHeadAttention:
    """The same weights in GPT-2's layout: c_attn = [W_q | W_k | W_v]."""
    f = MultiHeadAttention(mha.dim, mha.n_heads, packed_qkv=True, dtype=mha.q_proj.weight.dtype)
    f.c_attn.weight.data[:] = np.concatenate([mha.q_proj.weight.data, mha.k_proj.weight.data,
                                              mha.v_proj.weight.data], axis=1)
    f.c_attn.bias.data[:] = np.concatenate([mha.q_proj.bias.data, mha.k_proj.bias.data, mha.v_proj.bias.data])
    f.c_proj.weight.data[:], f.c_proj.bias.data[:] = mha.o_proj.weight.data, mha.o_proj.bias.data
    return f


def randomize(module, rng, scale=0.3):
    for p in module.parameters():
        p.data[:] = rng.standard_normal(p.shape) * scale
    return module


def mha_reference(mha, x, context=None, causal=False):
    """Multi-head attention written out with NumPy loops over heads."""
    c = x if context is None else context
    W = {n: p.data for n, p in mha.named_parameters()}
    q, k, v = (a @ W[f"{n}.weight"] + W[f"{n}.bias"] for a, n in ((x, "q_proj"), (c, "k_proj"), (c, "v_proj")))
    H, D = mha.n_heads, mha.dim // mha.n_heads
    out = np.zeros_like(q)
    for h in range(H):
        sl = slice(h * D, (h + 1) * D)
        s = q[..., sl] @ np.swapaxes(k[..., sl], -1, -2) / np.sqrt(D)
        if causal:
            s = np.where(np.tril(np.ones(s.shape[-2:], dtype=bool)), s, -np.inf)
        p = np.exp(s - s.max(-1, keepdims=True))
        out[..., sl] = p / p.sum(-1, keepdims=True) @ v[..., sl]
    return out @ W["o_proj.weight"] + W["o_proj.bias"]


def test_mha_self_and_cross_attention_match_reference(rng):
    mha = randomize(MultiHeadAttention(6, 3, dtype=np.float64), rng)
    x, ctx = rng.standard_normal((2, 5, 6)), rng.standard_normal((2, 4, 6))
    np.testing.assert_allclose(mha(Tensor(x), is_causal=True).data, mha_reference(mha, x, causal=True), atol=1e-12)
    np.testing.assert_allclose(mha(Tensor(x), context=Tensor(ctx)).data, mha_reference(mha, x, ctx), atol=1e-12)
    f = fused_copy(mha)
    np.testing.assert_allclose(f(Tensor(x), is_causal=True).data, mha_reference(mha, x, causal=True), atol=1e-12)
    np.testing.assert_allclose(f(Tensor(x), context=Tensor(ctx)).data, mha_reference(mha, x, ctx), atol=1e-12)


def test_gqa_with_all_kv_heads_is_mha(rng):
    mha = randomize(MultiHeadAttention(8, 4, bias=False, rng=rng), rng)
    gqa = GroupedQueryAttention(8, 4, 4)
    gqa.load_state_dict(mha.state_dict())
    x = Tensor(rng.standard_normal((2, 6, 8)).astype(np.float32))
    np.testing.assert_array_equal(gqa(x, is_causal=True).data, mha(x, is_causal=True).data)
    mask = rng.random((2, 1, 6, 6)) < 0.8
    np.testing.assert_array_equal(gqa(x, attn_mask=mask).data, mha(x, attn_mask=mask).data)


def repeat_heads(w, n_kv, G, D):
    """(C, n_kv * D) -> (C, n_kv * G * D): each K/V head's columns repeated for the G query heads of its group."""
    C = w.shape[0]
    return np.repeat(w.reshape(C, n_kv, D), G, axis=1).reshape(C, n_kv * G * D)


def test_mqa_and_gqa_share_kv_heads(rng):
    for n_kv in (1, 2):
        gqa = randomize(GroupedQueryAttention(8, 4, n_kv, dtype=np.float64), rng)
        x = rng.standard_normal((1, 3, 8))
        # Expanding the K/V projections to one copy per query head gives an MHA with the same output.
        mha = MultiHeadAttention(8, 4, bias=False, dtype=np.float64)
        mha.load_state_dict({"q_proj.weight": gqa.q_proj.weight.data,
                             "k_proj.weight": repeat_heads(gqa.k_proj.weight.data, n_kv, 4 // n_kv, 2),
                             "v_proj.weight": repeat_heads(gqa.v_proj.weight.data, n_kv, 4 // n_kv, 2),
                             "o_proj.weight": gqa.o_proj.weight.data})
        np.testing.assert_allclose(gqa(Tensor(x), is_causal=True).data, mha(Tensor(x), is_causal=True).data,
                                   atol=1e-12)


@pytest.mark.parametrize("make", [
    lambda rng: MultiHeadAttention(4, 2, rng=rng),
    lambda rng: MultiHeadAttention(4, 2, packed_qkv=True, rng=rng),
    lambda rng: GroupedQueryAttention(4, 2, 1, rope=RotaryEmbedding(2), rng=rng),
], ids=["mha", "mha_packed_qkv", "gqa_rope"])
def test_module_gradcheck(rng, make):
    module = make(rng)
    assert gradcheck_module(module, x64(rng, 2, 3, 4), call=lambda m, x: m(x, is_causal=True))


def test_cross_attention_gradcheck(rng):
    for fused in (False, True):
        mha = MultiHeadAttention(4, 2, packed_qkv=fused, rng=rng)
        assert gradcheck_module(mha, x64(rng, 1, 3, 4), x64(rng, 1, 2, 4),
                                call=lambda m, x, c: m(x, context=c))


# --------------------------------------------------------------------------------------------- KV cache


def decode(module, x, step_sizes, **kw):
    """Run x (B, T, C) through module in chunks of the given sizes with one cache; concatenate the outputs."""
    cache = KVCache(max_len=x.shape[1] + 3)
    outs, t = [], 0
    with no_grad():
        for n in step_sizes:
            outs.append(module(Tensor(x[:, t : t + n]), is_causal=True, cache=cache, **kw).data)
            t += n
    assert len(cache) == x.shape[1]
    return np.concatenate(outs, axis=1)


@pytest.mark.parametrize("make", [
    lambda: MultiHeadAttention(8, 2, dtype=np.float64),
    lambda: MultiHeadAttention(8, 2, packed_qkv=True, dtype=np.float64),
    lambda: GroupedQueryAttention(8, 4, 2, rope=RotaryEmbedding(2), dtype=np.float64),
    lambda: GroupedQueryAttention(8, 4, 1, rope=RotaryEmbedding(2, interleaved=True), dtype=np.float64),
], ids=["mha", "mha_packed_qkv", "gqa_rope", "mqa_rope_interleaved"])
def test_cached_decoding_equals_full_forward(rng, make):
    module = randomize(make(), rng, 0.5)
    x = rng.standard_normal((2, 7, 8))
    with no_grad():
        full = module(Tensor(x), is_causal=True).data
    np.testing.assert_allclose(decode(module, x, [1] * 7), full, atol=1e-12)  # token by token
    np.testing.assert_allclose(decode(module, x, [4, 1, 2]), full, atol=1e-12)  # prompt, then new tokens


def test_cached_decoding_float32(rng):
    gqa = GroupedQueryAttention(16, 4, 2, rope=RotaryEmbedding(4), rng=rng)
    x = rng.standard_normal((3, 9, 16)).astype(np.float32)
    with no_grad():
        full = gqa(Tensor(x), is_causal=True).data
    out = decode(gqa, x, [5] + [1] * 4)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, full, atol=2e-6)


def test_cross_attention_cache_reuses_context(rng):
    mha = randomize(MultiHeadAttention(6, 2, dtype=np.float64), rng)
    x, ctx = rng.standard_normal((1, 3, 6)), rng.standard_normal((1, 5, 6))
    cache = KVCache(max_len=5)
    with no_grad():
        full = mha(Tensor(x), context=Tensor(ctx)).data
        steps = [mha(Tensor(x[:, t : t + 1]), context=Tensor(ctx), cache=cache).data for t in range(3)]
    assert len(cache) == 5  # filled once, by the first call
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-12)


def test_kv_cache_bookkeeping(rng):
    cache = KVCache(max_len=4)
    k = Tensor(rng.standard_normal((1, 2, 3, 5)).astype(np.float32))
    ka, va = cache.update(k, k)
    assert ka.shape == (1, 2, 3, 5) and len(cache) == 3 and cache.k.shape == (1, 2, 4, 5)
    np.testing.assert_array_equal(cache.positions(1), [3])
    with pytest.raises(ValueError, match="exceed max_len 4"):
        cache.update(k, k)
    cache.crop(1)
    ka, _ = cache.update(k, k)
    np.testing.assert_array_equal(ka.data[:, :, 1:], k.data)
    with pytest.raises(ValueError, match="cache of shape"):
        cache.reset() or cache.update(Tensor(np.zeros((2, 2, 1, 5), np.float32)), k[:, :, :1])
    with pytest.raises(ValueError):
        KVCache(0)


def test_cache_under_grad_mode_keeps_current_step_gradients(rng):
    gqa = randomize(GroupedQueryAttention(8, 4, 2, rope=RotaryEmbedding(2), dtype=np.float64), rng)
    x = rng.standard_normal((1, 5, 8))
    cache = KVCache(8)
    with no_grad():
        gqa(Tensor(x[:, :3]), is_causal=True, cache=cache)
    xt = Tensor(x[:, 3:], requires_grad=True)
    gqa(xt, is_causal=True, cache=cache).sum().backward()
    g_cached, wq_cached = xt.grad, gqa.q_proj.weight.grad
    gqa.zero_grad()
    # Without a cache: the whole sequence, past positions detached (an inference cache carries no gradient).
    past = Tensor(x[:, :3])
    xt2 = Tensor(x[:, 3:], requires_grad=True)
    out = gqa(Tensor.cat([past, xt2], axis=1), is_causal=True)
    out[:, 3:].sum().backward()
    np.testing.assert_allclose(xt2.grad, g_cached, atol=1e-12)
    np.testing.assert_allclose(gqa.q_proj.weight.grad, wq_cached, atol=1e-12)
