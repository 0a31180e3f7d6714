"""Hypothesis properties: every binary op on random broadcast-compatible shapes, every reduction on random axes and
keepdims, matmul on random batch shapes, indexing with random repeated indices, and the fused ops (cross-entropy,
layer norm, softmax) equal to their composition from primitive ops.

Expected gradients come from independent computations: textbook derivatives summed onto each input through NumPy's
broadcast index map (np.bincount), the definition of a tied max written out per slice, or finite differences.
"""

from __future__ import annotations

import numpy as np
from _engine_cases import composed_log_softmax, composed_softmax
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, mutually_broadcastable_shapes

import tinygrad_lite.functional as F
from tinygrad_lite import Tensor, gradcheck

SETTINGS = settings(max_examples=30, deadline=None)
seeds = st.integers(0, 2**32 - 1)


def _scatter_to_input(shape, out_shape, contrib):
    """Sum `contrib` (one value per output position) onto an input of `shape`: each output position adds into
    the element of the input it read under NumPy broadcasting."""
    n = int(np.prod(shape, dtype=np.int64))
    index_map = np.broadcast_to(np.arange(n).reshape(shape), out_shape)
    return np.bincount(index_map.ravel(), weights=np.asarray(contrib).ravel(), minlength=n).reshape(shape)


# name: (op, d out/d a, d out/d b, kind of a, kind of b) with a, b broadcast to the output shape
BINARY = {
    "add": (lambda a, b: a + b, lambda a, b: np.ones_like(a * b), lambda a, b: np.ones_like(a * b), "n", "n"),
    "sub": (lambda a, b: a - b, lambda a, b: np.ones_like(a * b), lambda a, b: -np.ones_like(a * b), "n", "n"),
    "mul": (lambda a, b: a * b, lambda a, b: b + 0 * a, lambda a, b: a + 0 * b, "n", "n"),
    "div": (lambda a, b: a / b, lambda a, b: 1 / b + 0 * a, lambda a, b: -a / b**2, "n", "p"),
    "pow": (lambda a, b: a**b, lambda a, b: b * a ** (b - 1), lambda a, b: a**b * np.log(a), "p", "n"),
}


def _draw(rng, shape, kind):
    return rng.uniform(0.5, 2.0, shape) if kind == "p" else rng.standard_normal(shape)


@SETTINGS
@given(op=st.sampled_from(sorted(BINARY)), shapes=mutually_broadcastable_shapes(num_shapes=2, max_dims=4, max_side=3),
       seed=seeds, swap_python_scalar=st.booleans())
def test_binary_ops_on_broadcast_shapes(op, shapes, seed, swap_python_scalar):
    fn, da, db, ka, kb = BINARY[op]
    (sa, sb), out_shape = shapes.input_shapes, shapes.result_shape
    rng = np.random.default_rng(seed)
    a, b = _draw(rng, sa, ka), _draw(rng, sb, kb)
    ta, tb = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
    out = fn(ta, tb)
    assert out.shape == out_shape and out.dtype == np.float64
    np.testing.assert_allclose(out.data, fn(a, b), rtol=1e-12)
    w = rng.standard_normal(out_shape)
    out.backward(w)
    np.testing.assert_allclose(ta.grad, _scatter_to_input(sa, out_shape, w * da(a, b)), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(tb.grad, _scatter_to_input(sb, out_shape, w * db(a, b)), rtol=1e-9, atol=1e-12)

    # the same op with a Python scalar on either side keeps the tensor's dtype and gradient
    s = float(_draw(rng, (), ka if swap_python_scalar else kb))  # the scalar takes the place of a or of b
    x32 = Tensor(a.astype(np.float32), requires_grad=True)
    y = fn(x32, s) if not swap_python_scalar else fn(s, Tensor(b.astype(np.float32), requires_grad=True))
    assert y.dtype == np.float32


@st.composite
def shape_axis_keepdims(draw, max_dims=4):
    shape = draw(array_shapes(min_dims=0, max_dims=max_dims, min_side=1, max_side=4))
    ndim = len(shape)
    if ndim == 0 or draw(st.booleans()):
        axis = None
    else:
        axes = draw(st.lists(st.integers(-ndim, ndim - 1), min_size=1, max_size=ndim, unique_by=lambda a: a % ndim))
        axis = axes[0] if len(axes) == 1 and draw(st.booleans()) else tuple(axes)
    return shape, axis, draw(st.booleans())


NUMPY_REDUCE = {"sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min}


@SETTINGS
@given(sak=shape_axis_keepdims(), op=st.sampled_from(["sum", "mean", "max", "min", "var0", "var1"]), seed=seeds)
def test_reductions_on_random_axes(sak, op, seed):
    shape, axis, keepdims = sak
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape, dtype=np.int64))
    if op in ("max", "min"):  # distinct values 0.1 apart: finite differences never change the winner
        x = ((rng.permutation(n) - n / 2) * 0.1).reshape(shape)
    else:
        x = rng.standard_normal(shape)
    name, kw = (op[:3], {"correction": int(op[3])}) if op.startswith("var") else (op, {})
    t = Tensor(x)
    out = getattr(t, name)(axis=axis, keepdims=keepdims, **kw)
    if name == "var":
        count = n if axis is None else int(np.prod([shape[a] for a in np.atleast_1d(axis)]))
        if count - kw["correction"] <= 0:
            return  # nan by definition
        expected = np.var(x, axis=axis, keepdims=keepdims, ddof=kw["correction"])
    else:
        expected = NUMPY_REDUCE[name](x, axis=axis, keepdims=keepdims)
    assert out.shape == np.shape(expected)
    np.testing.assert_allclose(out.data, expected, rtol=1e-12, atol=1e-14)
    assert gradcheck(lambda t: getattr(t, name)(axis=axis, keepdims=keepdims, **kw), Tensor(x, requires_grad=True))


