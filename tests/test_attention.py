"""scaled_dot_product_attention: fused Function vs the reference composition, gradchecks, masks, GQA, and torch."""

from __future__ import annotations

import numpy as np
import pytest

from layers import causal_mask, scaled_dot_product_attention, scaled_dot_product_attention_reference
from tinygrad_lite import Tensor, detect_anomaly, gradcheck

fused, reference = scaled_dot_product_attention, scaled_dot_product_attention_reference


def qkv(rng, B=2, H=4, Hkv=2, Tq=5, Tk=7, D=3, dtype=np.float64):
    def t(*shape):
        return Tensor(rng.standard_normal(shape).astype(dtype), requires_grad=True)

    return t(B, H, Tq, D), t(B, Hkv, Tk, D), t(B, Hkv, Tk, D)


def run(fn, q, k, v, g, **kw):
    """Forward, then backward with the output gradient g; returns (out, dq, dk, dv) as arrays."""
    for t in (q, k, v):
        t.grad = None
    out = fn(q, k, v, **kw)
    out.backward(g)
    return out.data, q.grad, k.grad, v.grad


def naive(q, k, v, mask=None, scale=None):
    """Per-head loops with K/V repeated per group: the textbook definition, in float64."""
    B, H, Tq, D = q.shape
    G = H // k.shape[1]
    scale = 1 / np.sqrt(D) if scale is None else scale
    out = np.zeros((B, H, Tq, v.shape[-1]))
    for b in range(B):
        for h in range(H):
            s = q[b, h] @ k[b, h // G].T * scale
            if mask is not None:
                s = np.where(mask[b, h], s, -np.inf)
            p = np.exp(s - s.max(-1, keepdims=True))
            out[b, h] = p / p.sum(-1, keepdims=True) @ v[b, h // G]
    return out


MASK_CASES = {
    "none": lambda rng, B, H, Tq, Tk: {},
    "causal": lambda rng, B, H, Tq, Tk: {"is_causal": True},
    "bool_2d": lambda rng, B, H, Tq, Tk: {"attn_mask": rng.random((Tq, Tk)) < 0.7},
    "bool_per_batch": lambda rng, B, H, Tq, Tk: {"attn_mask": rng.random((B, 1, 1, Tk)) < 0.7},
    "bool_per_head_and_causal": lambda rng, B, H, Tq, Tk: {"attn_mask": rng.random((B, H, Tq, Tk)) < 0.7,
                                                           "is_causal": True},
    "additive": lambda rng, B, H, Tq, Tk: {"attn_mask": rng.standard_normal((B, H, Tq, Tk))},
    "scale": lambda rng, B, H, Tq, Tk: {"scale": 0.3},
}


@pytest.mark.parametrize("heads", [(4, 4), (4, 2), (4, 1)], ids=["mha", "gqa", "mqa"])
@pytest.mark.parametrize("case", list(MASK_CASES))
def test_fused_equals_reference_forward_and_backward(rng, heads, case):
    H, Hkv = heads
    q, k, v = qkv(rng, H=H, Hkv=Hkv)
    kw = MASK_CASES[case](rng, 2, H, 5, 7)
    g = rng.standard_normal((2, H, 5, 3))
    a, b = run(fused, q, k, v, g, **kw), run(reference, q, k, v, g, **kw)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-12)


def test_fused_matches_the_textbook_loop(rng):
    q, k, v = qkv(rng, H=6, Hkv=2, Tq=4, Tk=4)
    mask = np.broadcast_to(np.tril(np.ones((4, 4), dtype=bool)), (2, 6, 4, 4))
    np.testing.assert_allclose(fused(q, k, v, is_causal=True).data, naive(q.data, k.data, v.data, mask), atol=1e-12)
    np.testing.assert_allclose(fused(q, k, v).data, naive(q.data, k.data, v.data), atol=1e-12)


@pytest.mark.parametrize("case", ["none", "bool_per_head_and_causal", "additive"])
@pytest.mark.parametrize("fn", [fused, reference], ids=["fused", "reference"])
def test_gradcheck(rng, case, fn):
    q, k, v = qkv(rng, B=1, H=4, Hkv=2, Tq=3, Tk=4, D=3)
    kw = MASK_CASES[case](rng, 1, 4, 3, 4)
    assert gradcheck(lambda q, k, v: fn(q, k, v, **kw), q, k, v)


def test_gradcheck_with_dropout(rng):
    q, k, v = qkv(rng, B=1, H=2, Hkv=1, Tq=3, Tk=4, D=2)
    # The same seed each call: the dropout mask is a constant of the function being differentiated.
    for fn in (fused, reference):
        assert gradcheck(lambda q, k, v, fn=fn: fn(q, k, v, dropout_p=0.3, rng=np.random.default_rng(5)), q, k, v)


def test_dropout_same_mask_in_both_paths(rng):
    q, k, v = qkv(rng, H=4, Hkv=2)
    g = rng.standard_normal((2, 4, 5, 3))
    a = run(fused, q, k, v, g, dropout_p=0.4, rng=np.random.default_rng(9))
    b = run(reference, q, k, v, g, dropout_p=0.4, rng=np.random.default_rng(9))
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-12)
    c = run(fused, q, k, v, g)
    assert not np.allclose(a[0], c[0])


