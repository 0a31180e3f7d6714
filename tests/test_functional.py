"""tinygrad_lite.functional: every fused op equals its reference twin (values and gradients in float64, both
gradchecked), torch's semantics for cross-entropy written out in NumPy, dropout statistics and determinism,
embedding and linear."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import tinygrad_lite.functional as F
from tinygrad_lite import Tensor, gradcheck, set_fused
from tinygrad_lite.fused import gelu as fused_gelu


def _grads_of(fn, arrays, w, fused):
    ts = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    with set_fused(fused):
        out = fn(*ts)
    out.backward(w)
    return out.data, [t.grad for t in ts]


def _assert_twins(fn, arrays, rtol=1e-10, atol=1e-12, seed=0):
    """fn on the fused path and on the reference path: equal values and gradients, and both pass gradcheck."""
    out = fn(*[Tensor(a) for a in arrays])
    w = np.random.default_rng(seed).standard_normal(out.shape)
    y1, g1 = _grads_of(fn, arrays, w, True)
    y2, g2 = _grads_of(fn, arrays, w, False)
    np.testing.assert_allclose(y1, y2, rtol=rtol, atol=atol, err_msg="forward")
    for i, (a, b) in enumerate(zip(g1, g2)):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"gradient of input {i}")
    for fused in (True, False):
        with set_fused(fused):
            assert gradcheck(fn, *[Tensor(a.copy(), requires_grad=True) for a in arrays])


def _graph_ops(t: Tensor) -> set:
    seen, stack, ops = set(), [t], set()
    while stack:
        node = stack.pop()
        if id(node) in seen or node._ctx is None:
            continue
        seen.add(id(node))
        ops.add(type(node._ctx))
        stack.extend(node._ctx.parents)
    return ops


# ----------------------------------------------------------------------------- fused == reference twin


@pytest.mark.parametrize("shape,targets", [
    ((4, 5), np.array([0, 4, 2, 2])),
    ((2, 3, 5), np.array([[1, -100, 4], [0, 0, -100]])),
    ((5,), np.array(3)),
])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_twins(rng, shape, targets, reduction, smoothing):
    z = rng.standard_normal(shape) * 3
    _assert_twins(lambda z: F.cross_entropy(z, targets, label_smoothing=smoothing, reduction=reduction), [z])


def test_cross_entropy_twins_at_large_logits(rng):
    # Logits of 1e4 would overflow exp without the max subtraction on either path.
    z = rng.standard_normal((3, 6)) + np.array([[1e4], [-1e4], [0.0]])
    _assert_twins(lambda z: F.cross_entropy(z, np.array([1, 5, 0])), [z])


@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 6), (7,), (1, 1, 5)])
def test_layer_norm_twins(rng, shape):
    x, w, b = rng.standard_normal(shape) * 3 + 1, rng.standard_normal(shape[-1:]), rng.standard_normal(shape[-1:])
    _assert_twins(lambda x, w, b: F.layer_norm(x, w, b), [x, w, b])
    _assert_twins(lambda x: F.layer_norm(x, eps=0.5), [x])
    _assert_twins(lambda x, b: F.layer_norm(x, bias=b), [x, b])
    _assert_twins(lambda x, w: F.layer_norm(x, w), [x, w])


@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 6), (1, 5)])
def test_rms_norm_twins(rng, shape):
    x, w = rng.standard_normal(shape), rng.standard_normal(shape[-1:])
    _assert_twins(lambda x, w: F.rms_norm(x, w), [x, w])
    _assert_twins(lambda x: F.rms_norm(x, eps=0.1), [x])


@pytest.mark.parametrize("approximate", ["tanh", "none"])
def test_gelu_twins(rng, approximate):
    x = rng.standard_normal((3, 5)) * 2
    _assert_twins(lambda x: F.gelu(x, approximate), [x])
    _assert_twins(lambda x: x.gelu(approximate), [x])


def test_linear_and_embedding_twins(rng):
    x, w, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 6)), rng.standard_normal(6)
    _assert_twins(lambda x, w, b: F.linear(x, w, b), [x, w, b])
    _assert_twins(lambda x, w: F.linear(x, w), [x, w])
    ids = np.array([[1, 1, 0], [3, 1, 3]])  # repeated ids: their gradients add up on both paths
    _assert_twins(lambda w: F.embedding(w, ids), [rng.standard_normal((4, 2))])


def test_the_reference_path_is_built_from_primitive_ops_only(rng):
    x = Tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    w, b = Tensor(rng.standard_normal((4, 5)), requires_grad=True), Tensor(rng.standard_normal(4), requires_grad=True)
    table = Tensor(rng.standard_normal((7, 4)), requires_grad=True)

    def loss():
        h = F.layer_norm(x + F.embedding(table, np.array([[1, 2, 1]])), b, b)
        h = F.rms_norm(F.gelu(h, "none") + F.gelu(h), b)
        return F.cross_entropy(F.linear(F.dropout(h, 0.5, rng=np.random.default_rng(0)), w), np.zeros((2, 3), int))

    with set_fused(False):
        ops = _graph_ops(loss())
    assert ops and all(op.__module__.startswith("tinygrad_lite.ops.") for op in ops), sorted(map(str, ops))
    fused = _graph_ops(loss())
    assert {op.__module__ for op in fused} >= {"tinygrad_lite.fused.norm", "tinygrad_lite.fused.loss",
                                               "tinygrad_lite.fused.gelu", "tinygrad_lite.fused.linear"}


def test_set_fused_is_a_call_and_a_context_manager():
    from tinygrad_lite import is_fused_enabled

    assert is_fused_enabled()
    with set_fused(False):
        assert not is_fused_enabled()
        with set_fused(True):
            assert is_fused_enabled()
        assert not is_fused_enabled()
    assert is_fused_enabled()
    try:
        set_fused(False)
        assert not is_fused_enabled()
    finally:
        set_fused(True)
    assert is_fused_enabled()


@pytest.mark.parametrize("block", [None, 1000])
def test_gelu_kernels_give_the_same_result_on_any_slices(rng, monkeypatch, block):
    # A speed backend may feed the elementwise kernels slices of their arrays (run_elementwise's runner); odd sizes
    # so the slices are unequal; tails far enough out that exp overflows (silenced) and the sigmoid form must give 0
    # and x.
    if block is not None:
        def sliced(kernel, arrays):
            for s in range(0, arrays[0].size, block):
                kernel(*(a[s:s + block] for a in arrays))
        monkeypatch.setattr(fused_gelu, "runner", sliced)
    x = rng.standard_normal((3, 7, 409)) * 3
    x[0, 0, :4] = [-60.0, -12.0, 12.0, 60.0]
    _assert_twins(lambda x: x.gelu(), [x[:, :, :20]])
    x32 = Tensor(x.astype(np.float32), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning leaks from the exp
        y = x32.gelu()
        y.backward(np.ones_like(x32.data))
    assert y.dtype == np.float32 and x32.grad.dtype == np.float32
    np.testing.assert_array_equal(y.data[0, 0, :4], [0.0, 0.0, 12.0, 60.0])
    np.testing.assert_array_equal(x32.grad[0, 0, :4], [0.0, 0.0, 1.0, 1.0])
    with set_fused(False):
        # 1 + tanh(u) cancels for negative x: the formula in float32 is good to about 1e-7 |x| absolute
        np.testing.assert_allclose(x32.gelu().data, y.data, rtol=2e-6, atol=2e-6)


def test_linear_skips_gradients_nobody_needs_on_both_paths(rng):
    x, w = rng.standard_normal((3, 7, 5)), rng.standard_normal((5, 6))
    for fused in (True, False):
        for frozen in ("x", "w"):
            xt, wt = Tensor(x, requires_grad=frozen != "x"), Tensor(w, requires_grad=frozen != "w")
            with set_fused(fused):
                F.linear(xt, wt).backward(np.ones((3, 7, 6)))
            if frozen == "x":
                assert xt.grad is None
                np.testing.assert_allclose(wt.grad, x.reshape(-1, 5).T @ np.ones((21, 6)), rtol=1e-12)
            else:
                assert wt.grad is None
                np.testing.assert_allclose(xt.grad, np.ones((3, 7, 6)) @ w.T, rtol=1e-12)


@pytest.mark.parametrize("fused", [True, False])
def test_gelu_exact_float32_matches_math_erf(rng, fused):
    # float32 takes a vectorised erfc (relative error 1.2e-7); compare with math.erf in float64, tails included.
    from math import erfc, exp, pi, sqrt

    x = np.concatenate([np.linspace(-9, 9, 70001), rng.standard_normal(3) * 1e-20, [0.0]]).astype(np.float32)
    x64 = x.astype(np.float64)
    cdf = np.array([0.5 * erfc(-v / sqrt(2)) for v in x64])
    t = Tensor(x, requires_grad=True)
    with set_fused(fused):
        y = t.gelu(approximate="none")
    y.backward(np.ones_like(x))
    assert y.dtype == np.float32 and t.grad.dtype == np.float32
    if not fused:
        # The formula 0.5 x (1 + erf(x / sqrt 2)) cancels for negative x: good to about 1e-7 |x| absolute, no better.
        np.testing.assert_allclose(y.data, x64 * cdf, rtol=0, atol=1e-6)
        return
    # Relative accuracy, tails included: about 1e-6 in the bulk; in the tails the float32 rounding of x^2 / 2 inside
    # the exp adds about (x^2 / 2) * 6e-8.
    bulk = np.abs(x) <= 3
    np.testing.assert_allclose(y.data[bulk], (x64 * cdf)[bulk], rtol=2e-6, atol=1e-30)
    np.testing.assert_allclose(y.data, x64 * cdf, rtol=1.5e-5, atol=1e-30)
    dcdf = np.array([exp(-v * v / 2) / sqrt(2 * pi) for v in x64])
    np.testing.assert_allclose(t.grad, cdf + x64 * dcdf, rtol=0, atol=3e-7)


def test_gelu_none_matches_erf_formula():
    from math import erf

    x = np.linspace(-4, 4, 17)
    expected = np.array([v * 0.5 * (1 + erf(v / np.sqrt(2))) for v in x])
    np.testing.assert_allclose(Tensor(x).gelu(approximate="none").data, expected, rtol=1e-14, atol=1e-300)


def test_softmax_exact_at_magnitude_1e3():
    x = np.array([1000.0, 1000.0 - np.log(3.0), -1000.0])
    p = Tensor(x).softmax().data
    np.testing.assert_allclose(p, [0.75, 0.25, 0.0], rtol=1e-13, atol=1e-300)
    lp = Tensor(x).log_softmax().data
    np.testing.assert_allclose(lp[:2], np.log([0.75, 0.25]), rtol=1e-13)
    np.testing.assert_allclose(lp[2], -1000.0 - (1000.0 + np.log(4.0 / 3.0)), rtol=1e-13)
    x32 = Tensor(np.array([[1e3, -1e3, 999.0]], np.float32), requires_grad=True)
    y = x32.softmax()
    (y * Tensor(np.array([[1.0, 2.0, 3.0]], np.float32))).sum().backward()
    assert np.isfinite(y.data).all() and np.isfinite(x32.grad).all()


# ----------------------------------------------------------------------------- cross-entropy semantics (NumPy)


def _np_cross_entropy(z, t, ignore_index=-100, eps=0.0, reduction="mean"):
    """torch.nn.functional.cross_entropy written out row by row."""
    C = z.shape[-1]
    z2, t2 = z.reshape(-1, C), t.reshape(-1)
    losses = []
    for row, target in zip(z2, t2):
        if target == ignore_index:
            losses.append(0.0)
            continue
        logp = row - row.max() - np.log(np.exp(row - row.max()).sum())
        q = np.full(C, eps / C)
        q[target] += 1 - eps
        losses.append(-(q * logp).sum())
    losses = np.array(losses)
    if reduction == "none":
        return losses.reshape(t.shape)
    if reduction == "sum":
        return losses.sum()
    return losses.sum() / (t2 != ignore_index).sum()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("eps", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("ignore_index", [-100, 2])
def test_cross_entropy_matches_torch_semantics(rng, reduction, eps, ignore_index):
    z = rng.standard_normal((3, 4, 5))
    t = np.array([[0, 2, 4, -100], [2, 2, 1, 3], [4, -100, 0, 2]])
    t = np.where(t == -100, ignore_index, t) if ignore_index != -100 else t
    ours = F.cross_entropy(Tensor(z), t, ignore_index=ignore_index, label_smoothing=eps, reduction=reduction)
    np.testing.assert_allclose(ours.data, _np_cross_entropy(z, t, ignore_index, eps, reduction), rtol=1e-12)


def test_cross_entropy_gradient_is_softmax_minus_target_over_count(rng):
    z = rng.standard_normal((4, 3))
    t = np.array([2, -100, 0, 0])
    logits = Tensor(z, requires_grad=True)
    F.cross_entropy(logits, t, label_smoothing=0.3).backward()
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    q = np.full((4, 3), 0.1)
    q[[0, 2, 3], [2, 0, 0]] += 0.7
    expected = (p - q) / 3  # three targets are not ignored
    expected[1] = 0.0
    np.testing.assert_allclose(logits.grad, expected, rtol=1e-12, atol=1e-15)


def test_cross_entropy_ignored_rows_get_zero_gradient_and_all_ignored_mean_is_nan():
    logits = Tensor(np.ones((2, 3)), requires_grad=True)
    loss = F.cross_entropy(logits, np.array([-100, -100]))
    assert np.isnan(loss.item())
    assert F.cross_entropy(logits, np.array([-100, -100]), reduction="sum").item() == 0.0
    F.cross_entropy(logits, np.array([-100, -100]), reduction="sum").backward()
    np.testing.assert_array_equal(logits.grad, 0.0)


def test_cross_entropy_accepts_tensor_targets_and_float32(rng):
    z = Tensor(rng.standard_normal((3, 4)).astype(np.float32), requires_grad=True)
    loss = F.cross_entropy(z, Tensor(np.array([1, 2, 3])), label_smoothing=np.float64(0.1))
    assert loss.dtype == np.float32 and loss.shape == ()
    loss.backward()
    assert z.grad.dtype == np.float32


# ----------------------------------------------------------------------------- norms


def test_layer_norm_output_statistics(rng):
    x = rng.standard_normal((4, 64)) * 5 + 3
    y = F.layer_norm(Tensor(x), eps=0.0).data
    np.testing.assert_allclose(y.mean(axis=-1), 0.0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=-1), 1.0, rtol=1e-12)
    w, b = rng.standard_normal(64), rng.standard_normal(64)
    np.testing.assert_allclose(F.layer_norm(Tensor(x), Tensor(w), Tensor(b), eps=0.0).data, y * w + b, rtol=1e-12)


def test_rms_norm_output_statistics(rng):
    x = rng.standard_normal((4, 64)) * 5
    y = F.rms_norm(Tensor(x), eps=0.0).data
    np.testing.assert_allclose((y * y).mean(axis=-1), 1.0, rtol=1e-12)
    expected = x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(F.rms_norm(Tensor(x)).data, expected, rtol=1e-12)


def test_norm_gradchecks(rng):
    x = Tensor(rng.standard_normal((2, 3, 5)), requires_grad=True)
    w = Tensor(rng.standard_normal(5), requires_grad=True)
    b = Tensor(rng.standard_normal(5), requires_grad=True)
    assert gradcheck(lambda x, w, b: F.layer_norm(x, w, b, eps=1e-3), x, w, b)
    assert gradcheck(lambda x, w: F.rms_norm(x, w, eps=1e-3), x, w)


# ----------------------------------------------------------------------------- dropout


def test_dropout_statistics(rng):
    x = Tensor(np.ones(200_000, dtype=np.float32))
    y = F.dropout(x, 0.3, True, rng).data
    dropped = (y == 0).mean()
    assert abs(dropped - 0.3) < 5 * np.sqrt(0.3 * 0.7 / y.size)  # 5 standard deviations
    np.testing.assert_allclose(y[y != 0], np.float32(1 / 0.7), rtol=1e-6)  # survivors scaled by 1 / (1 - p)
    assert abs(y.mean() - 1.0) < 0.01  # the expectation is preserved
    assert y.dtype == np.float32


def test_dropout_is_deterministic_given_an_rng():
    x = Tensor(np.ones((50, 50)))
    a = F.dropout(x, 0.5, True, np.random.default_rng(7)).data
    b = F.dropout(x, 0.5, True, np.random.default_rng(7)).data
    c = F.dropout(x, 0.5, True, np.random.default_rng(8)).data
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_dropout_gradient_uses_the_same_mask(rng):
    x = Tensor(rng.standard_normal((30, 30)), requires_grad=True)
    y = F.dropout(x, 0.4, True, rng)
    y.backward(np.ones((30, 30)))
    kept = y.data != 0
    np.testing.assert_allclose(x.grad, kept / 0.6, rtol=1e-12)


def test_dropout_eval_and_edge_probabilities(rng):
    x = Tensor(rng.standard_normal((5, 5)), requires_grad=True)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0, True, rng) is x
    y = F.dropout(x, 1.0, True, rng)
    np.testing.assert_array_equal(y.data, 0.0)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, 0.0)


# ----------------------------------------------------------------------------- embedding and linear


def test_embedding_repeated_ids_accumulate(rng):
    weight = Tensor(rng.standard_normal((5, 3)), requires_grad=True)
    ids = np.array([[4, 1, 4], [4, 0, 1]])
    out = F.embedding(weight, ids)
    np.testing.assert_array_equal(out.data, weight.data[ids])
    g = rng.standard_normal((2, 3, 3))
    out.backward(g)
    expected = np.zeros((5, 3))
    for (i, j), row in np.ndenumerate(ids):
        expected[row] += g[i, j]
    np.testing.assert_allclose(weight.grad, expected, rtol=1e-12)
    assert not weight.grad[[2, 3]].any()


def test_linear_values_and_shapes(rng):
    x, w, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 5)), rng.standard_normal(5)
    np.testing.assert_allclose(F.linear(Tensor(x), Tensor(w), Tensor(b)).data, np.einsum("btk,kn->btn", x, w) + b,
                               rtol=1e-12)
    assert F.linear(Tensor(x[0, 0]), Tensor(w)).shape == (5,)


def test_linear_gradients_by_formula(rng):
    x = Tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    w = Tensor(rng.standard_normal((4, 5)), requires_grad=True)
    b = Tensor(rng.standard_normal(5), requires_grad=True)
    g = rng.standard_normal((2, 3, 5))
    F.linear(x, w, b).backward(g)
    np.testing.assert_allclose(x.grad, np.einsum("btn,kn->btk", g, w.data), rtol=1e-12)
    np.testing.assert_allclose(w.grad, np.einsum("btk,btn->kn", x.data, g), rtol=1e-12)
    np.testing.assert_allclose(b.grad, g.sum(axis=(0, 1)), rtol=1e-12)


def test_linear_skips_gradients_nobody_needs(rng):
    x = Tensor(rng.standard_normal((3, 4)))
    w = Tensor(rng.standard_normal((4, 5)), requires_grad=True)
    F.linear(x, w).sum().backward()
    assert x.grad is None and w.grad.shape == (4, 5)
