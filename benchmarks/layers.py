"""Attention, GPT-2 MLP and Mixture-of-Experts speed: forward + backward, side by side with torch eager.

    python benchmarks/layers.py [--repeat 30] [--quick] [--pause 0.02]

Attention: our fused scaled_dot_product_attention (causal) vs torch.nn.functional.scaled_dot_product_attention on
the same float32 inputs, B 12, H 4, D 32, T 64 and 256 (plus a grouped-query row, 2 K/V heads), and the attention
of benchmarks/train_step.py's medium config (B 16, H 6, T 128, D 64).
MLP: GPT-2's c_proj(gelu_tanh(c_fc(x))) at the small (B 6, T 64, C 128) and medium (B 16, T 128, C 384) configs, vs
torch's F.linear -> F.gelu(approximate="tanh") -> F.linear.
SparseMoE: B 12, T 64, dim 128, hidden 256, 8 SwiGLU experts, top-2, vs an equivalent torch eager layer written
below with the same grouped dispatch (argsort, gather, one matmul per expert, index_add_).

Both sides run on the same number of threads (torch.set_num_threads = NumPy's BLAS threads) and alternate (ours,
ours on the reference path, torch, ...) after a warm-up, with a short idle pause before each call; the medians are
reported with their ratios to torch (below 1 means faster than torch). "ours" is the default fused path, "reference"
the same call under tinygrad_lite.set_fused(False). The machines are shared and noisy: compare ratios, not absolute
times.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import _common  # noqa: E402  (benchmarks/ is on sys.path when this script runs)

from layers import SparseMoE, scaled_dot_product_attention  # noqa: E402
from layers.mlp_function import mlp  # noqa: E402
from tinygrad_lite import Tensor, set_fused  # noqa: E402


def blas_threads() -> int:
    """Threads NumPy's BLAS uses: OpenBLAS reads OPENBLAS_NUM_THREADS / OMP_NUM_THREADS, else uses every core."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return os.cpu_count() or 1


def alternate(fns: dict, repeat: int, warmup: int = 3, pause: float = 0.02) -> dict:
    """Median milliseconds per call of each function, calls interleaved so noise hits all alike.

    After a call, OpenBLAS's and torch's worker threads keep spinning for a moment, waiting for more work; on a
    2-core machine that steals a core from whatever runs next. A short pause before each timed call lets them go
    idle, so neither side is timed while the other's threads still spin.
    """
    times = _common.alternate(fns, repeat, warmup=warmup, pause=pause)  # the shared A B A B timer
    return {name: statistics.median(ts) for name, ts in times.items()}


def attention_case(torch, B, H, Hkv, T, D, rng):
    q, k, v, g = (rng.standard_normal(s).astype(np.float32)
                  for s in ((B, H, T, D), (B, Hkv, T, D), (B, Hkv, T, D), (B, H, T, D)))
    qs, ks, vs = (Tensor(a, requires_grad=True) for a in (q, k, v))

    def ours():
        for t in (qs, ks, vs):
            t.grad = None
        scaled_dot_product_attention(qs, ks, vs, is_causal=True).backward(g)

    fns = {"ours": ours}
    if torch is not None:
        qt, kt, vt = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
        gt = torch.tensor(g)

        def ref():
            for t in (qt, kt, vt):
                t.grad = None
            out = torch.nn.functional.scaled_dot_product_attention(qt, kt, vt, is_causal=True, enable_gqa=Hkv != H)
            out.backward(gt)

        fns["torch"] = ref
    return fns


def with_reference(fns: dict) -> dict:
    """fns plus "reference": fns["ours"] under set_fused(False), timed beside it."""
    ours = fns["ours"]

    def reference():
        with set_fused(False):
            ours()

    return {"ours": ours, "reference": reference, **{k: v for k, v in fns.items() if k != "ours"}}


def mlp_case(torch, B, T, C, rng):
    arrays = [rng.standard_normal(s).astype(np.float32) for s in ((B, T, C), (C, 4 * C), (4 * C, C), (4 * C,), (C,))]
    g = rng.standard_normal((B, T, C)).astype(np.float32)
    ts = [Tensor(a, requires_grad=True) for a in arrays]

    def ours():
        for t in ts:
            t.grad = None
        mlp(*ts, approximate="tanh").backward(g)

    fns = {"ours": ours}
    if torch is not None:
        F = torch.nn.functional
        x, w1, w2, b1, b2 = (torch.tensor(a, requires_grad=True) for a in arrays)
        w1t, w2t = w1.detach().T.contiguous().requires_grad_(), w2.detach().T.contiguous().requires_grad_()
        gt = torch.tensor(g)

        def ref():
            for t in (x, w1t, w2t, b1, b2):
                t.grad = None
            F.linear(F.gelu(F.linear(x, w1t, b1), approximate="tanh"), w2t, b2).backward(gt)

        fns["torch"] = ref
    return fns


# --------------------------------------------------------------------------------------------- MoE


