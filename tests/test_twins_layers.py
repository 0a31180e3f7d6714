"""Each fused Function of layers/ against its reference twin: the same values and gradients in float64 (1e-10) on
random shapes, both pass gradcheck, and the twin's graph holds primitive ops (tinygrad_lite/ops/) only.

Pairs: scaled_dot_product_attention (ScaledDotProductAttention / ..._reference), packed_self_attention
(PackedSelfAttention / ..._reference), mlp (FusedMLP / mlp_reference), moe_dispatch (MoEDispatch /
moe_dispatch_reference), rope (Rope / rope_reference).
"""

from __future__ import annotations

import numpy as np
import pytest

from layers.attention_function import packed_self_attention, scaled_dot_product_attention
from layers.mlp_function import mlp
from layers.moe_function import dispatch_plan, moe_dispatch
from layers.positional import RotaryEmbedding, rope
from tinygrad_lite import Tensor, gradcheck, set_fused

TOL = dict(rtol=1e-10, atol=1e-12)


def graph_ops(out: Tensor) -> set:
    """The Function classes in out's graph."""
    ops, seen, stack = set(), set(), [out]
    while stack:
        t = stack.pop()
        if t._ctx is None or id(t) in seen:
            continue
        seen.add(id(t))
        ops.add(type(t._ctx))
        stack.extend(t._ctx.parents)
    return ops


def both_paths(fn, arrays: list, g: np.ndarray, fused_op: str) -> tuple:
    """fn(*tensors) forward and backward(g) on each path -> ([out, grads...] fused, [out, grads...] reference)."""
    results = []
    for fused in (True, False):
        ts = [Tensor(a, requires_grad=True) for a in arrays]
        with set_fused(fused):
            out = fn(*ts)
        ops = graph_ops(out)
        if fused:
            assert fused_op in {op.__name__ for op in ops}, ops
        else:
            foreign = {f"{op.__module__}.{op.__name__}" for op in ops
                       if not op.__module__.startswith("tinygrad_lite.ops")}
            assert not foreign, f"the reference path ran non-primitive ops: {sorted(foreign)}"
        out.backward(g)
        results.append([out.data] + [t.grad for t in ts])
    return tuple(results)


def assert_same(fused: list, reference: list) -> None:
    for i, (a, b) in enumerate(zip(fused, reference)):
        np.testing.assert_allclose(a, b, err_msg=f"output {i}", **TOL)


def gradcheck_both(fn, *tensors) -> None:
    for fused in (True, False):
        def on_path(*ts, fused=fused):
            with set_fused(fused):
                return fn(*ts)

        assert gradcheck(on_path, *tensors)


# --------------------------------------------------------------------------------------------- attention


ATTENTION_CASES = {
    # name: (B, H, Hkv, Tq, Tk, kwargs builder)
    "mha": (2, 4, 4, 5, 5, lambda rng, B, H, Tq, Tk: {}),
    "gqa_causal": (2, 6, 2, 7, 7, lambda rng, B, H, Tq, Tk: {"is_causal": True}),
    "mqa_causal_decode": (3, 4, 1, 2, 6, lambda rng, B, H, Tq, Tk: {"is_causal": True}),  # Tq < Tk: after a cache
    "causal_more_queries": (2, 2, 2, 6, 4, lambda rng, B, H, Tq, Tk: {"is_causal": True}),  # first rows see nothing
    "padding": (3, 4, 2, 5, 6, lambda rng, B, H, Tq, Tk: {"attn_mask": padding_mask(rng, B, Tk)}),
    "padding_and_causal": (2, 4, 2, 6, 6, lambda rng, B, H, Tq, Tk: {"attn_mask": padding_mask(rng, B, Tk),
                                                                      "is_causal": True}),
    "additive": (2, 4, 2, 5, 7, lambda rng, B, H, Tq, Tk: {"attn_mask": rng.standard_normal((B, H, Tq, Tk))}),
    "additive_2d_causal": (2, 3, 1, 4, 4, lambda rng, B, H, Tq, Tk: {"attn_mask": rng.standard_normal((Tq, Tk)),
                                                                      "is_causal": True}),
    "bool_per_head": (2, 4, 2, 5, 5, lambda rng, B, H, Tq, Tk: {"attn_mask": rng.random((B, H, Tq, Tk)) < 0.6}),
    "batch_of_one": (1, 4, 2, 5, 5, lambda rng, B, H, Tq, Tk: {"is_causal": True, "scale": 0.7}),
    "dropout": (2, 4, 2, 5, 6, lambda rng, B, H, Tq, Tk: {"dropout_p": 0.3, "is_causal": True}),
}


def padding_mask(rng, B: int, Tk: int) -> np.ndarray:
    """(B, 1, 1, Tk), True where a key is a real token: each row's last few keys are padding."""
    lengths = rng.integers(1, Tk + 1, size=B)
    return (np.arange(Tk)[None, :] < lengths[:, None])[:, None, None, :]


