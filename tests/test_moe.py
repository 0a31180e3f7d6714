"""SparseMoE: routing, grouped dispatch vs a dense reference, capacity, auxiliary losses, gradients, Mixtral."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest
from test_layers_support import gradcheck_module

from layers import SparseMoE
from layers.moe_function import dispatch_plan
from tinygrad_lite import Tensor


def make_moe(rng, dim=6, hidden=5, E=4, k=2, dtype=np.float64, **kw):
    moe = SparseMoE(dim, hidden, E, top_k=k, rng=rng, dtype=dtype, **kw)
    moe.gate.weight.data[:] = rng.standard_normal(moe.gate.weight.shape)  # sharper routing than the default init
    return moe


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def dense_reference(moe, x, keep=None):
    """Every expert on every token, combined with a dense (N, E) weight matrix that is zero off the top-k: the
    obvious, slow definition, built from Tensor ops so autograd gives its gradients. `keep` (N, E) zeroes dropped
    assignments."""
    C, k = moe.dim, moe.top_k
    x2 = x.reshape(-1, C)
    logits = moe.gate(x2)
    chosen = np.zeros(logits.shape, dtype=bool)
    np.put_along_axis(chosen, np.argsort(-logits.data, axis=-1, kind="stable")[:, :k], True, axis=-1)
    if moe.router == "softmax_topk":
        p = logits.softmax(-1) * Tensor(chosen.astype(x.dtype))
        w = p / p.sum(-1, keepdims=True)
    else:
        w = logits.masked_fill(~chosen, -np.inf).softmax(-1)
    if keep is not None:
        w = w * Tensor(keep.astype(x.dtype))
    out = None
    for e, expert in enumerate(moe.experts):
        term = expert(x2) * w[:, e : e + 1]  # (N, C): expert e on every token
        out = term if out is None else out + term
    return out.reshape(x.shape)


@pytest.mark.parametrize("router", ["softmax_topk", "topk_softmax"])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_grouped_dispatch_equals_dense_reference(rng, router, k):
    moe = make_moe(rng, k=k, router=router)
    x = Tensor(rng.standard_normal((2, 7, 6)), requires_grad=True)
    g = rng.standard_normal((2, 7, 6))

    def grads(fn):
        moe.zero_grad()
        x.grad = None
        out = fn()
        out.backward(g)
        return [out.data, x.grad] + [p.grad if p.grad is not None else np.zeros(p.shape) for p in moe.parameters()]

    for a, b in zip(grads(lambda: moe(x)), grads(lambda: dense_reference(moe, x))):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_two_dimensional_input_and_float32(rng):
    moe = make_moe(rng, dtype=np.float32)
    x = rng.standard_normal((9, 6)).astype(np.float32)
    out = moe(Tensor(x))
    assert out.shape == (9, 6) and out.dtype == np.float32
    np.testing.assert_allclose(out.data, moe(Tensor(x[None])).data[0])
    np.testing.assert_allclose(out.data, dense_reference(moe, Tensor(x)).data, rtol=1e-5, atol=1e-6)


def test_the_two_routers_give_the_same_weights(rng):
    # p_e / sum_topk p = exp(z_e) / sum_topk exp(z): renormalising the top-k probabilities is the softmax of the
    # top-k logits. The two names are two readings of one formula.
    a = make_moe(rng, router="softmax_topk")
    b = make_moe(rng, router="topk_softmax")
    z = Tensor(rng.standard_normal((10, 4)))
    (ia, wa, _), (ib, wb, _) = a.route(z), b.route(z)
    np.testing.assert_array_equal(ia, ib)
    np.testing.assert_allclose(wa.data, wb.data, rtol=1e-12)
    np.testing.assert_allclose(wa.data.sum(-1), 1.0)
    np.testing.assert_allclose(wb.data, softmax(np.take_along_axis(z.data, ib, -1)))


def test_routing_is_top_k_by_probability_with_stable_ties(rng):
    moe = make_moe(rng, E=5, k=2)
    z = np.array([[0.1, 3.0, 0.5, 2.0, -1.0], [1.0, 1.0, 1.0, 0.0, 1.0]])
    idx, w, probs = moe.route(Tensor(z))
    np.testing.assert_array_equal(idx, [[1, 3], [0, 1]])  # ties go to the lower index
    np.testing.assert_allclose(probs.data, softmax(z))
    np.testing.assert_allclose(w.data[1], [0.5, 0.5])


def test_parameters_named_as_mixtral(rng):
    moe = SparseMoE(8, 12, 3, rng=rng)
    names = {n: p.shape for n, p in moe.named_parameters()}
    assert names == {"gate.weight": (8, 3), **{f"experts.{e}.{w}.weight": (8, 12) if w != "w2" else (12, 8)
                                               for e in range(3) for w in ("w1", "w3", "w2")}}
    assert moe.gate.bias is None


def test_dispatch_plan_groups_by_expert():
    idx = np.array([[2, 0], [0, 1], [2, 1], [0, 2]])
    plan, counts, dropped = dispatch_plan(idx, 4)
    np.testing.assert_array_equal(counts, [3, 2, 3, 0])
    assert [e for e, _, _ in plan] == [0, 1, 2]  # expert 3 has no work and no entry
    for e, tokens, slots in plan:
        np.testing.assert_array_equal(tokens, np.flatnonzero((idx == e).any(1)))
        np.testing.assert_array_equal(idx.reshape(-1)[slots], e)
    plan, counts, dropped = dispatch_plan(idx, 4, capacity=2)
    np.testing.assert_array_equal(dropped, [1, 0, 1, 0])
    np.testing.assert_array_equal(plan[0][1], [0, 1])  # the earliest tokens keep their place


def test_capacity_drops_and_counts(rng):
    moe = make_moe(rng, E=4, k=2, capacity_factor=0.75)
    x = Tensor(rng.standard_normal((3, 8, 6)), requires_grad=True)
    N = 24
    cap = moe.capacity(N)
    assert cap == math.ceil(0.75 * N * 2 / 4) == 9
    out = moe(x)
    # Expected: walk the tokens in order, each expert accepts its first `cap` assignments.
    idx = moe.route(moe.gate(x.reshape(N, 6)))[0]
    load, keep = np.zeros(4, int), np.zeros((N, 4), dtype=bool)
    for t in range(N):
        for e in idx[t]:
            keep[t, e] = load[e] < cap
            load[e] += 1
    np.testing.assert_array_equal(moe.expert_counts, load)
    np.testing.assert_array_equal(moe.dropped_counts, np.maximum(load - cap, 0))
    assert moe.n_dropped == (load - cap).clip(0).sum() > 0
    np.testing.assert_allclose(out.data, dense_reference(moe, x, keep).data, rtol=1e-10, atol=1e-12)
    dropped_all = ~keep.any(1)
    assert not out.data.reshape(N, 6)[dropped_all].any()
    out.sum().backward()  # gradients flow with drops too
    assert np.isfinite(x.grad).all()
    moe.capacity_factor = 100.0
    moe(x)
    assert moe.n_dropped == 0


def test_aux_and_z_losses(rng):
    moe = make_moe(rng, E=4, k=2)
    x = Tensor(rng.standard_normal((2, 5, 6)))
    moe(x)
    z = x.data.reshape(-1, 6) @ moe.gate.weight.data
    p = softmax(z)
    top = np.argsort(-p, axis=-1)[:, :2]
    f = np.array([(top == e).any(1).mean() for e in range(4)])
    assert moe.aux_loss.item() == pytest.approx(4 * (f * p.mean(0)).sum(), rel=1e-12)
    lse = np.log(np.exp(z).sum(-1))
    assert moe.z_loss.item() == pytest.approx((lse**2).mean(), rel=1e-12)
    assert moe.expert_counts.sum() == 10 * 2
    np.testing.assert_allclose(moe.router_logits.data, z)
    # uniform routing probabilities and load give the minimum, 1 * k
    moe.gate.weight.data[:] = 0
    moe(x)
    assert moe.aux_loss.item() == pytest.approx(2.0)


def test_router_learns_through_the_auxiliary_losses(rng):
    moe = make_moe(rng, k=1)  # with k = 1 the renormalised weight is 1: only the losses reach the gate
    x = Tensor(rng.standard_normal((2, 5, 6)))
    moe(x).sum().backward()
    np.testing.assert_allclose(moe.gate.weight.grad, 0.0, atol=1e-12)  # zero up to rounding
    moe.zero_grad()
    moe(x)
    (moe.aux_loss + moe.z_loss).backward()
    assert np.abs(moe.gate.weight.grad).max() > 1e-3


def test_gradcheck_whole_layer_with_losses(rng):
    moe = make_moe(rng, dim=4, hidden=3, E=4, k=2)
    x = rng.standard_normal((2, 3, 4))
    # No near-ties in the top-k: a finite-difference step must not change which experts are chosen.
    p = np.sort(softmax(x.reshape(-1, 4) @ moe.gate.weight.data), axis=-1)
    assert (p[:, -2] - p[:, -3]).min() > 1e-3

    def call(m, x):
        out = m(x)
        return Tensor.cat([out.reshape(-1), m.aux_loss.reshape(1), m.z_loss.reshape(1)])

    assert gradcheck_module(moe, Tensor(x, requires_grad=True), call=call)


def test_jitter_only_in_training(rng):
    moe = make_moe(rng, jitter=0.2)
    x = Tensor(rng.standard_normal((4, 6)))
    moe.eval()
    a, b = moe(x).data, moe(x).data
    np.testing.assert_array_equal(a, b)
    moe.train()
    assert not np.array_equal(moe(x).data, a)  # the noise moves the routing weights


def test_errors(rng):
    with pytest.raises(ValueError, match="router"):
        SparseMoE(4, 4, 4, router="noisy")
    with pytest.raises(ValueError, match="top_k"):
        SparseMoE(4, 4, 4, top_k=5)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        SparseMoE(4, 4, 4)(Tensor(np.zeros((2, 3), np.float32)))


MIXTRAL_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import torch
    from transformers import MixtralConfig
    from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock, load_balancing_loss_func

    d = sys.argv[1]
    a = {n: np.load(f"{d}/{n}.npy") for n in ("x", "g", "gate", "w1", "w3", "w2")}
    E, C, H = a["w1"].shape
    k = int(sys.argv[2])
    cfg = MixtralConfig(hidden_size=C, intermediate_size=H, num_local_experts=E, num_experts_per_tok=k,
                        router_jitter_noise=0.0)
    block = MixtralSparseMoeBlock(cfg).eval()
    with torch.no_grad():  # our (in, out) layout -> nn.Linear-style (out, in)
        block.gate.weight.copy_(torch.tensor(a["gate"].T))
        gate_up = np.concatenate([a["w1"].transpose(0, 2, 1), a["w3"].transpose(0, 2, 1)], axis=1)  # (E, 2H, C)
        block.experts.gate_up_proj.copy_(torch.tensor(gate_up))
        block.experts.down_proj.copy_(torch.tensor(a["w2"].transpose(0, 2, 1)))  # (E, C, H)
    x = torch.tensor(a["x"], requires_grad=True)
    out = block(x)
    out.backward(torch.tensor(a["g"]))
    logits = torch.tensor(a["x"]).reshape(-1, C) @ torch.tensor(a["gate"])
    aux = load_balancing_loss_func((logits,), E, k)
    np.save(f"{d}/out.npy", out.detach().numpy())
    np.save(f"{d}/dx.npy", x.grad.numpy())
    np.save(f"{d}/dgate.npy", block.gate.weight.grad.numpy().T)
    gu = block.experts.gate_up_proj.grad.numpy()
    np.save(f"{d}/dw1.npy", gu[:, :H].transpose(0, 2, 1))
    np.save(f"{d}/dw3.npy", gu[:, H:].transpose(0, 2, 1))
    np.save(f"{d}/dw2.npy", block.experts.down_proj.grad.numpy().transpose(0, 2, 1))
    np.save(f"{d}/aux.npy", aux.detach().numpy())
""")