def torch_moe(torch, moe: SparseMoE):
    """The same layer in torch eager: softmax -> top-k -> renormalise -> grouped dispatch with index_add_, plus the
    load-balancing and z losses that SparseMoE computes on every forward."""
    F = torch.nn.functional
    gate = torch.tensor(moe.gate.weight.data, requires_grad=True)
    w1 = [torch.tensor(ex.w1.weight.data, requires_grad=True) for ex in moe.experts]
    w3 = [torch.tensor(ex.w3.weight.data, requires_grad=True) for ex in moe.experts]
    w2 = [torch.tensor(ex.w2.weight.data, requires_grad=True) for ex in moe.experts]
    params = [gate, *w1, *w3, *w2]
    E, k = moe.n_experts, moe.top_k

    def forward(x):
        x2 = x.reshape(-1, x.shape[-1])
        logits = x2 @ gate
        probs = F.softmax(logits, dim=-1)
        top, idx = torch.topk(probs, k, dim=-1)
        weights = (top / top.sum(-1, keepdim=True)).reshape(-1)  # (N*k,)
        flat = idx.reshape(-1)
        order = torch.argsort(flat, stable=True)
        counts = torch.bincount(flat, minlength=E).tolist()
        out = torch.zeros_like(x2)
        start = 0
        for e, n in enumerate(counts):
            if n == 0:
                continue
            slots = order[start : start + n]
            start += n
            tokens = slots // k
            xe = x2[tokens]
            y = (F.silu(xe @ w1[e]) * (xe @ w3[e])) @ w2[e]
            out.index_add_(0, tokens, y * weights[slots, None])
        f = torch.tensor(counts, dtype=probs.dtype) / x2.shape[0]
        aux = (probs.mean(0) * f).sum() * E
        z = (torch.logsumexp(logits, dim=-1) ** 2).mean()
        return out.reshape(x.shape), aux, z

    return forward, params


def moe_case(torch, B, T, C, Hd, E, k, rng):
    moe = SparseMoE(C, Hd, E, top_k=k, rng=rng)
    x = rng.standard_normal((B, T, C)).astype(np.float32)
    g = rng.standard_normal((B, T, C)).astype(np.float32)
    xs = Tensor(x, requires_grad=True)

    def ours():
        moe.zero_grad()
        xs.grad = None
        out = moe(xs)
        # One backward through the output (gradient g) and the two losses: out . g + aux_loss + z_loss.
        ((out * Tensor(g)).sum() + moe.aux_loss + moe.z_loss).backward()

    fns = {"ours": ours}
    if torch is not None:
        forward, params = torch_moe(torch, moe)
        xt, gt = torch.tensor(x, requires_grad=True), torch.tensor(g)

        def ref():
            for p in params + [xt]:
                p.grad = None
            out, aux, z = forward(xt)
            ((out * gt).sum() + aux + z).backward()

        # Same routing, same numbers: check before timing.
        with torch.no_grad():
            out, aux, z = forward(xt)
            np.testing.assert_allclose(out.numpy(), moe(Tensor(x)).data, rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose([aux.item(), z.item()], [moe.aux_loss.item(), moe.z_loss.item()], rtol=1e-5)
        fns["torch"] = ref
    return fns


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=30, help="timed calls per implementation (default 30)")
    parser.add_argument("--quick", action="store_true", help="5 repeats, for a smoke test")
    parser.add_argument("--pause", type=float, default=0.02, help="seconds of idle before each timed call")
    args = parser.parse_args(argv)
    repeat = 5 if args.quick else args.repeat
    try:
        import torch
    except ImportError:
        torch = None
    threads = blas_threads()
    if torch is not None:
        torch.set_num_threads(threads)
    print(f"numpy {np.__version__}, torch {torch.__version__ if torch else 'not installed'}, {threads} threads, "
          f"median of {repeat}, forward + backward, float32")
    rng = np.random.default_rng(0)
    cases = [
        ("attention B12 H4 T64 D32 causal", lambda: attention_case(torch, 12, 4, 4, 64, 32, rng)),
        ("attention B12 H4 T256 D32 causal", lambda: attention_case(torch, 12, 4, 4, 256, 32, rng)),
        ("attention B16 H6 T128 D64 causal", lambda: attention_case(torch, 16, 6, 6, 128, 64, rng)),
        ("attention GQA B12 H4/2 T256 D32", lambda: attention_case(torch, 12, 4, 2, 256, 32, rng)),
        ("MLP B6 T64 C128", lambda: mlp_case(torch, 6, 64, 128, rng)),
        ("MLP B16 T128 C384", lambda: mlp_case(torch, 16, 128, 384, rng)),
        ("SparseMoE B12 T64 C128 H256 E8 top2", lambda: moe_case(torch, 12, 64, 128, 256, 8, 2, rng)),
    ]
    print(f"{'case':40s} {'ours ms':>9s} {'ref. ms':>9s} {'torch ms':>9s} {'ours/torch':>10s} {'ref./torch':>10s}")
    for name, make in cases:
        ms = alternate(with_reference(make()), repeat, pause=args.pause)
        t = ms.get("torch")
        ratios = (f"{ms['ours'] / t:10.2f} {ms['reference'] / t:10.2f}" if t else f"{'-':>10s} {'-':>10s}")
        print(f"{name:40s} {ms['ours']:9.2f} {ms['reference']:9.2f} {t if t else float('nan'):9.2f} {ratios}")


if __name__ == "__main__":
    main()