def test_causal_aligned_to_the_end_when_queries_are_fewer(rng):
    # 2 new queries after 4 cached keys: query i sees keys 0 .. 4 + i.
    np.testing.assert_array_equal(causal_mask(2, 6), [[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]])
    q, k, v = qkv(rng, H=2, Hkv=2, Tq=6, Tk=6)
    full = fused(q, k, v, is_causal=True).data
    last2 = fused(q[:, :, 4:], k, v, is_causal=True).data
    np.testing.assert_allclose(last2, full[:, :, 4:], atol=1e-12)


def test_fully_masked_rows_give_zeros_not_nan(rng):
    q, k, v = qkv(rng, H=2, Hkv=1, Tq=3, Tk=4)
    mask = np.ones((2, 2, 3, 4), dtype=bool)
    mask[0, 1, 2] = False  # one query of one head sees nothing
    mask[1] = False  # the whole second sequence sees nothing
    additive = np.where(mask, 0.0, -np.inf)
    g = rng.standard_normal((2, 2, 3, 3))
    with detect_anomaly():
        for fn in (fused, reference):
            for m in (mask, additive):
                out, dq, dk, dv = run(fn, q, k, v, g, attn_mask=m)
                assert np.isfinite(out).all() and np.isfinite(dq).all() and np.isfinite(dk).all()
                assert not out[0, 1, 2].any() and not out[1].any()
                assert not dq[0, 1, 2].any() and not dq[1].any() and not dk[1].any() and not dv[1].any()
                np.testing.assert_allclose(out[0, 0], naive(q.data, k.data, v.data)[0, 0], atol=1e-12)
    # more queries than keys with is_causal: the first Tq - Tk queries see nothing
    q2, k2, v2 = qkv(rng, H=2, Hkv=2, Tq=5, Tk=3)
    out = fused(q2, k2, v2, is_causal=True).data
    assert not out[:, :, :2].any() and np.isfinite(out).all()


def test_return_weights(rng):
    q, k, v = qkv(rng, H=4, Hkv=2)
    for fn in (fused, reference):
        out, w = fn(q, k, v, is_causal=True, return_weights=True)
        assert w.shape == (2, 4, 5, 7) and not w.requires_grad
        np.testing.assert_allclose(w.data.sum(-1), 1.0)
        assert not w.data[..., 0, 4:].any()  # causal: query 0 sees keys 0..2
        np.testing.assert_allclose(out.data, w.data @ np.repeat(v.data, 2, axis=1), atol=1e-12)
        with pytest.raises(ValueError):
            w.data[0, 0, 0, 0] = 1.0  # read-only: backward still needs these numbers


def test_float32_stays_float32_and_no_grad_inputs(rng):
    q, k, v = qkv(rng, dtype=np.float32)
    out = fused(q, k, v, is_causal=True)
    assert out.dtype == np.float32
    out.sum().backward()
    assert q.grad.dtype == k.grad.dtype == np.float32
    q2 = Tensor(q.data, requires_grad=True)
    fused(q2, Tensor(k.data), Tensor(v.data)).sum().backward()  # only q needs a gradient
    assert q2.grad.shape == q.shape


def test_value_head_size_may_differ(rng):
    q, k, _ = qkv(rng, H=2, Hkv=1)
    v = Tensor(rng.standard_normal((2, 1, 7, 5)), requires_grad=True)
    assert fused(q, k, v).shape == (2, 2, 5, 5)
    assert gradcheck(fused, q, k, v)


def test_errors_name_the_shapes(rng):
    q, k, v = qkv(rng, H=3, Hkv=2)
    with pytest.raises(ValueError, match="not a multiple"):
        fused(q, k, v)
    q, k, v = qkv(rng)
    with pytest.raises(ValueError, match=r"\(2, 4, 5, 7\)"):
        fused(q, k, v, attn_mask=np.ones((3, 7), dtype=bool))
    with pytest.raises(ValueError, match="4-D"):
        fused(q.reshape(8, 5, 3), k, v)
    with pytest.raises(TypeError, match="boolean or float"):
        fused(q, k, v, attn_mask=np.ones((5, 7), dtype=np.int64))


