"""Optimizers, clipping and the LR schedule.

Expected values are computed here by hand from the published formulas (SGD with momentum, Adam's Algorithm 1 with
PyTorch's eps placement, AdamW's decoupled decay), never by calling the code under test. The comparisons with
torch.optim are in test_optim_ref.py.
"""

import math

import numpy as np
import pytest

from tinygrad_lite.optim import (
    SGD,
    Adam,
    AdamW,
    clip_grad_norm_,
    clip_grad_value_,
    cosine_with_warmup,
)
from tinygrad_lite.tensor import Tensor


def _param(values, dtype=np.float64):
    return Tensor(np.array(values, dtype=dtype), requires_grad=True)


def _step(opt, params, grads):
    for p, g in zip(params, grads):
        p.grad = None if g is None else np.array(g, dtype=p.data.dtype)
    opt.step()


# ---------------------------------------------------------------- SGD


def test_sgd_plain_one_step():
    p = _param([1.0, -2.0])
    _step(SGD([p], lr=0.1), [p], [[0.5, 0.25]])
    np.testing.assert_allclose(p.data, [1.0 - 0.1 * 0.5, -2.0 - 0.1 * 0.25], rtol=1e-15)


def test_sgd_momentum_and_weight_decay_two_steps():
    # p0 = 1, g = 0.5 both steps, lr = 0.1, momentum = 0.9, wd = 0.1
    # step 1: g' = 0.5 + 0.1*1 = 0.6;         b = g' = 0.6 (first step: no damping);  p = 1 - 0.06 = 0.94
    # step 2: g' = 0.5 + 0.1*0.94 = 0.594;    b = 0.9*0.6 + 0.594 = 1.134;            p = 0.94 - 0.1134 = 0.8266
    p = _param([1.0])
    opt = SGD([p], lr=0.1, momentum=0.9, weight_decay=0.1)
    _step(opt, [p], [[0.5]])
    np.testing.assert_allclose(p.data, [0.94], rtol=1e-14)
    _step(opt, [p], [[0.5]])
    np.testing.assert_allclose(p.data, [0.8266], rtol=1e-14)
    np.testing.assert_allclose(opt.state[p]["momentum_buffer"], [1.134], rtol=1e-14)


def test_sgd_nesterov_and_dampening():
    # Nesterov, momentum 0.5, lr 1: step 1: b = g = 2, update g + 0.5*b = 3 -> p = 10 - 3 = 7
    #                               step 2: g = 1, b = 0.5*2 + 1 = 2, update 1 + 0.5*2 = 2 -> p = 5
    p = _param([10.0])
    opt = SGD([p], lr=1.0, momentum=0.5, nesterov=True)
    _step(opt, [p], [[2.0]])
    _step(opt, [p], [[1.0]])
    assert p.data.tolist() == [5.0]
    # Dampening 0.5, momentum 0.5, lr 1: b = 2 (first step undamped) -> p = 8; b = 0.5*2 + 0.5*1 = 1.5 -> p = 6.5
    q = _param([10.0])
    opt = SGD([q], lr=1.0, momentum=0.5, dampening=0.5)
    _step(opt, [q], [[2.0]])
    _step(opt, [q], [[1.0]])
    assert q.data.tolist() == [6.5]


# ---------------------------------------------------------------- Adam / AdamW


def _adam_by_hand(p, grads, lr, b1, b2, eps, wd=0.0, decoupled=False):
    """Adam written out with scalars: m_t, v_t, bias corrections, eps after the corrected sqrt."""
    m = v = 0.0
    for t, g in enumerate(grads, start=1):
        if decoupled:
            p = p * (1 - lr * wd)
        else:
            g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat_sqrt = m / (1 - b1**t), math.sqrt(v) / math.sqrt(1 - b2**t)
        p = p - lr * m_hat / (v_hat_sqrt + eps)
    return p