@SETTINGS
@given(sak=shape_axis_keepdims(), use_min=st.booleans(), seed=seeds)
def test_max_min_split_ties_equally(sak, use_min, seed):
    shape, axis, keepdims = sak
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, shape).astype(np.float64)  # many ties
    t = Tensor(x, requires_grad=True)
    out = (t.min if use_min else t.max)(axis=axis, keepdims=keepdims)
    w = rng.standard_normal(out.shape)
    out.backward(w)

    # the definition, slice by slice: move the reduced axes last, flatten them, share w among the winners
    ndim = x.ndim
    red = tuple(range(ndim)) if axis is None else tuple(sorted(a % ndim for a in np.atleast_1d(axis)))
    kept = [a for a in range(ndim) if a not in red]
    moved = np.transpose(x, kept + list(red)).reshape(int(np.prod([shape[a] for a in kept], dtype=np.int64)), -1)
    wflat = np.asarray(w).reshape(-1)
    grad_moved = np.zeros_like(moved)
    for row in range(moved.shape[0]):
        best = moved[row].min() if use_min else moved[row].max()
        winners = moved[row] == best
        grad_moved[row, winners] = wflat[row] / winners.sum()
    expected = np.transpose(grad_moved.reshape([shape[a] for a in kept + list(red)]), np.argsort(kept + list(red)))
    np.testing.assert_allclose(t.grad, expected, rtol=1e-12)


@st.composite
def matmul_shapes(draw):
    batch = draw(mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3))
    n, k, m = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    a_vec, b_vec = draw(st.booleans()), draw(st.booleans())
    sa = (k,) if a_vec else batch.input_shapes[0] + (n, k)
    sb = (k,) if b_vec else batch.input_shapes[1] + (k, m)
    return sa, sb


@SETTINGS
@given(shapes=matmul_shapes(), seed=seeds)
def test_matmul_on_random_batch_shapes(shapes, seed):
    sa, sb = shapes
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    out = Tensor(a) @ Tensor(b)
    np.testing.assert_allclose(out.data, np.matmul(a, b), rtol=1e-12, atol=1e-14)
    assert gradcheck(lambda x, y: x @ y, Tensor(a, requires_grad=True), Tensor(b, requires_grad=True))