@pytest.mark.ref
def test_matches_transformers_mixtral_block(rng, tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    B, T, C, H, E, k = 2, 9, 16, 24, 8, 2
    moe = make_moe(rng, dim=C, hidden=H, E=E, k=k, dtype=np.float32)
    x = rng.standard_normal((B, T, C)).astype(np.float32)
    g = rng.standard_normal((B, T, C)).astype(np.float32)
    arrays = {"x": x, "g": g, "gate": moe.gate.weight.data,
              "w1": np.stack([ex.w1.weight.data for ex in moe.experts]),
              "w3": np.stack([ex.w3.weight.data for ex in moe.experts]),
              "w2": np.stack([ex.w2.weight.data for ex in moe.experts])}
    for name, arr in arrays.items():
        np.save(tmp_path / f"{name}.npy", arr)
    # transformers imports Hugging Face `tokenizers`, which this repository's `tokenizers` package would shadow:
    # run it in a separate process, outside the repository and without it on the path.
    env = {key: val for key, val in os.environ.items() if key != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", MIXTRAL_SCRIPT, str(tmp_path), str(k)], cwd=tempfile.gettempdir(),
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ref = {n: np.load(tmp_path / f"{n}.npy") for n in ("out", "dx", "dgate", "dw1", "dw3", "dw2", "aux")}

    xt = Tensor(x, requires_grad=True)
    out = moe(xt)
    out.backward(g)
    np.testing.assert_allclose(out.data, ref["out"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(xt.grad, ref["dx"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(moe.gate.weight.grad, ref["dgate"], rtol=1e-4, atol=1e-5)
    for name in ("w1", "w3", "w2"):
        ours = np.stack([getattr(ex, name).weight.grad for ex in moe.experts])
        np.testing.assert_allclose(ours, ref[f"d{name}"], rtol=1e-4, atol=1e-5)
    assert moe.aux_loss.item() == pytest.approx(float(ref["aux"]), rel=1e-5)
    assert moe.expert_counts.sum() == B * T * k