@pytest.mark.ref
@pytest.mark.parametrize("heads", [(4, 4), (4, 2), (4, 1)], ids=["mha", "gqa", "mqa"])
@pytest.mark.parametrize("case", ["none", "causal", "bool_per_head_and_causal", "additive", "scale", "decode"])
def test_matches_torch_sdpa(rng, heads, case):
    torch = pytest.importorskip("torch")
    H, Hkv = heads
    B, Tq, Tk, D = 2, 6, 6, 8
    kw = MASK_CASES.get(case, lambda *a: {})(rng, B, H, Tq, Tk)
    if case == "decode":  # fewer queries than keys: our is_causal aligns to the end; torch gets the explicit mask
        Tq = 2
        kw = {"is_causal": True}
    q, k, v = qkv(rng, B, H, Hkv, Tq, Tk, D, dtype=np.float32)
    g = rng.standard_normal((B, H, Tq, D)).astype(np.float32)
    ours = run(fused, q, k, v, g, **kw)

    tq, tk, tv = (torch.tensor(t.data, requires_grad=True) for t in (q, k, v))
    mask = kw.get("attn_mask")
    if kw.get("is_causal"):
        causal = causal_mask(Tq, Tk)
        mask = causal if mask is None else (mask & causal)
    if mask is not None and mask.dtype != bool:
        mask = mask.astype(np.float32)
    tmask = None if mask is None else torch.tensor(np.ascontiguousarray(mask))
    ref = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=tmask, scale=kw.get("scale"),
                                                           enable_gqa=True)
    ref.backward(torch.tensor(g))
    for x, y in zip(ours, (ref.detach(), tq.grad, tk.grad, tv.grad)):
        np.testing.assert_allclose(x, y.numpy(), rtol=1e-4, atol=2e-5)


@pytest.mark.parametrize("block", [1, 2, 3])
@pytest.mark.parametrize("case", ["causal", "bool_per_head_and_causal", "additive_causal", "bool_2d_causal"])
@pytest.mark.parametrize("shape", [(5, 5), (3, 7), (7, 4)], ids=["square", "decode", "more_queries"])
def test_causal_query_blocks_agree(rng, monkeypatch, block, case, shape):
    # Causal attention runs in query blocks that skip invisible keys; small blocks exercise every edge.
    from layers import attention_function

    Tq, Tk = shape
    q, k, v = qkv(rng, H=4, Hkv=2, Tq=Tq, Tk=Tk)
    kw = {"is_causal": True}
    if case == "bool_per_head_and_causal":
        kw["attn_mask"] = rng.random((2, 4, Tq, Tk)) < 0.7
    elif case == "additive_causal":
        kw["attn_mask"] = rng.standard_normal((2, 1, Tq, Tk))
    elif case == "bool_2d_causal":
        kw["attn_mask"] = rng.random((Tq, Tk)) < 0.7
    g = rng.standard_normal((2, 4, Tq, 3))
    expected = run(reference, q, k, v, g, **kw)
    monkeypatch.setattr(attention_function, "QUERY_BLOCK", block)
    assert len(attention_function.query_blocks(Tq, Tk, True)) == -(-Tq // block)
    for x, y in zip(run(fused, q, k, v, g, **kw), expected):
        np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-12)
    out, w = fused(q, k, v, return_weights=True, **kw)
    np.testing.assert_allclose(w.data, reference(q, k, v, return_weights=True, **kw)[1].data, atol=1e-12)
    if block == 2:  # the hand-written blocked backward against finite differences, dropout included
        q, k, v = (Tensor(t.data[:1], requires_grad=True) for t in (q, k, v))
        kw = {n: (m[:1] if n == "attn_mask" and m.ndim == 4 else m) for n, m in kw.items()}
        assert gradcheck(lambda q, k, v: fused(q, k, v, dropout_p=0.2, rng=np.random.default_rng(1), **kw), q, k, v)


@pytest.mark.parametrize("target", [0.1, 0.95, 1.05, 100.0], ids=["small", "below_bound", "above_bound", "huge"])
def test_large_scores_stay_exact_in_float32(rng, target):
    # Scores provably below EXP_SAFE skip the max subtraction; above it the stable path runs. Both must match a
    # float64 computation, with no overflow even for scores in the thousands.
    from layers import attention_function

    safe = attention_function.EXP_SAFE[np.float32]
    q, k, v = qkv(rng, B=1, H=2, Hkv=1, Tq=6, Tk=6, D=8, dtype=np.float32)
    bound = attention_function._score_bound(q.data.reshape(1, 1, 12, 8) / np.sqrt(8), k.data)
    q = Tensor(q.data * np.float32(target * safe / bound), requires_grad=True)  # bound now target * EXP_SAFE
    g = rng.standard_normal((1, 2, 6, 8)).astype(np.float32)
    ours = run(fused, q, k, v, g, is_causal=True)
    q64, k64, v64 = (Tensor(t.data.astype(np.float64), requires_grad=True) for t in (q, k, v))
    ref = run(reference, q64, k64, v64, g.astype(np.float64), is_causal=True)
    for name, x, y in zip(["out", "dq", "dk", "dv"], ours, ref):
        assert np.isfinite(x).all()
        if target > 10 and name in ("dq", "dk"):
            continue  # near one-hot weights: these are float32 rounding noise (~1e-7 * |q|) around tiny true values
        np.testing.assert_allclose(x, y, rtol=2e-3, atol=5e-5)