@SETTINGS
@given(rows=st.integers(1, 5), cols=st.integers(1, 4), n_ids=st.integers(1, 12), seed=seeds)
def test_gather_with_repeated_indices(rows, cols, n_ids, seed):
    rng = np.random.default_rng(seed)
    x = Tensor(rng.standard_normal((rows, cols)), requires_grad=True)
    ids = rng.integers(-rows, rows, n_ids)  # negative ids too
    out = x[ids]
    np.testing.assert_array_equal(out.data, x.data[ids])
    w = rng.standard_normal((n_ids, cols))
    out.backward(w)
    expected = np.zeros((rows, cols))
    for i, r in enumerate(ids):
        expected[r] += w[i]
    np.testing.assert_allclose(x.grad, expected, rtol=1e-12, atol=1e-15)


@SETTINGS
@given(shape=array_shapes(min_dims=1, max_dims=4, max_side=4), seed=seeds)
def test_permute_reshape_round_trip_gradients(shape, seed):
    rng = np.random.default_rng(seed)
    perm = tuple(rng.permutation(len(shape)))
    x = Tensor(rng.standard_normal(shape), requires_grad=True)
    out = x.permute(*perm).reshape(-1)
    w = rng.standard_normal(out.shape)
    out.backward(w)
    np.testing.assert_array_equal(x.grad, np.transpose(w.reshape([shape[p] for p in perm]), np.argsort(perm)))


# ----------------------------------------------------------------------------- fused == composition


def _compare(fused, composed, arrays, rng, rtol=1e-9, atol=1e-11):
    ts1 = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    ts2 = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    y1, y2 = fused(*ts1), composed(*ts2)
    np.testing.assert_allclose(y1.data, y2.data, rtol=rtol, atol=atol)
    w = rng.standard_normal(y1.shape)
    y1.backward(w)
    y2.backward(w)
    for a, b in zip(ts1, ts2):
        np.testing.assert_allclose(a.grad, b.grad, rtol=rtol, atol=atol)


@SETTINGS
@given(batch=array_shapes(min_dims=0, max_dims=2, max_side=4), C=st.integers(1, 6),
       smoothing=st.sampled_from([0.0, 0.05, 0.5, 1.0]), reduction=st.sampled_from(["mean", "sum", "none"]),
       scale=st.sampled_from([0.1, 1.0, 30.0]), seed=seeds)
def test_cross_entropy_equals_composition(batch, C, smoothing, reduction, scale, seed):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(batch + (C,)) * scale
    t = rng.integers(0, C, batch)
    ignore = rng.random(batch) < 0.3
    t = np.where(ignore, -100, t)
    if reduction == "mean" and np.all(ignore):
        t.reshape(-1)[0] = 0  # at least one target counts (all ignored is nan, tested elsewhere)
    _compare(lambda z: F.cross_entropy(z, t, label_smoothing=smoothing, reduction=reduction),
             lambda z: F.cross_entropy_reference(z, Tensor(t), label_smoothing=smoothing, reduction=reduction), [z], rng)


@SETTINGS
@given(shape=array_shapes(min_dims=1, max_dims=3, max_side=5), eps=st.sampled_from([1e-5, 1e-2, 1.0]),
       affine=st.booleans(), scale=st.sampled_from([1e-2, 1.0, 100.0]), seed=seeds)
def test_layer_norm_equals_composition(shape, eps, affine, scale, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * scale + rng.standard_normal()
    if affine:
        w, b = rng.standard_normal(shape[-1:]), rng.standard_normal(shape[-1:])
        _compare(lambda x, w, b: F.layer_norm(x, w, b, eps), lambda x, w, b: F.layer_norm_reference(x, w, b, eps),
                 [x, w, b], rng, rtol=1e-8, atol=1e-9)
    else:
        _compare(lambda x: F.layer_norm(x, eps=eps), lambda x: F.layer_norm_reference(x, eps=eps), [x], rng,
                 rtol=1e-8, atol=1e-9)


@SETTINGS
@given(shape=array_shapes(min_dims=1, max_dims=3, max_side=5), data=st.data(),
       scale=st.sampled_from([0.1, 1.0, 50.0]), seed=seeds)
def test_softmax_and_log_softmax_equal_composition(shape, data, scale, seed):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * scale
    _compare(lambda x: x.softmax(axis), lambda x: composed_softmax(x, axis), [x], rng)
    _compare(lambda x: x.log_softmax(axis), lambda x: composed_log_softmax(x, axis), [x], rng)
    np.testing.assert_allclose(Tensor(x).softmax(axis).data.sum(axis=axis), 1.0, rtol=1e-12)
