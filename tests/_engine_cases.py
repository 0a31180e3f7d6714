"""The engine's ops as a table of cases, shared by tests/test_ops_gradcheck.py (finite differences) and
tests/test_ref_torch_ops.py (PyTorch in float64).

A case is (id, fn, torch_fn, specs): `fn` takes our Tensors, `torch_fn` the same inputs as torch tensors (None when
torch has no equivalent, e.g. negative-step slices), and `specs` says how to draw each input: (shape, kind).
Kinds keep finite differences honest: "away" stays 0.2 from relu's/abs's kink, "distinct" has no ties within 0.1 so
a max/min winner cannot change under a 1e-6 perturbation. Kinks and ties themselves are tested exactly elsewhere.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

import tinygrad_lite.functional as F
from tinygrad_lite import Tensor
from tinygrad_lite.ops import Erf


class Case(NamedTuple):
    id: str
    fn: Callable
    torch_fn: Callable | None
    specs: tuple


def make_array(rng: np.random.Generator, shape: tuple, kind: str) -> np.ndarray:
    if kind == "normal":
        return np.asarray(rng.standard_normal(shape), dtype=np.float64)
    if kind == "positive":
        return np.asarray(rng.uniform(0.5, 2.0, shape), dtype=np.float64)
    if kind == "away":  # |x| in [0.2, 2]
        return np.asarray(rng.choice([-1.0, 1.0], shape) * rng.uniform(0.2, 2.0, shape), dtype=np.float64)
    if kind == "distinct":  # a shuffled grid spaced 0.1 apart, plus jitter far below the spacing
        n = int(np.prod(shape, dtype=np.int64))
        grid = (rng.permutation(n) - n / 2) * 0.1 + rng.uniform(-0.01, 0.01, n)
        return grid.reshape(shape)
    if kind == "bool":
        return rng.random(shape) < 0.5
    if kind.startswith("int:"):  # class ids in [0, C)
        return rng.integers(0, int(kind[4:]), shape)
    if kind.startswith("ignored:"):  # class ids with every third entry set to torch's ignore_index -100
        t = rng.integers(0, int(kind[8:]), shape)
        t.reshape(-1)[::3] = -100
        return t
    raise ValueError(kind)


def is_differentiable(kind: str) -> bool:
    return kind in ("normal", "positive", "away", "distinct")


def _all_dims(axis, ndim):
    return tuple(range(ndim)) if axis is None else axis


def _t_reduce(name, axis, keepdims, **kw):
    """torch counterpart of our NumPy-style reduction (axis None = all axes; max/min are amax/amin, which split
    the gradient among ties as we do; torch.max(dim) would give it all to one index)."""

    def f(x):
        import torch  # only when a ref test calls it: building the cases must work without torch

        fn = {"sum": torch.sum, "mean": torch.mean, "max": torch.amax, "min": torch.amin, "var": torch.var}[name]
        if x.ndim == 0:  # torch wants dim=() for a 0-d tensor's "all axes"
            return fn(x, dim=(), keepdim=keepdims, **kw) if name != "var" else fn(x, dim=None, keepdim=keepdims, **kw)
        return fn(x, dim=_all_dims(axis, x.ndim), keepdim=keepdims, **kw)

    return f


def _t(module_attr):
    """Late import of a torch function (the module must import without torch)."""

    def call(*args, **kwargs):
        import torch
        import torch.nn.functional as TF

        obj = TF if module_attr.startswith("F.") else torch
        return getattr(obj, module_attr.split(".")[-1])(*args, **kwargs)

    return call


def _tconst(a):
    import torch

    return torch.from_numpy(np.asarray(a))


C4 = np.linspace(-1.5, 1.5, 4)
BROADCAST_PAIRS = [((3, 4), (3, 4)), ((5, 1, 4, 1), (3, 1, 2)), ((), (2, 3)), ((2, 3), ()), ((), ()),
                   ((4,), (3, 4)), ((3, 1), (1, 4))]
BIG_PAIR = ((1, 3, 1, 7, 1), (2, 1, 5, 1, 8))
UNARY_SHAPES = [(), (5,), (3, 4)]
REDUCE_AXES = [None, 0, -1, (0, 2), (1,)]
MATMUL_PAIRS = [((3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)), ((2, 3, 4), (4, 5)),
                ((3, 4), (2, 4, 5)), ((2, 1, 3, 4), (5, 4, 2)), ((2, 3, 4), (2, 4, 5)), ((4,), (2, 4, 5)),
                ((2, 3, 4), (4,))]
EMB_IDS = np.array([[0, 2, 2, 4], [2, 0, 1, 2]])  # id 2 four times: its gradient rows must add up


def _binary_cases():
    ops = {
        "add": (lambda a, b: a + b, "normal", "normal"),
        "sub": (lambda a, b: a - b, "normal", "normal"),
        "mul": (lambda a, b: a * b, "normal", "normal"),
        "div": (lambda a, b: a / b, "normal", "positive"),
        "pow": (lambda a, b: a**b, "positive", "normal"),
    }
    for name, (fn, ka, kb) in ops.items():
        pairs = BROADCAST_PAIRS + ([BIG_PAIR] if name in ("add", "mul") else [])
        for sa, sb in pairs:
            yield Case(f"{name}-{sa}-{sb}", fn, fn, ((sa, ka), (sb, kb)))


def _scalar_cases():
    same = [
        ("add_scalar", lambda x: x + 2.5, "normal"),
        ("radd_scalar", lambda x: 2.5 + x, "normal"),
        ("sub_scalar", lambda x: x - 1.5, "normal"),
        ("rsub_scalar", lambda x: 1.5 - x, "normal"),
        ("mul_int", lambda x: x * 3, "normal"),
        ("rmul_float", lambda x: 0.5 * x, "normal"),
        ("div_scalar", lambda x: x / 4, "normal"),
        ("rdiv_scalar", lambda x: 4 / x, "positive"),
        ("pow_2", lambda x: x**2, "normal"),
        ("pow_3", lambda x: x**3, "normal"),
        ("pow_half", lambda x: x**0.5, "positive"),
        ("pow_neg", lambda x: x**-1.5, "positive"),
        ("pow_0", lambda x: x**0 + x, "normal"),
        ("rpow", lambda x: 2.0**x, "normal"),
        ("neg", lambda x: -x, "normal"),
    ]
    for name, fn, kind in same:
        for shape in [(), (3, 4)]:
            yield Case(f"{name}-{shape}", fn, fn, ((shape, kind),))
    yield Case("add_ndarray", lambda x: x + C4, lambda x: x + _tconst(C4), (((3, 4), "normal"),))
    yield Case("rmul_ndarray", lambda x: C4 * x, lambda x: _tconst(C4) * x, (((3, 4), "normal"),))
    yield Case("rsub_ndarray", lambda x: C4 - x, lambda x: _tconst(C4) - x, (((2, 1, 4), "normal"),))
    yield Case("rdiv_ndarray", lambda x: C4 / x, lambda x: _tconst(C4) / x, (((4,), "positive"),))


def _unary_cases():
    ops = {
        "exp": (lambda x: x.exp(), None, "normal"),
        "log": (lambda x: x.log(), None, "positive"),
        "sqrt": (lambda x: x.sqrt(), None, "positive"),
        "tanh": (lambda x: x.tanh(), None, "normal"),
        "sigmoid": (lambda x: x.sigmoid(), None, "normal"),
        "relu": (lambda x: x.relu(), None, "away"),
        "abs": (lambda x: x.abs(), None, "away"),
        "silu": (lambda x: x.silu(), lambda x: _t("F.silu")(x), "normal"),
        "gelu_tanh": (lambda x: x.gelu(), lambda x: _t("F.gelu")(x, approximate="tanh"), "normal"),
        "gelu_none": (lambda x: x.gelu(approximate="none"), lambda x: _t("F.gelu")(x), "normal"),
        "erf": (lambda x: Erf.apply(x), lambda x: _t("erf")(x), "normal"),
        "clip": (lambda x: x.clip(-0.5, 0.7), lambda x: _t("clamp")(x, -0.5, 0.7), "normal"),
        "sign": (lambda x: x.sign(), lambda x: _t("sign")(x), "away"),
        "softplus": (lambda x: x.softplus(2.0, 1.0), lambda x: _t("F.softplus")(x, 2.0, 1.0), "normal"),
        "elu": (lambda x: x.elu(0.7), lambda x: _t("F.elu")(x, alpha=0.7), "away"),
        "leaky_relu": (lambda x: x.leaky_relu(0.2), lambda x: _t("F.leaky_relu")(x, 0.2), "away"),
        "relu6": (lambda x: (x * 3.5).relu6(), lambda x: _t("F.relu6")(x * 3.5), "away"),
        "hardswish": (lambda x: (x * 2.5).hardswish(), lambda x: _t("F.hardswish")(x * 2.5), "normal"),
        "mish": (lambda x: x.mish(), lambda x: _t("F.mish")(x), "normal"),
    }
    for name, (fn, tfn, kind) in ops.items():
        for shape in UNARY_SHAPES:
            yield Case(f"{name}-{shape}", fn, tfn or fn, ((shape, kind),))
    for name in ("softmax", "log_softmax"):
        for shape, axis in [((5,), -1), ((3, 4), -1), ((3, 4), 0), ((2, 3, 4), 1)]:
            yield Case(f"{name}-{shape}-axis{axis}", lambda x, n=name, a=axis: getattr(x, n)(a),
                       lambda x, n=name, a=axis: getattr(x, n)(a), ((shape, "normal"),))


def _reduce_cases():
    for name, kind, kw in [("sum", "normal", {}), ("mean", "normal", {}), ("max", "distinct", {}),
                           ("min", "distinct", {}), ("var", "normal", {"correction": 0}),
                           ("var", "normal", {"correction": 1})]:
        tag = name + ("" if not kw else f"-c{kw['correction']}")
        combos = [((2, 3, 4), a, k) for a in REDUCE_AXES for k in (False, True)]
        combos += [((5,), None, False), ((5,), 0, True), ((), None, False), ((), None, True)]
        for shape, axis, keepdims in combos:
            if name == "var" and kw["correction"] == 1 and shape == ():
                continue  # one element, n - 1 = 0: nan by definition
            yield Case(f"{tag}-{shape}-axis{axis}-keep{keepdims}",
                       lambda x, n=name, a=axis, k=keepdims, kw=kw: getattr(x, n)(axis=a, keepdims=k, **kw),
                       _t_reduce(name, axis, keepdims, **kw), ((shape, kind),))


def _movement_cases():
    x234 = (((2, 3, 4), "normal"),)
    same = [
        ("reshape", lambda x: x.reshape(4, 6), x234),
        ("reshape_tuple", lambda x: x.reshape((3, -1)), x234),
        ("reshape_0d", lambda x: x.reshape(1, 1), (((), "normal"),)),
        ("permute", lambda x: x.permute(2, 0, 1), x234),
        ("permute_neg", lambda x: x.permute(-1, 0, -2), x234),
        ("transpose", lambda x: x.transpose(0, 2), x234),
        ("transpose_last2", lambda x: x.transpose(-2, -1), x234),
        ("T", lambda x: x.T, (((3, 4), "normal"),)),
        ("expand", lambda x: x.expand(2, 3, 4), (((3, 1), "normal"),)),
        ("expand_keep", lambda x: x.expand(-1, 5), (((3, 1), "normal"),)),
        ("squeeze_axis", lambda x: x.squeeze(1), (((3, 1, 4), "normal"),)),
        ("squeeze_all", lambda x: x.squeeze(), (((1, 3, 1), "normal"),)),
        ("unsqueeze0", lambda x: x.unsqueeze(0), x234),
        ("unsqueeze_neg", lambda x: x.unsqueeze(-1), x234),
        ("flatten", lambda x: x.flatten(), x234),
        ("flatten1", lambda x: x.flatten(1), x234),
        ("getitem_int", lambda x: x[1], x234),
        ("getitem_int_slice", lambda x: x[-1, 1:3], x234),
        ("getitem_none_step", lambda x: x[:, None, ::2], x234),
        ("getitem_ellipsis", lambda x: x[..., 1], x234),
    ]
    for name, fn, specs in same:
        yield Case(name, fn, fn, specs)

    def _tlong(a):
        return _tconst(np.asarray(a, dtype=np.int64))

    fancy = [
        ("getitem_repeated_ids", lambda x: x[np.array([0, 0, 1, 0])], lambda x: x[_tlong([0, 0, 1, 0])]),
        ("getitem_list_axis1", lambda x: x[:, [2, 0, 2]], lambda x: x[:, _tlong([2, 0, 2])]),
        ("getitem_2d_ids", lambda x: x[np.array([[1, 0], [1, 1]])], lambda x: x[_tlong([[1, 0], [1, 1]])]),
        ("getitem_tensor_ids", lambda x: x[Tensor(np.array([1, 1])), 2], lambda x: x[_tlong([1, 1]), 2]),
        ("getitem_pair_ids", lambda x: x[[0, 1, 0], [2, 2, 2]], lambda x: x[_tlong([0, 1, 0]),
                                                                            _tlong([2, 2, 2])]),
        ("getitem_bool_mask", lambda x: x[x.data > 0], lambda x: x[x > 0]),
        ("getitem_bool_rows", lambda x: x[np.array([True, False])], lambda x: x[_tconst(np.array([True, False]))]),
        ("getitem_ids_ellipsis_none", lambda x: x[..., None, [3, 3]], lambda x: x[..., None, _tlong([3, 3])]),
        ("getitem_negative_step", lambda x: x[:, ::-1, 1:], None),  # NumPy only: torch has no negative steps
        ("getitem_ids_neg_step", lambda x: x[[1, 1], ::-2], None),
    ]
    for name, fn, tfn in fancy:
        yield Case(name, fn, tfn, x234)

    yield Case("cat0", lambda a, b: Tensor.cat([a, b], 0), lambda a, b: _t("cat")([a, b], 0),
               (((2, 3), "normal"), ((4, 3), "normal")))
    yield Case("cat_last3", lambda a, b, c: Tensor.cat([a, b, c], axis=-1), lambda a, b, c: _t("cat")([a, b, c], -1),
               (((2, 3), "normal"), ((2, 1), "normal"), ((2, 2), "normal")))
    for axis in (0, 1, -1):
        yield Case(f"stack{axis}", lambda a, b, c, ax=axis: Tensor.stack([a, b, c], ax),
                   lambda a, b, c, ax=axis: _t("stack")([a, b, c], ax),
                   (((2, 3), "normal"), ((2, 3), "normal"), ((2, 3), "normal")))

    # each piece weighted differently, so a gradient sent to the wrong piece shows
    def split_fn(x):
        return Tensor.cat([p * (i + 1) for i, p in enumerate(x.split(3, axis=1))], axis=1)

    def split_tfn(x):
        return _t("cat")([p * (i + 1) for i, p in enumerate(_t("split")(x, 3, dim=1))], 1)

    yield Case("split", split_fn, split_tfn, (((3, 7), "normal"),))
    yield Case("where", lambda c, a, b: Tensor.where(c, a, b), lambda c, a, b: _t("where")(c, a, b),
               (((3, 1), "bool"), ((3, 4), "normal"), ((4,), "normal")))
    yield Case("where_scalar", lambda c, a: Tensor.where(c, a, 0.5), lambda c, a: _t("where")(c, a, 0.5),
               (((3, 4), "bool"), ((3, 4), "normal")))
    yield Case("masked_fill", lambda x, m: x.masked_fill(m, -2.0), lambda x, m: x.masked_fill(m, -2.0),
               (((3, 4), "normal"), ((1, 4), "bool")))


def _matmul_cases():
    for sa, sb in MATMUL_PAIRS:
        yield Case(f"matmul-{sa}-{sb}", lambda a, b: a @ b, lambda a, b: a @ b, ((sa, "normal"), (sb, "normal")))
    yield Case("matmul_method", lambda a, b: a.matmul(b), lambda a, b: a.matmul(b),
               (((2, 3), "normal"), ((3, 2), "normal")))
    yield Case("rmatmul_ndarray", lambda b: np.ones((2, 3)) @ b, lambda b: _tconst(np.ones((2, 3))) @ b,
               (((3, 4), "normal"),))


def _ce_torch(reduction, label_smoothing=0.0):
    def f(z, t):
        out = _t("F.cross_entropy")(z.reshape(-1, z.shape[-1]), t.reshape(-1), reduction=reduction,
                                    label_smoothing=label_smoothing)
        return out.reshape(t.shape) if reduction == "none" else out

    return f


def _functional_cases():
    for reduction in ("mean", "sum", "none"):
        for smoothing in (0.0, 0.1):
            for zshape, tkind in [((4, 5), "int:5"), ((2, 3, 5), "ignored:5"), ((6, 3), "ignored:3")]:
                yield Case(f"cross_entropy-{reduction}-ls{smoothing}-{zshape}-{tkind}",
                           lambda z, t, r=reduction, s=smoothing: F.cross_entropy(z, t, reduction=r,
                                                                                  label_smoothing=s),
                           _ce_torch(reduction, smoothing), ((zshape, "normal"), (zshape[:-1], tkind)))
    yield Case("cross_entropy-0d-target", lambda z, t: F.cross_entropy(z, t), _ce_torch("mean"),
               (((4,), "normal"), ((), "int:4")))

    def t_layer_norm(x, w=None, b=None):
        return _t("F.layer_norm")(x, (x.shape[-1],), w, b, 1e-5)

    for shape in [(3, 4), (2, 3, 4), (4,)]:
        C = (shape[-1],)
        yield Case(f"layer_norm-{shape}", lambda x, w, b: F.layer_norm(x, w, b), t_layer_norm,
                   ((shape, "normal"), (C, "normal"), (C, "normal")))
    yield Case("layer_norm-noaffine", lambda x: F.layer_norm(x), t_layer_norm, (((3, 4), "normal"),))
    yield Case("layer_norm-weightonly", lambda x, w: F.layer_norm(x, w), t_layer_norm,
               (((3, 4), "normal"), ((4,), "normal")))
    yield Case("layer_norm-eps", lambda x, w, b: F.layer_norm(x, w, b, eps=0.1),
               lambda x, w, b: _t("F.layer_norm")(x, (4,), w, b, 0.1),
               (((3, 4), "normal"), ((4,), "normal"), ((4,), "normal")))
    for shape in [(3, 4), (2, 3, 4)]:
        yield Case(f"rms_norm-{shape}", lambda x, w: F.rms_norm(x, w),
                   lambda x, w: _t("F.rms_norm")(x, (x.shape[-1],), w, 1e-6),
                   ((shape, "normal"), (shape[-1:], "normal")))
    yield Case("rms_norm-noweight", lambda x: F.rms_norm(x, eps=1e-3),
               lambda x: _t("F.rms_norm")(x, (4,), None, 1e-3), (((3, 4), "normal"),))
    yield Case("embedding-repeated", lambda w: F.embedding(w, EMB_IDS),
               lambda w: _t("F.embedding")(_tconst(EMB_IDS), w), (((5, 3), "normal"),))
    yield Case("embedding-tensor-ids", lambda w: F.embedding(w, Tensor(EMB_IDS[0])),
               lambda w: _t("F.embedding")(_tconst(EMB_IDS[0]), w), (((5, 3), "normal"),))
    for xshape in [(2, 3, 4), (3, 4), (4,)]:
        yield Case(f"linear-{xshape}", lambda x, w, b: F.linear(x, w, b), lambda x, w, b: _t("F.linear")(x, w.T, b),
                   ((xshape, "normal"), ((4, 5), "normal"), ((5,), "normal")))
    yield Case("linear-nobias", lambda x, w: F.linear(x, w), lambda x, w: _t("F.linear")(x, w.T),
               (((3, 4), "normal"), ((4, 5), "normal")))
    yield Case("F.softmax", lambda x: F.softmax(x, 0), lambda x: _t("softmax")(x, 0), (((3, 4), "normal"),))
    yield Case("F.log_softmax", lambda x: F.log_softmax(x), lambda x: _t("log_softmax")(x, -1), (((3, 4), "normal"),))
    yield Case("F.gelu", lambda x: F.gelu(x), lambda x: _t("F.gelu")(x, approximate="tanh"), (((3, 4), "normal"),))
    yield Case("F.relu", lambda x: F.relu(x), lambda x: _t("relu")(x), (((3, 4), "away"),))
    yield Case("F.silu", lambda x: F.silu(x), lambda x: _t("F.silu")(x), (((3, 4), "normal"),))


def all_cases() -> list:
    return [*_binary_cases(), *_scalar_cases(), *_unary_cases(), *_reduce_cases(), *_movement_cases(),
            *_matmul_cases(), *_functional_cases()]


def make_inputs(case: Case, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return [make_array(rng, shape, kind) for shape, kind in case.specs]


def as_tensors(case: Case, arrays: list) -> list:
    return [Tensor(a, requires_grad=is_differentiable(kind)) for a, (_, kind) in zip(arrays, case.specs)]


# ----------------------------------------------------------------------------- softmax composed of primitive ops
# The same function as the Softmax / LogSoftmax primitives out of elementwise and reduce ops, so their hand-written
# backward can be compared with a graph the engine differentiates op by op.


def composed_log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    m = Tensor(x.data.max(axis=axis, keepdims=True))  # a constant shift: it cancels in value and in gradient
    shifted = x - m
    return shifted - shifted.exp().sum(axis=axis, keepdims=True).log()


def composed_softmax(x: Tensor, axis: int = -1) -> Tensor:
    e = (x - Tensor(x.data.max(axis=axis, keepdims=True))).exp()
    return e / e.sum(axis=axis, keepdims=True)
