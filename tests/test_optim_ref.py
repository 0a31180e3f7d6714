"""Optimizers and clipping against torch.optim and torch.nn.utils (marker `ref`): 20 float64 steps with identical
gradients, a learning-rate change halfway."""

import numpy as np
import pytest

from tinygrad_lite.optim import SGD, Adam, AdamW, clip_grad_norm_
from tinygrad_lite.tensor import Tensor


def _torch_compare(make_ours, make_theirs, steps=20, seed=0):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s) for s in [(3, 4), (5,), ()]]
    ours = [Tensor(a.copy(), requires_grad=True) for a in init]
    theirs = [torch.tensor(a.copy(), dtype=torch.float64, requires_grad=True) for a in init]
    opt, topt = make_ours(ours), make_theirs(torch, theirs)
    c = [rng.uniform(0.5, 2.0, a.shape) for a in init]
    for step in range(steps):
        if step == 10:  # a schedule changes lr mid-run
            for group in opt.param_groups + topt.param_groups:
                group["lr"] *= 0.5
        for i, (p, tp) in enumerate(zip(ours, theirs)):
            # gradient of sum(c * p**2) at our point plus identical noise; both sides get the same array
            g = 2 * c[i] * p.data + rng.standard_normal(p.data.shape) * 0.1
            p.grad, tp.grad = g.copy(), torch.tensor(g.copy())
        opt.step()
        topt.step()
    for p, tp in zip(ours, theirs):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=0, atol=1e-10)


@pytest.mark.ref
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(lr=0.05, momentum=0.9, weight_decay=0.1),
        dict(lr=0.05, momentum=0.9, nesterov=True),
        dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01),
        dict(lr=0.05),
    ],
    ids=["momentum_wd", "nesterov", "dampening", "plain"],
)
def test_ref_sgd(kwargs):
    _torch_compare(lambda ps: SGD(ps, **kwargs), lambda torch, ps: torch.optim.SGD(ps, **kwargs))


@pytest.mark.ref
def test_ref_adam_with_weight_decay():
    kw = dict(lr=0.05, betas=(0.8, 0.99), eps=1e-7, weight_decay=0.1)
    _torch_compare(lambda ps: Adam(ps, **kw), lambda torch, ps: torch.optim.Adam(ps, **kw))
    _torch_compare(lambda ps: Adam(ps), lambda torch, ps: torch.optim.Adam(ps), seed=1)  # defaults


@pytest.mark.ref
def test_ref_adamw():
    kw = dict(lr=0.05, weight_decay=0.1)
    _torch_compare(lambda ps: AdamW(ps, **kw), lambda torch, ps: torch.optim.AdamW(ps, **kw))
    _torch_compare(lambda ps: AdamW(ps), lambda torch, ps: torch.optim.AdamW(ps), seed=1)  # defaults


@pytest.mark.ref
def test_ref_param_groups_adamw():
    def ours(ps):
        return AdamW([{"params": ps[:1]}, {"params": ps[1:], "weight_decay": 0.0, "lr": 0.01}], lr=0.05)

    def theirs(torch, ps):
        return torch.optim.AdamW([{"params": ps[:1]}, {"params": ps[1:], "weight_decay": 0.0, "lr": 0.01}], lr=0.05)

    _torch_compare(ours, theirs)


@pytest.mark.ref
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_ref_clip_grad_norm(max_norm):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(s) for s in [(3, 4), (7,), ()]]
    ours = [Tensor(np.zeros(g.shape), requires_grad=True) for g in grads]
    theirs = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for p, tp, g in zip(ours, theirs, grads):
        p.grad, tp.grad = g.copy(), torch.tensor(g.copy())
    total = clip_grad_norm_(ours, max_norm)
    ttotal = torch.nn.utils.clip_grad_norm_(theirs, max_norm)
    assert total == pytest.approx(float(ttotal), rel=1e-12)
    for p, tp in zip(ours, theirs):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-12, atol=0)
