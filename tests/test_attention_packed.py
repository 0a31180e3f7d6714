"""packed_self_attention (GPT-2's c_attn output straight to merged heads) equals slicing, splitting heads,
scaled_dot_product_attention and merging, in values and gradients; gradcheck; the module uses it when training."""

from __future__ import annotations

import numpy as np
import pytest

from layers import MultiHeadAttention, scaled_dot_product_attention
from layers.attention_function import packed_self_attention
from tinygrad_lite import Tensor, gradcheck


def composed(qkv: Tensor, n_heads: int, **kw) -> Tensor:
    B, T, C3 = qkv.shape
    C = C3 // 3
    q, k, v = (qkv[:, :, i * C:(i + 1) * C].reshape(B, T, n_heads, C // n_heads).transpose(1, 2) for i in range(3))
    return scaled_dot_product_attention(q, k, v, **kw).transpose(1, 2).reshape(B, T, C)


CASES = {
    "none": lambda rng, B, H, T: {},
    "causal": lambda rng, B, H, T: {"is_causal": True},
    "bool_mask": lambda rng, B, H, T: {"attn_mask": rng.random((B, 1, T, T)) < 0.7},
    "additive_and_causal": lambda rng, B, H, T: {"attn_mask": rng.standard_normal((B, H, T, T)), "is_causal": True},
    "dropout": lambda rng, B, H, T: {"dropout_p": 0.3, "is_causal": True},
}


@pytest.mark.parametrize("case", list(CASES))
def test_packed_equals_composed(rng, case):
    B, T, H, D = 2, 5, 3, 4
    x = rng.standard_normal((B, T, 3 * H * D))
    g = rng.standard_normal((B, T, H * D))
    kw = CASES[case](rng, B, H, T)
    results = []
    for fn in (packed_self_attention, composed):
        qkv = Tensor(x, requires_grad=True)
        out = fn(qkv, H, rng=np.random.default_rng(3), **kw)  # the same dropout draws in both
        out.backward(g)
        results.append((out.data, qkv.grad))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", ["causal", "additive_and_causal"])
def test_packed_gradcheck(rng, case):
    kw = CASES[case](rng, 1, 2, 3)
    qkv = Tensor(rng.standard_normal((1, 3, 12)), requires_grad=True)
    assert gradcheck(lambda t: packed_self_attention(t, 2, **kw), qkv)


def test_packed_float32_and_errors(rng):
    qkv = Tensor(rng.standard_normal((2, 4, 24)).astype(np.float32), requires_grad=True)
    out = packed_self_attention(qkv, 4, is_causal=True)
    out.sum().backward()
    assert out.shape == (2, 4, 8) and out.dtype == np.float32 and qkv.grad.dtype == np.float32
    with pytest.raises(ValueError, match=r"\(B, T, 3C\).*5 heads"):
        packed_self_attention(qkv, 5)
    with pytest.raises(ValueError, match="attn_mask"):
        packed_self_attention(qkv, 4, attn_mask=np.ones((3, 3), dtype=bool))


def test_module_training_path_equals_the_cached_path(rng):
    # Self-attention without a cache takes the packed path; with a cache, the three-projection path. Same numbers.
    from layers import KVCache

    mha = MultiHeadAttention(12, 3, packed_qkv=True, rng=np.random.default_rng(0), dtype=np.float64)
    x = Tensor(rng.standard_normal((2, 6, 12)))
    packed = mha(x, is_causal=True).data
    cached = mha(x, is_causal=True, cache=KVCache(6)).data
    np.testing.assert_allclose(packed, cached, rtol=1e-12, atol=1e-12)
