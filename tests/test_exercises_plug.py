"""tinygrad_lite.use_implementations: the one mechanism through which the exercises replace the library's code, and
every switch point the exercises use is actually consulted by the library."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_lite.functional as F
import tinygrad_lite.ops.elementwise as E
from exercises.grading.registry import all_exercises, load
from tinygrad_lite import Function, Tensor, set_fused, use_implementations
from tinygrad_lite.function import _implementations
from tinygrad_lite.optim import Adam, AdamW


class Recorder:
    """A stand-in implementation that records its calls and then runs the library's code."""

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


def test_overrides_apply_inside_and_restore_on_exit_nested():
    assert _implementations == {}
    with use_implementations({"a": 1, "b": 2}):
        with use_implementations({"b": 3, "c": 4}):
            assert _implementations == {"a": 1, "b": 3, "c": 4}
        assert _implementations == {"a": 1, "b": 2}
    assert _implementations == {}
    with pytest.raises(KeyError):
        with use_implementations({"a": 1}):
            raise KeyError("an error inside the block")
    assert _implementations == {}


def test_a_function_class_is_replaced_wherever_it_is_applied():
    class Doubling(E.Mul):
        def forward(self, a, b):
            return 2.0 * super().forward(a, b)

    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    with use_implementations({E.Mul: Doubling}):
        y = x * x
        assert type(y._ctx) is Doubling
        assert Doubling.apply(x, x).data.tolist() == [2.0, 8.0]  # the replacement itself is not looked up again
    assert y.data.tolist() == [2.0, 8.0] and type((x * x)._ctx) is E.Mul


def test_unbroadcast_switch_is_used_by_every_broadcasting_op():
    calls = []

    def mine(grad, shape):
        calls.append(shape)
        g = grad.sum(axis=tuple(range(grad.ndim - len(shape))))
        return g.sum(axis=tuple(i for i, n in enumerate(shape) if n == 1), keepdims=True)

    a, b = Tensor(np.ones((2, 3)), requires_grad=True), Tensor(np.ones(3), requires_grad=True)
    with use_implementations({"unbroadcast": mine}):
        ((a - b) / (b + 1.0)).sum().backward()
    assert calls.count((3,)) >= 2 and b.grad.shape == (3,)
    calls.clear()
    same = Tensor(np.ones((2, 3)), requires_grad=True)
    with use_implementations({"unbroadcast": mine}):
        (a * same).sum().backward()  # no broadcast: the library returns the gradient before asking
    assert calls == []


@pytest.mark.parametrize("fused", [True, False])
def test_nn_op_switches_take_precedence_over_both_paths(fused):
    x = Tensor(np.random.default_rng(0).standard_normal((2, 4)), requires_grad=True)
    t = np.array([1, 3])
    ln, gelu, ce = Recorder(F.layer_norm_reference), Recorder(F.gelu_reference), Recorder(F.cross_entropy_reference)
    with set_fused(fused), use_implementations({"layer_norm": ln, "gelu": gelu, "cross_entropy": ce}):
        F.cross_entropy(F.gelu(F.layer_norm(x), "none"), t).backward()
    assert (ln.calls, gelu.calls, ce.calls) == (1, 1, 1)
    assert x.grad is not None


def test_adamw_step_switch_is_used_by_adamw_only():
    calls = []

    def step(p, g, m, v, t, lr, beta1, beta2, eps, wd):
        calls.append(t)
        p -= lr * g

    for cls, expected in ((AdamW, [1, 2]), (Adam, [])):
        calls.clear()
        w = Tensor(np.ones(3), requires_grad=True)
        opt = cls([w], lr=0.1)
        with use_implementations({"adamw_step": step}):
            for _ in range(2):
                w.grad = np.ones(3)
                opt.step()
        assert calls == expected, cls.__name__
    assert opt.state[w]["step"] == 2


@pytest.mark.parametrize("ex", all_exercises(), ids=lambda ex: ex.name)
def test_every_plug_key_is_a_function_class_or_a_switch_point_of_the_library(ex):
    import pathlib
    import re

    project = pathlib.Path(__file__).resolve().parents[1]
    sources = "\n".join(p.read_text() for folder in ("tinygrad_lite", "layers", "models", "samplers", "tokenizers")
                        for p in (project / folder).rglob("*.py"))
    switches = set(re.findall(r'_implementations\.get\("(\w+)"', sources))
    for key in ex.grader.plug(load(ex.solution)):
        assert (isinstance(key, type) and issubclass(key, Function)) or key in switches, key


def test_backward_order_switch_decides_the_walk():
    from tinygrad_lite.autograd import topological_order

    seen = []

    def order(root):
        seen.append(root)
        return topological_order(root)

    a = Tensor(np.array([3.0]), requires_grad=True)
    b = a + a
    c = b + b
    with use_implementations({"backward_order": order}):
        c.backward()
    assert seen == [c] and a.grad.tolist() == [4.0]
    a.grad = None
    with use_implementations({"backward_order": lambda root: topological_order(root)[::-1]}):  # a wrong order
        d = (a + a) * 2.0
        d.backward()
    assert a.grad is None  # walked the wrong way round, no gradient reaches the leaf