def test_adam_two_steps_by_hand():
    # Step 1 worked out: m = 0.05, v = 0.00025, m_hat = 0.5, sqrt(v_hat) = 0.5, p = 1 - 0.1 * 0.5/(0.5 + 1e-8)
    p = _param([1.0, -3.0])
    opt = Adam([p], lr=0.1)
    _step(opt, [p], [[0.5, 2.0]])
    np.testing.assert_allclose(p.data[0], 1 - 0.1 * 0.5 / (0.5 + 1e-8), rtol=1e-14)
    _step(opt, [p], [[-0.25, 1.0]])
    expected = [
        _adam_by_hand(1.0, [0.5, -0.25], 0.1, 0.9, 0.999, 1e-8),
        _adam_by_hand(-3.0, [2.0, 1.0], 0.1, 0.9, 0.999, 1e-8),
    ]
    np.testing.assert_allclose(p.data, expected, rtol=1e-13)
    assert opt.state[p]["step"] == 2


def test_adam_l2_weight_decay_and_custom_betas():
    p = _param([2.0])
    opt = Adam([p], lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.3)
    for g in (1.0, -0.5):
        _step(opt, [p], [[g]])
    np.testing.assert_allclose(p.data, [_adam_by_hand(2.0, [1.0, -0.5], 0.05, 0.8, 0.99, 1e-6, wd=0.3)], rtol=1e-13)


def test_adamw_decoupled_decay():
    # Step 1 by hand: p = 2 * (1 - 0.1*0.5) = 1.9, then the Adam step with m_hat = 3, sqrt(v_hat) = 3:
    # p = 1.9 - 0.1 * 3/(3 + 1e-8)
    p = _param([2.0])
    opt = AdamW([p], lr=0.1, weight_decay=0.5)
    _step(opt, [p], [[3.0]])
    np.testing.assert_allclose(p.data, [1.9 - 0.1 * 3 / (3 + 1e-8)], rtol=1e-14)
    _step(opt, [p], [[-1.0]])
    np.testing.assert_allclose(p.data, [_adam_by_hand(2.0, [3.0, -1.0], 0.1, 0.9, 0.999, 1e-8, 0.5, True)], rtol=1e-13)
    assert AdamW([_param([1.0])]).defaults["weight_decay"] == 1e-2  # torch's default


# ---------------------------------------------------------------- groups, lr, skipping


def test_param_groups_defaults_and_skipping_none_grads():
    a, b, c = _param([1.0]), _param([1.0]), _param([1.0])
    opt = SGD([{"params": [a], "weight_decay": 0.5}, {"params": [b, c], "lr": 1.0}], lr=0.1)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[0]["weight_decay"] == 0.5
    assert opt.param_groups[1]["lr"] == 1.0 and opt.param_groups[1]["weight_decay"] == 0.0
    _step(opt, [a, b, c], [[1.0], [1.0], None])
    assert a.data.tolist() == [1.0 - 0.1 * (1.0 + 0.5)]
    assert b.data.tolist() == [0.0]
    assert c.data.tolist() == [1.0] and c not in opt.state  # no grad: untouched, no state


def test_lr_change_between_steps():
    p = _param([1.0])
    opt = SGD([p], lr=0.5)
    _step(opt, [p], [[1.0]])
    opt.param_groups[0]["lr"] = 0.25
    _step(opt, [p], [[1.0]])
    for group in opt.param_groups:  # what a schedule does each iteration
        group["lr"] = 0.125
    _step(opt, [p], [[1.0]])
    assert p.data.tolist() == [1.0 - 0.5 - 0.25 - 0.125]


def test_zero_grad():
    p, q = _param([1.0, 2.0]), _param([3.0])
    opt = SGD([p, q], lr=0.1)
    p.grad = np.ones(2)
    grad = p.grad
    opt.zero_grad(set_to_none=False)
    assert p.grad is grad and grad.tolist() == [0.0, 0.0] and q.grad is None
    opt.zero_grad()
    assert p.grad is None and q.grad is None