def long_causal(case: str) -> bool:
    return case in ("gqa_causal", "padding_and_causal")


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("case", list(ATTENTION_CASES))
def test_attention_fused_equals_reference(case, seed, monkeypatch):
    rng = np.random.default_rng(seed)
    B, H, Hkv, Tq, Tk, make = ATTENTION_CASES[case]
    D, Dv = rng.integers(2, 6), rng.integers(2, 6)
    kw = make(rng, B, H, Tq, Tk)
    if long_causal(case):
        monkeypatch.setattr("layers.attention_function.QUERY_BLOCK", 2)  # the fused path's query blocks, edges too
    arrays = [rng.standard_normal(s) for s in ((B, H, Tq, D), (B, Hkv, Tk, D), (B, Hkv, Tk, Dv))]
    g = rng.standard_normal((B, H, Tq, Dv))

    def fn(q, k, v):
        return scaled_dot_product_attention(q, k, v, rng=np.random.default_rng(7), **kw)  # same dropout draws

    assert_same(*both_paths(fn, arrays, g, "ScaledDotProductAttention"))


@pytest.mark.parametrize("case", ["gqa_causal", "mqa_causal_decode", "padding", "additive", "dropout"])
def test_attention_gradcheck_both_paths(case, rng):
    _, H, Hkv, Tq, Tk, make = ATTENTION_CASES[case]
    Tq, Tk = (3, 3) if Tq == Tk else (2, 4)  # small, with fewer queries than keys where the case has them
    kw = make(rng, 1, H, Tq, Tk)
    q, k, v = (Tensor(rng.standard_normal(s), requires_grad=True) for s in ((1, H, Tq, 3), (1, Hkv, Tk, 3),
                                                                            (1, Hkv, Tk, 2)))
    gradcheck_both(lambda q, k, v: scaled_dot_product_attention(q, k, v, rng=np.random.default_rng(5), **kw), q, k, v)


