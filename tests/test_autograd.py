"""The autograd engine: topological order, deep graphs, graph release, retain_graph, hooks, retain_grad, grad mode,
accumulation, user-defined Functions, and dtype preservation through a float32 model step (anomaly detection:
test_anomaly.py)."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

import tinygrad_lite as tl
import tinygrad_lite.functional as F
from tinygrad_lite import Function, Tensor, enable_grad, is_grad_enabled, no_grad

# ----------------------------------------------------------------------------- topological order


def test_x_plus_x_times_x():
    x = Tensor(3.0, requires_grad=True)
    ((x + x) * x).backward()  # 2x^2 -> 4x
    assert x.grad == 12.0


def test_micrograd_b_equals_a_plus_a():
    a = Tensor(-4.0, requires_grad=True)
    b = a + a
    c = b + b  # 4a: b's gradient (2) must be complete before it is passed to a
    c.backward()
    assert a.grad == 4.0


def test_diamond_and_uneven_depths():
    x = Tensor(np.array(0.7), requires_grad=True)
    y = x.exp()
    z = (y * x).tanh() * y + x  # x reaches z through paths of lengths 1, 2, 3 and 4
    z.backward()
    v = 0.7
    e = np.exp(v)
    t = np.tanh(e * v)
    expected = (1 - t * t) * (e * v + e) * e + t * e + 1  # d/dx [tanh(x e^x) e^x + x], by hand
    np.testing.assert_allclose(x.grad, expected, rtol=1e-12)


def test_shared_subexpression_used_many_times():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    s = x * x
    total = s + s * 2.0 + s.exp().log() + s[0] + s[1]  # s is consumed five times
    total.sum().backward()
    # d/dx of (4 s + s0 + s1 summed over 2 entries) with s = x^2: (8 + 2) * 2x... computed entry by entry:
    # sum_i (4 x_i^2) + 2 (x_0^2 + x_1^2)  ->  d/dx_i = 8 x_i + 4 x_i = 12 x_i
    np.testing.assert_allclose(x.grad, 12 * x.data)


def test_chain_of_100k_ops():
    """Iterative topological sort and backward: a recursive one would overflow the stack."""
    x = Tensor(np.array([1.0]), requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0001
    y.backward(np.ones(1))
    np.testing.assert_allclose(x.grad, [1.0001**100_000], rtol=1e-9)
    np.testing.assert_allclose(y.data, [1.0001**100_000], rtol=1e-9)


def test_deep_graph_can_be_deleted_without_backward():
    x = Tensor(np.array([1.0]), requires_grad=True)
    y = x
    for _ in range(30_000):
        y = y + 1.0
    del y  # a recursive deallocation of 30,000 nested nodes must not crash
    gc.collect()


# ----------------------------------------------------------------------------- graph release


def test_intermediate_is_freed_after_backward_while_output_lives():
    x = Tensor(np.ones((3, 4)), requires_grad=True)
    h = x * 2.0
    saved = h.exp()
    out = saved.sum()
    h_ref, saved_ref, saved_data_ref = weakref.ref(h), weakref.ref(saved), weakref.ref(saved.data)
    del h, saved
    assert h_ref() is not None  # the graph keeps the intermediates alive...
    out.backward()
    gc.disable()  # prove it is reference counting, not a later cycle collection, that frees them
    try:
        assert h_ref() is None and saved_ref() is None and saved_data_ref() is None  # ...until backward
    finally:
        gc.enable()
    assert out.item() == pytest.approx(12 * np.exp(2.0), rel=1e-12)
    assert out._ctx.released and out._ctx.parents == ()


def test_saved_arrays_are_released_after_backward():
    x = Tensor(np.ones(3), requires_grad=True)
    y = x.exp()
    ctx = y._ctx
    assert vars(ctx)  # Exp saved its output
    y.sum().backward()
    assert not vars(ctx) and ctx.released


def test_second_backward_without_retain_graph_names_the_op():
    x = Tensor(np.ones(3), requires_grad=True)
    y = (x.exp() * 2.0).sum()
    y.backward()
    with pytest.raises(RuntimeError, match=r"Sum.*retain_graph=True"):
        y.backward()


def test_retain_graph_allows_a_second_backward_and_grads_add():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward(retain_graph=True)
    np.testing.assert_array_equal(x.grad, [4.0, 8.0])
    ref = weakref.ref(y._ctx.parents[0])  # still linked
    y.backward()  # the last one frees
    np.testing.assert_array_equal(x.grad, [6.0, 12.0])
    assert ref() is None


def test_retain_graph_keeps_saved_arrays():
    x = Tensor(np.ones(3), requires_grad=True)
    y = x.exp()
    y.sum().backward(retain_graph=True)
    assert not y._ctx.released and "out" in vars(y._ctx)


# ----------------------------------------------------------------------------- accumulation and grad mode


def test_gradients_accumulate_across_calls_until_zeroed():
    w = Tensor(np.array([1.0, -1.0]), requires_grad=True)
    (w * 3.0).sum().backward()
    (w * w).sum().backward()
    np.testing.assert_array_equal(w.grad, [3.0 + 2.0, 3.0 - 2.0])
    w.grad = None
    (w * 3.0).sum().backward()
    np.testing.assert_array_equal(w.grad, [3.0, 3.0])


def test_grad_has_same_shape_and_dtype_as_data_and_is_an_ndarray():
    for data in (np.ones((2, 3), np.float32), np.ones(4, np.float64), np.array(2.0, np.float32)):
        x = Tensor(data, requires_grad=True)
        ((x + x) + x).sum().backward()  # three contributions to the same leaf
        assert type(x.grad) is np.ndarray and x.grad.shape == data.shape and x.grad.dtype == data.dtype
        np.testing.assert_array_equal(x.grad, np.full(data.shape, 3.0))


def test_leaf_grad_is_not_aliased_with_anything():
    x = Tensor(np.ones(3), requires_grad=True)
    y = x + 0.0
    y.retain_grad()
    g = np.ones(3)
    y.backward(g)
    assert x.grad is not g and not np.shares_memory(x.grad, y.grad)
    x.grad += 1.0  # a later in-place update of one grad must not change another
    np.testing.assert_array_equal(y.grad, [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(g, [1.0, 1.0, 1.0])


def test_inputs_that_do_not_require_grad_get_no_grad():
    x = Tensor(np.ones(3), requires_grad=True)
    c = Tensor(np.full(3, 2.0))
    (x * c).sum().backward()
    assert c.grad is None and not c.requires_grad


def test_no_grad_context_builds_no_graph_and_restores():
    x = Tensor(np.ones(3), requires_grad=True)
    assert is_grad_enabled()
    with no_grad():
        assert not is_grad_enabled()
        y = x * 2.0
        with no_grad():
            pass
        assert not is_grad_enabled()
        with enable_grad():
            z = x * 2.0
        assert not is_grad_enabled()
    assert is_grad_enabled()
    assert not y.requires_grad and y._ctx is None
    assert z.requires_grad and z._ctx is not None


def test_no_grad_restores_after_an_exception():
    with pytest.raises(ZeroDivisionError):
        with no_grad():
            raise ZeroDivisionError
    assert is_grad_enabled()


def test_no_grad_as_decorator_with_and_without_parentheses():
    x = Tensor(np.ones(2), requires_grad=True)

    @no_grad()
    def f(t):
        return t * 2.0

    @no_grad
    def g(t):
        """docstring kept"""
        return t * 3.0

    assert not f(x).requires_grad and not g(x).requires_grad
    assert g.__doc__ == "docstring kept" and g.__name__ == "g"
    assert is_grad_enabled() and (x * 2.0).requires_grad


def test_backward_with_explicit_gradient():
    x = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    (x * x).backward(Tensor(np.array([1.0, 0.5, -1.0])))
    np.testing.assert_array_equal(x.grad, [2.0, 2.0, -6.0])


def test_backward_from_a_leaf():
    x = Tensor(np.array([2.0]), requires_grad=True)
    x.backward()
    np.testing.assert_array_equal(x.grad, [1.0])


# ----------------------------------------------------------------------------- hooks and retain_grad


def test_retain_grad_on_a_non_leaf():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * 3.0
    k = x * 4.0
    h.retain_grad()
    (h * h + k).sum().backward()
    np.testing.assert_array_equal(h.grad, 2 * h.data)
    assert k.grad is None  # not retained
    np.testing.assert_array_equal(x.grad, 2 * h.data * 3 + 4)


def test_hook_sees_the_complete_gradient_once_and_can_replace_it():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * 1.0
    seen = []

    def double(g):
        seen.append(g.copy())
        return g * 2

    h.register_hook(double)
    (h + h + h).sum().backward()  # three contributions arrive at h
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0], [3.0, 3.0])
    np.testing.assert_array_equal(x.grad, [6.0, 6.0])


def test_hook_returning_none_keeps_the_gradient_and_hooks_chain_in_order():
    x = Tensor(np.array([1.0]), requires_grad=True)
    calls = []
    x.register_hook(lambda g: calls.append(("observe", g.copy())))
    x.register_hook(lambda g: g + 10.0)
    x.register_hook(lambda g: calls.append(("after", g.copy())))
    (x * 2.0).sum().backward()
    assert calls[0][0] == "observe" and calls[0][1] == 2.0
    assert calls[1][0] == "after" and calls[1][1] == 12.0
    np.testing.assert_array_equal(x.grad, [12.0])  # a hook on a leaf changes what is accumulated


def test_hook_returning_a_wrong_shape_is_an_error():
    x = Tensor(np.ones(3), requires_grad=True)
    h = x * 1.0
    h.register_hook(lambda g: np.ones(4))
    with pytest.raises(ValueError, match=r"\(4,\).*\(3,\)"):
        h.sum().backward()


def test_hooks_and_retain_grad_need_requires_grad():
    with pytest.raises(RuntimeError):
        Tensor([1.0]).register_hook(lambda g: g)
    with pytest.raises(RuntimeError):
        Tensor([1.0]).retain_grad()


# ----------------------------------------------------------------------------- user-defined Functions


class Cube(Function):
    """x ** 3 with a scale kwarg: the public way to add an op."""

    def forward(self, x, scale=1.0):
        self.x, self.scale = x, scale
        return scale * x**3

    def backward(self, g):
        return g * self.scale * 3 * self.x**2


class MulAdd(Function):
    """a * b + c, returning a list from backward and None for an input that needs no gradient."""

    def forward(self, a, b, c):
        self.a, self.b = a, b
        return a * b + c

    def backward(self, g):
        return [g * self.b if self.needs_input_grad[0] else None, g * self.a if self.needs_input_grad[1] else None,
                g if self.needs_input_grad[2] else None]


def test_user_defined_function():
    x = Tensor(np.array([1.0, -2.0]), requires_grad=True)
    y = Cube.apply(x, scale=2.0)
    np.testing.assert_array_equal(y.data, [2.0, -16.0])
    assert type(y._ctx) is Cube and "grad_fn=Cube" in repr(y)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [6.0, 24.0])
    assert tl.gradcheck(lambda t: Cube.apply(t, scale=0.5), Tensor(np.array([0.3, -1.2]), requires_grad=True))


def test_user_function_needs_input_grad_and_list_return():
    a = Tensor(np.array([2.0]), requires_grad=True)
    b = Tensor(np.array([3.0]))
    c = Tensor(np.array([1.0]), requires_grad=True)
    out = MulAdd.apply(a, b, c)
    assert out._ctx.needs_input_grad == (True, False, True)
    out.backward(np.ones(1))
    np.testing.assert_array_equal(a.grad, [3.0])
    np.testing.assert_array_equal(c.grad, [1.0])
    assert b.grad is None


def test_user_function_errors_name_the_op():
    class WrongCount(Function):
        def forward(self, a, b):
            return a + b

        def backward(self, g):
            return g

    class WrongShape(Function):
        def forward(self, a):
            return a.sum()

        def backward(self, g):
            return np.ones(7)

    x = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"WrongCount.backward returned 1 gradients for 2 inputs"):
        WrongCount.apply(x, x).sum().backward()
    with pytest.raises(RuntimeError, match=r"WrongShape.backward returned a gradient of shape \(7,\).*\(3,\)"):
        WrongShape.apply(x).backward()


def test_user_function_returning_numpy_scalars():
    class Square(Function):
        def forward(self, x):
            self.x = x
            return float(x * x)  # a Python float

        def backward(self, g):
            return 2.0 * self.x * g  # a NumPy scalar for 0-d inputs

    x = Tensor(np.array(3.0), requires_grad=True)
    y = Square.apply(x)
    assert isinstance(y.data, np.ndarray) and y.item() == 9.0
    y.backward()
    assert type(x.grad) is np.ndarray and x.grad == 6.0


# ----------------------------------------------------------------------------- dtypes through a training step


def _graph_nodes(root):
    nodes, stack, seen = [], [root], set()
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        nodes.append(t)
        if t._ctx is not None:
            stack.extend(t._ctx.parents)
    return nodes


def test_float32_stays_float32_through_a_model_step():
    """Python scalars, mean/var, softmax, gelu, layer_norm, cross_entropy, matmul with an int64 array...: every
    forward value, every gradient an op's backward returns (before the engine's safety cast) and every .grad stays
    float32. A silent float64 upcast would double the memory and time of training."""
    rng = np.random.default_rng(0)
    f32 = np.float32
    emb = Tensor(rng.standard_normal((10, 8)).astype(f32), requires_grad=True)
    w = Tensor(rng.standard_normal((8, 8)).astype(f32), requires_grad=True)
    b = Tensor(np.zeros(8, f32), requires_grad=True)
    gain = Tensor(np.ones(8, f32), requires_grad=True)
    ids = np.array([[1, 2, 2], [3, 9, 0]])
    targets = np.array([[1, 2, -100], [0, 4, 4]])
    int_proj = np.eye(8, dtype=np.int64)

    x = F.embedding(emb, ids)  # (2, 3, 8)
    x = x * 0.5 + 1 - 2.0 / (x.abs() + 3) + x**2 * 0.1 + x ** np.float64(1.0) / 10
    x = (x @ int_proj + np.float64(0.5) * x) / np.sqrt(8)  # int64 array and NumPy scalars
    h = F.layer_norm(x, gain, b).gelu() + x.gelu("none").tanh() * x.sigmoid().silu()
    h = F.linear(h, w, b) + (h - h.mean(axis=-1, keepdims=True)) / (h.var(axis=-1, keepdims=True) + 1e-5).sqrt()
    h = F.rms_norm(h, gain) + h.softmax(-1) + h.log_softmax(-1) * 0.01 + (h.relu() + 1).log()
    h = F.dropout(h, 0.1, True, rng)
    h = Tensor.cat([h[:, :2], h[:, 2:]], axis=1) + Tensor.stack([h[0], h[1]]).max(axis=-1, keepdims=True)
    h = Tensor.where(h.data > 0, h, 0.0).masked_fill((ids == 0)[..., None], 0.0)[..., None].squeeze(-1)
    loss = F.cross_entropy(h, targets, label_smoothing=0.1) + h.min() * 0.0 + h.sum(axis=(0, 1)).mean() * 1e-3

    nodes = _graph_nodes(loss)
    for t in nodes:
        if t.dtype.kind == "f":
            assert t.dtype == f32, f"{type(t._ctx).__name__} produced {t.dtype}"
        if t._ctx is not None:
            raw = t._ctx.backward(np.ones(t.shape, f32))
            raw = raw if isinstance(raw, tuple) else (raw,)
            for parent, g in zip(t._ctx.parents, raw):
                if g is not None and parent.requires_grad:
                    assert np.asarray(g).dtype == f32, f"{type(t._ctx).__name__}.backward returned {g.dtype}"
    loss.backward()
    for p in (emb, w, b, gain):
        assert p.grad.dtype == f32 and np.isfinite(p.grad).all()