def test_accepts_a_generator_and_a_single_tensor():
    ps = [_param([1.0]), _param([2.0])]
    assert len(Adam(p for p in ps).param_groups[0]["params"]) == 2
    assert len(SGD(ps[0], lr=0.1).param_groups[0]["params"]) == 1


# ---------------------------------------------------------------- dtype and in-place updates


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: SGD(ps, lr=np.float64(0.1), momentum=0.9, weight_decay=0.01),
        lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
        lambda ps: Adam(ps, lr=np.float64(1e-2), weight_decay=0.1),
        lambda ps: AdamW(ps, lr=1e-2, betas=(np.float64(0.9), 0.99)),
    ],
    ids=["sgd", "nesterov", "adam", "adamw"],
)
def test_float32_stays_float32_and_updates_in_place(make):
    rng = np.random.default_rng(0)
    p = Tensor(rng.standard_normal((4, 3)).astype(np.float32), requires_grad=True)
    data = p.data
    opt = make([p])
    for _ in range(3):
        p.grad = rng.standard_normal((4, 3)).astype(np.float32)
        opt.step()
    assert p.data is data and p.data.dtype == np.float32
    for value in opt.state[p].values():
        if isinstance(value, np.ndarray):
            assert value.dtype == np.float32


def test_float32_adam_matches_float32_arithmetic_by_hand():
    g = np.float32(0.3)
    p = Tensor(np.array([1.5], dtype=np.float32), requires_grad=True)
    _step(Adam([p], lr=1e-2), [p], [[g]])
    # One step in float32: m = 0.1*g, v = 0.001*g*g, denom = sqrt(v)/sqrt(0.001) + eps, p -= (lr/0.1) * m / denom
    f = np.float32
    m = f(0.0) + (g - f(0.0)) * f(1 - 0.9)
    v = f(0.0) * f(0.999) + g * f(1 - 0.999) * g
    denom = np.sqrt(v) / f((1 - 0.999) ** 0.5) + f(1e-8)
    expected = f(1.5) + (m * f(-(1e-2 / (1 - 0.9)))) / denom
    assert p.data.dtype == np.float32 and p.data[0] == expected


# ---------------------------------------------------------------- state_dict


def _feed(opt, params, steps, rng):
    """`steps` steps with random gradients; the second parameter sometimes has none (and is skipped)."""
    for _ in range(steps):
        for p in params:
            p.grad = rng.standard_normal(p.data.shape).astype(p.data.dtype)
        if rng.random() < 0.3:
            params[1].grad = None
        opt.step()