@pytest.mark.parametrize("fused", [True, False])
def test_attention_return_weights_on_both_paths(rng, fused):
    B, H, Hkv, Tq, Tk = 2, 4, 2, 3, 5
    q, k, v = (Tensor(rng.standard_normal(s)) for s in ((B, H, Tq, 3), (B, Hkv, Tk, 3), (B, Hkv, Tk, 3)))
    mask = padding_mask(rng, B, Tk)
    with set_fused(fused):
        out, w = scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=True, return_weights=True)
    assert w.shape == (B, H, Tq, Tk) and not w.requires_grad and not w.data.flags.writeable
    # The weights are softmax over the visible keys: out = w V, rows sum to 1 (or 0 where nothing is visible).
    np.testing.assert_allclose(out.data, w.data @ np.repeat(v.data, H // Hkv, axis=1), **TOL)
    visible = mask & np.tri(Tq, Tk, k=Tk - Tq, dtype=bool)
    np.testing.assert_array_equal(w.data[~np.broadcast_to(visible, w.shape)], 0.0)
    np.testing.assert_allclose(w.data.sum(-1), np.broadcast_to(visible.any(-1), (B, H, Tq)).astype(float), **TOL)


# --------------------------------------------------------------------------------------------- packed attention


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("case", ["plain", "causal", "padding", "additive_causal", "dropout", "batch_of_one"])
def test_packed_attention_fused_equals_reference(case, seed):
    rng = np.random.default_rng(seed)
    B = 1 if case == "batch_of_one" else int(rng.integers(2, 4))
    T, H, D = int(rng.integers(3, 7)), int(rng.integers(1, 4)), int(rng.integers(2, 5))
    kw = {"causal": {"is_causal": True}, "padding": {"attn_mask": padding_mask(rng, B, T)},
          "additive_causal": {"attn_mask": rng.standard_normal((B, H, T, T)), "is_causal": True},
          "dropout": {"dropout_p": 0.25}, "batch_of_one": {"is_causal": True}}.get(case, {})
    g = rng.standard_normal((B, T, H * D))

    def fn(qkv):
        return packed_self_attention(qkv, H, rng=np.random.default_rng(4), **kw)

    assert_same(*both_paths(fn, [rng.standard_normal((B, T, 3 * H * D))], g, "PackedSelfAttention"))


def test_packed_attention_gradcheck_both_paths(rng):
    qkv = Tensor(rng.standard_normal((1, 4, 12)), requires_grad=True)
    mask = rng.standard_normal((1, 2, 4, 4))
    gradcheck_both(lambda t: packed_self_attention(t, 2, attn_mask=mask, is_causal=True), qkv)


# --------------------------------------------------------------------------------------------- MLP


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("approximate", ["tanh", "none"])
@pytest.mark.parametrize("bias", [True, False])
def test_mlp_fused_equals_reference(seed, approximate, bias):
    rng = np.random.default_rng(seed)
    lead = tuple(int(n) for n in rng.integers(1, 5, size=rng.integers(1, 3)))  # (N,) or (B, T), batch of one too
    C, hidden, out = (int(n) for n in rng.integers(2, 9, size=3))
    arrays = [rng.standard_normal(s) for s in [lead + (C,), (C, hidden), (hidden, out)]]
    if bias:
        arrays += [rng.standard_normal(hidden), rng.standard_normal(out)]
    g = rng.standard_normal(lead + (out,))
    assert_same(*both_paths(lambda *t: mlp(*t, approximate=approximate), arrays, g, "FusedMLP"))


@pytest.mark.parametrize("approximate", ["tanh", "none"])
def test_mlp_gradcheck_both_paths(rng, approximate):
    ts = [Tensor(rng.standard_normal(s), requires_grad=True) for s in [(2, 3, 4), (4, 5), (5, 3), (5,), (3,)]]
    gradcheck_both(lambda *t: mlp(*t, approximate=approximate), *ts)


# --------------------------------------------------------------------------------------------- MoE dispatch


def moe_arrays(rng, N, C, H, E, k, capacity):
    """x, combine weights, per-expert w1, w3, w2 arrays and a plan from a random top-k routing."""
    idx = np.argsort(rng.random((N, E)), axis=-1)[:, :k]  # k distinct experts per token
    plan, _, dropped = dispatch_plan(idx, E, capacity)
    arrays = [rng.standard_normal((N, C)), rng.random((N, k))]
    arrays += [rng.standard_normal((C, H)) for _ in range(E)] + [rng.standard_normal((C, H)) for _ in range(E)]
    arrays += [rng.standard_normal((H, C)) for _ in range(E)]
    return arrays, plan, int(dropped.sum())


def moe_fn(E, plan):
    def fn(x, w, *weights):
        return moe_dispatch(x, w, list(weights[:E]), list(weights[E:2 * E]), list(weights[2 * E:]), plan)

    return fn


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k,capacity", [(1, None), (2, None), (2, 3), (3, 2)])
def test_moe_dispatch_fused_equals_reference(seed, k, capacity):
    rng = np.random.default_rng(seed)
    N, C, H, E = int(rng.integers(1, 12)), int(rng.integers(2, 6)), int(rng.integers(2, 6)), 4
    arrays, plan, n_dropped = moe_arrays(rng, N, C, H, E, k, capacity)
    g = rng.standard_normal((N, C))
    fused, reference = both_paths(moe_fn(E, plan), arrays, g, "MoEDispatch")
    idle = {e for e in range(E)} - {e for e, _, _ in plan}  # experts no token reached: no gradient on either path
    for e in idle:
        assert all(r[3 + e + i * E] is None for r in (fused, reference) for i in range(3))
    assert_same(*([a for a in r if a is not None] for r in (fused, reference)))
    if n_dropped:  # a dropped assignment contributes nothing, so its combine weight gets a zero gradient
        planned = np.zeros(arrays[1].size, dtype=bool)
        for _, _, slots in plan:
            planned[slots] = True
        np.testing.assert_array_equal(reference[2].reshape(-1)[~planned], 0.0)


def test_moe_dispatch_gradcheck_both_paths(rng):
    arrays, plan, n_dropped = moe_arrays(rng, 5, 3, 2, 3, 2, capacity=3)
    assert n_dropped > 0  # dropped assignments must contribute nothing, in both paths
    gradcheck_both(moe_fn(3, plan), *(Tensor(a, requires_grad=True) for a in arrays))


# --------------------------------------------------------------------------------------------- RoPE


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("interleaved", [False, True])
@pytest.mark.parametrize("per_sequence", [False, True])
def test_rope_fused_equals_reference(seed, interleaved, per_sequence):
    rng = np.random.default_rng(seed)
    B, H, T, D = int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 7)), 2 * int(rng.integers(1, 5))
    positions = rng.integers(0, 50, size=(B, T) if per_sequence else T)
    cos, sin = RotaryEmbedding(D, interleaved=interleaved).tables(positions, np.float64)
    if per_sequence:
        cos, sin = cos[:, None], sin[:, None]  # (B, 1, T, D)
    g = rng.standard_normal((B, H, T, D))
    assert_same(*both_paths(lambda x: rope(x, cos, sin, interleaved), [rng.standard_normal((B, H, T, D))], g, "Rope"))


@pytest.mark.parametrize("interleaved", [False, True])
def test_rope_gradcheck_both_paths(rng, interleaved):
    cos, sin = RotaryEmbedding(4, interleaved=interleaved).tables(np.arange(3, 6), np.float64)
    gradcheck_both(lambda x: rope(x, cos, sin, interleaved), Tensor(rng.standard_normal((2, 2, 3, 4)),
                                                                     requires_grad=True))
