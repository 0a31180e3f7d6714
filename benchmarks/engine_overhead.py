"""Engine overhead: microseconds per small op and per MLP training step, side by side with torch eager.

    python benchmarks/engine_overhead.py [--repeat 2000]

Small ops (8x8 float32) measure the per-op cost of the autograd machinery (Function objects, graph recording,
backward traversal), not arithmetic. The MLP step (batch 64, 2 -> 64 -> 64 -> 2, cross-entropy, backward) is a
realistic mix. Both frameworks alternate (ours, torch, ours, torch, ...) after a warm-up, and the median of each is
reported, so machine noise hits both equally. Target: under 20 us per small op (forward + backward).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tinygrad_lite.functional as F  # noqa: E402
from tinygrad_lite import Tensor  # noqa: E402


def timed(fn, repeat: int) -> float:
    """Median microseconds per call over `repeat` calls, timed in blocks of 10."""
    blocks = []
    for _ in range(max(1, repeat // 10)):
        t0 = time.perf_counter()
        for _ in range(10):
            fn()
        blocks.append((time.perf_counter() - t0) / 10 * 1e6)
    return statistics.median(blocks)


CHAIN = 16  # links per graph: per-op cost = (chain forward + backward) / number of ops, the final sum included


def op_chains(a, b):
    """The same op applied CHAIN times to an 8x8 input, then sum and backward. Works for both frameworks."""

    def chain(step, ops_per_link=1):
        def run():
            y = a
            for _ in range(CHAIN):
                y = step(y)
            y.sum().backward()

        run.ops = CHAIN * ops_per_link + 1
        return run

    return {
        "add": chain(lambda y: y + b),
        "mul": chain(lambda y: y * b),
        "matmul": chain(lambda y: y @ b),
        "tanh": chain(lambda y: y.tanh()),
        "softmax": chain(lambda y: y.softmax(-1)),
        "sum(axis)+broadcast": chain(lambda y: y.sum(-1, True) + b, 2),  # positional keepdims: same call in both
    }


def mlp_steps(torch, rng):
    from tinygrad_lite.optim import AdamW

    x = rng.standard_normal((64, 2)).astype(np.float32)
    y = rng.integers(0, 2, 64)
    ws = [rng.standard_normal(s).astype(np.float32) * 0.3 for s in [(2, 64), (64,), (64, 64), (64,), (64, 2), (2,)]]
    params = [Tensor(w.copy(), requires_grad=True) for w in ws]
    opt = AdamW(params, lr=1e-3)
    xt = Tensor(x)

    def ours():
        h = F.linear(xt, params[0], params[1]).relu()
        h = F.linear(h, params[2], params[3]).relu()
        loss = F.cross_entropy(F.linear(h, params[4], params[5]), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    steps = {"ours": ours}
    if torch is not None:
        tp = [torch.tensor(w.copy(), requires_grad=True) for w in ws]
        topt = torch.optim.AdamW(tp, lr=1e-3)
        tx, ty = torch.tensor(x), torch.tensor(y)

        def theirs():
            h = torch.relu(tx @ tp[0] + tp[1])
            h = torch.relu(h @ tp[2] + tp[3])
            loss = torch.nn.functional.cross_entropy(h @ tp[4] + tp[5], ty)
            topt.zero_grad()
            loss.backward()
            topt.step()

        steps["torch"] = theirs
    return steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=600)
    args = parser.parse_args()
    try:
        import torch

        torch.set_num_threads(1)  # 8x8 ops: threads only add overhead; same for both sides
    except ImportError:
        torch = None
    rng = np.random.default_rng(0)
    a_np, b_np = rng.standard_normal((8, 8)).astype(np.float32), rng.standard_normal((8, 8)).astype(np.float32)
    a_np = a_np * 0.1  # keep chained products small
    ours = op_chains(Tensor(a_np, requires_grad=True), Tensor(b_np, requires_grad=True))
    theirs = {}
    if torch is not None:
        theirs = op_chains(torch.tensor(a_np, requires_grad=True), torch.tensor(b_np, requires_grad=True))

    print(f"numpy {np.__version__}" + (f", torch {torch.__version__}" if torch else ", torch not installed"))
    print(f"{'us per op, 8x8 f32 fwd+bwd':24s} {'ours us':>9s} {'torch us':>9s} {'ratio':>7s}")
    for name in ours:
        t_ours, t_torch = [], []
        for _ in range(3):  # alternate A B A B so drift affects both
            t_ours.append(timed(ours[name], args.repeat // 3))
            if theirs:
                t_torch.append(timed(theirs[name], args.repeat // 3))
        o = statistics.median(t_ours) / ours[name].ops
        if theirs:
            t = statistics.median(t_torch) / ours[name].ops
            print(f"{name:24s} {o:9.1f} {t:9.1f} {o / t:7.2f}")
        else:
            print(f"{name:24s} {o:9.1f} {'-':>9s} {'-':>7s}")

    steps = mlp_steps(torch, rng)
    res = {k: [] for k in steps}
    for _ in range(3):
        for k, fn in steps.items():
            res[k].append(timed(fn, args.repeat // 6))
    o = statistics.median(res["ours"])
    line = f"{'MLP train step (b64)':24s} {o:9.1f}"
    if "torch" in res:
        t = statistics.median(res["torch"])
        line += f" {t:9.1f} {o / t:7.2f}"
    print(line)


if __name__ == "__main__":
    main()