OPTIMIZERS = {
    "sgd": lambda ps: SGD([{"params": ps[:1]}, {"params": ps[1:], "lr": 0.05}], lr=0.1, momentum=0.9, weight_decay=0.1),
    "adam": lambda ps: Adam([{"params": ps[:1]}, {"params": ps[1:], "weight_decay": 0.1}], lr=1e-2),
    "adamw": lambda ps: AdamW([{"params": ps[:1], "weight_decay": 0.0}, {"params": ps[1:]}], lr=1e-2),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_state_dict_continues_bit_exactly(name):
    make = OPTIMIZERS[name]
    rng = np.random.default_rng(1)
    init = [rng.standard_normal(s).astype(np.float32) for s in [(3, 4), (5,), (2, 2)]]

    uninterrupted = [Tensor(a.copy(), requires_grad=True) for a in init]
    opt = make(uninterrupted)
    _feed(opt, uninterrupted, 10, np.random.default_rng(2))
    opt.param_groups[0]["lr"] *= 0.5  # a changed lr must travel in the state dict too
    _feed(opt, uninterrupted, 10, np.random.default_rng(3))

    first = [Tensor(a.copy(), requires_grad=True) for a in init]
    opt = make(first)
    _feed(opt, first, 10, np.random.default_rng(2))
    opt.param_groups[0]["lr"] *= 0.5
    saved = opt.state_dict()
    del opt
    resumed = [Tensor(p.data.copy(), requires_grad=True) for p in first]
    fresh = make(resumed)
    fresh.load_state_dict(saved)
    _feed(fresh, resumed, 10, np.random.default_rng(3))

    for a, b in zip(uninterrupted, resumed):
        assert a.data.dtype == np.float32 and a.data.tobytes() == b.data.tobytes()


def test_state_dict_is_plain_and_a_copy():
    p, q = _param([1.0, 2.0]), _param([3.0])
    opt = Adam([p, q], lr=0.1)
    _step(opt, [p, q], [[1.0, 1.0], None])
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups"} and list(sd["state"]) == [0]
    assert sd["state"][0]["step"] == 1 and isinstance(sd["state"][0]["exp_avg"], np.ndarray)
    assert sd["param_groups"] == [
        {"lr": 0.1, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "params": [0, 1]}
    ]
    before = sd["state"][0]["exp_avg"].copy()
    _step(opt, [p, q], [[1.0, 1.0], None])
    assert np.array_equal(sd["state"][0]["exp_avg"], before)  # training on did not change the saved state


def test_load_state_dict_restores_hyperparameters():
    p = _param([1.0])
    opt = SGD([p], lr=0.1, momentum=0.9)
    opt.param_groups[0]["lr"] = 0.01
    other = SGD([_param([1.0])], lr=0.5, momentum=0.9)
    other.load_state_dict(opt.state_dict())
    assert other.param_groups[0]["lr"] == 0.01


def test_load_state_dict_mismatches_raise():
    p, q = _param([1.0, 2.0]), _param([3.0])
    opt = Adam([p, q])
    _step(opt, [p, q], [[1.0, 1.0], [1.0]])
    sd = opt.state_dict()
    with pytest.raises(ValueError, match="has 1 parameter groups, this optimizer has 2"):
        Adam([{"params": [_param([1.0, 2.0])]}, {"params": [_param([3.0])]}]).load_state_dict(sd)
    with pytest.raises(ValueError, match="group 0: loaded state dict has 2 parameters, this optimizer has 1"):
        Adam([_param([1.0, 2.0])]).load_state_dict(sd)
    target = Adam([_param([1.0, 2.0, 3.0]), _param([3.0])])
    with pytest.raises(ValueError, match=r"shape \(2,\).*shape \(3,\)"):
        target.load_state_dict(sd)
    assert target.state == {}  # nothing half-loaded
    with pytest.raises(ValueError, match="different optimizer"):
        Adam([_param([1.0, 2.0]), _param([3.0])]).load_state_dict(
            {"state": {0: {"momentum_buffer": np.zeros(2)}}, "param_groups": sd["param_groups"]}
        )


# ---------------------------------------------------------------- construction errors


def test_construction_errors():
    p = _param([1.0])
    with pytest.raises(ValueError, match="empty"):
        SGD([], lr=0.1)
    with pytest.raises(ValueError, match="more than once"):
        SGD([p, p], lr=0.1)
    with pytest.raises(ValueError, match="more than once"):
        Adam([{"params": [p]}, {"params": [_param([2.0]), p]}])
    with pytest.raises(ValueError, match="learning rate"):
        Adam([p], lr=-1.0)
    with pytest.raises(ValueError, match="betas"):
        Adam([p], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="epsilon"):
        AdamW([p], eps=-1.0)
    with pytest.raises(ValueError, match="weight_decay"):
        SGD([p], lr=0.1, weight_decay=-0.1)
    with pytest.raises(ValueError, match="Nesterov"):
        SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(TypeError, match="ordered"):
        SGD({p}, lr=0.1)
    with pytest.raises(TypeError, match="floating-point"):
        SGD([Tensor(np.array([1, 2]))], lr=0.1)


def test_wrong_gradient_shape_names_both_shapes():
    p = _param([1.0, 2.0])
    p.grad = np.ones(3)
    with pytest.raises(ValueError, match=r"\(3,\).*\(2,\)"):
        SGD([p], lr=0.1).step()


# ---------------------------------------------------------------- clipping


def test_clip_grad_norm_scales_and_returns_norm():
    a, b, c = _param([0.0, 0.0]), _param([0.0]), _param([0.0])
    a.grad, b.grad = np.array([3.0, 4.0]), np.array([12.0])  # total norm sqrt(9 + 16 + 144) = 13; c has no grad
    total = clip_grad_norm_([a, b, c], max_norm=1.0)
    assert type(total) is float and total == 13.0
    coef = 1.0 / (13.0 + 1e-6)
    np.testing.assert_allclose(a.grad, [3.0 * coef, 4.0 * coef], rtol=1e-15)
    np.testing.assert_allclose(b.grad, [12.0 * coef], rtol=1e-15)
    assert c.grad is None


def test_clip_grad_norm_below_max_is_a_no_op():
    a = _param([0.0, 0.0])
    a.grad = g = np.array([0.3, 0.4])
    assert clip_grad_norm_([a], max_norm=1.0) == pytest.approx(0.5, rel=1e-15)
    assert a.grad is g and a.grad.tolist() == [0.3, 0.4]
    assert clip_grad_norm_([_param([1.0])], max_norm=1.0) == 0.0  # no grads at all


def test_clip_grad_norm_float32_in_place():
    a = Tensor(np.zeros((10, 10), np.float32), requires_grad=True)
    a.grad = g = np.full((10, 10), 2.0, np.float32)  # norm = sqrt(100 * 4) = 20
    assert clip_grad_norm_(a, 2.0) == pytest.approx(20.0, rel=1e-6)
    assert a.grad is g and g.dtype == np.float32
    np.testing.assert_allclose(g, 2.0 * 2.0 / (20.0 + 1e-6), rtol=1e-6)


def test_clip_grad_value():
    a = _param([0.0, 0.0, 0.0])
    a.grad = np.array([-3.0, 0.5, 2.0])
    clip_grad_value_([a], 1.0)
    assert a.grad.tolist() == [-1.0, 0.5, 1.0]


# ---------------------------------------------------------------- schedule


def test_cosine_with_warmup():
    lr, warm, decay, low = 6e-4, 10, 110, 6e-5
    f = lambda it: cosine_with_warmup(it, lr, warm, decay, low)  # noqa: E731
    assert f(0) == pytest.approx(lr * 1 / 11)  # warmup counts from it + 1: never a zero lr
    assert f(9) == pytest.approx(lr * 10 / 11)
    assert f(10) == pytest.approx(lr)  # cos(0) = 1: the peak
    assert f(60) == pytest.approx(low + 0.5 * (lr - low))  # halfway: cos(pi/2) = 0
    assert f(35) == pytest.approx(low + 0.5 * (1 + math.cos(math.pi * 0.25)) * (lr - low))
    assert f(110) == pytest.approx(low) and f(10_000) == low
    values = [f(it) for it in range(10, 120)]
    assert all(x >= y for x, y in zip(values, values[1:]))
    assert cosine_with_warmup(5, lr, 5, 5, low) == low  # no decay phase: no 0/0
    with pytest.raises(ValueError):
        cosine_with_warmup(0, lr, 10, 5, low)


def test_weight_decay_groups_decay_matrices_only():
    from tinygrad_lite import Parameter
    from tinygrad_lite.optim import AdamW, weight_decay_groups

    w, b, e = Parameter(np.ones((3, 2))), Parameter(np.ones(2)), Parameter(np.ones((5, 3)))
    groups = weight_decay_groups([w, b, e], 0.1)
    assert [[id(p) for p in g["params"]] for g in groups] == [[id(w), id(e)], [id(b)]]
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    for p in (w, b, e):
        p.grad = np.zeros_like(p.data)
    AdamW(groups, lr=1.0).step()  # a zero gradient: only the decay moves a parameter
    assert w.data[0, 0] == pytest.approx(0.9) and e.data[0, 0] == pytest.approx(0.9) and b.data[0] == 1.0
