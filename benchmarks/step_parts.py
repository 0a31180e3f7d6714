"""Where a training step's time goes: its parts, and each layer op against torch eager on one thread.

    python benchmarks/step_parts.py [--config small|medium] [--steps 60] [--repeat 200] [--processes 2]

1. The parts of our step (benchmarks/train_step.py's step, same model, optimizer and batches), median and minimum
   milliseconds over the timed steps, in one process: forward (with the loss), backward, clip_grad_norm_, AdamW,
   zero_grad. (The parts of a step on MPI ranks, communication included: benchmarks/distributed.py.)
2. One share of the batch (batch_size / processes rows, what one of that many ranks computes), forward + backward of
   each op of a block on one thread,
   ours against torch eager, alternating call by call: LayerNorm, c_attn (Linear C -> 3C), causal self-attention
   from the packed qkv, the MLP (c_fc, tanh-GELU, c_proj), and the lm_head with the cross-entropy.

The minimum is shown beside the median because this machine's noise is large: a fixed pure-Python loop measured
1.7 ms at best and 3.4 ms at the median in one run. Compare ratios taken in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import _common  # before NumPy: applies --threads to the environment
import numpy as np
import train_step
from train_step import CONFIGS, GRAD_CLIP


def summary(ms: list) -> str:
    return f"{statistics.median(ms):8.2f} {min(ms):8.2f}"


def step_parts(cfg: dict, data: list) -> None:
    from tinygrad_lite.optim import clip_grad_norm_

    model, optimizer = train_step.build_model(cfg)
    params = model.parameters()
    parts: dict = {}
    for i, (x, y) in enumerate(data):
        t0 = time.perf_counter()
        _, loss = model(x, targets=y)
        t1 = time.perf_counter()
        loss.backward()
        loss.item()
        t2 = time.perf_counter()
        timed = {"forward (with the loss)": t1 - t0, "backward": t2 - t1}
        clip_grad_norm_(params, GRAD_CLIP)
        t3 = time.perf_counter()
        optimizer.step()
        t4 = time.perf_counter()
        optimizer.zero_grad()
        t5 = time.perf_counter()
        timed.update({"clip_grad_norm_": t3 - t2, "AdamW": t4 - t3, "zero_grad": t5 - t4, "whole step": t5 - t0})
        if i >= 5:  # warm-up
            for k, v in timed.items():
                parts.setdefault(k, []).append(1e3 * v)
    print(f"\nour step, one process, {len(parts['AdamW'])} steps: median and minimum ms")
    for k, v in parts.items():
        print(f"  {k:28s} {summary(v)}")


def op_pairs(torch, cfg: dict, rows: int) -> dict:
    """{op name: (ours, torch)}: forward + backward of each op of a block on a share of `rows` sequences."""
    import tinygrad_lite.functional as F
    from layers.attention_function import packed_self_attention
    from layers.mlp_function import mlp
    from tinygrad_lite import Tensor

    B, T, C, H, V = rows, cfg["block_size"], cfg["n_embd"], cfg["n_head"], cfg["vocab_size"]
    rng = np.random.default_rng(0)

    def arr(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    x, g, g3 = arr(B, T, C), arr(B, T, C), arr(B, T, 3 * C)
    w_ln, b_ln = np.ones(C, np.float32), np.zeros(C, np.float32)
    w_qkv, b_qkv, qkv = arr(C, 3 * C, scale=0.02), np.zeros(3 * C, np.float32), arr(B, T, 3 * C)
    w1, b1, w2, b2 = arr(C, 4 * C, scale=0.02), np.zeros(4 * C, np.float32), arr(4 * C, C, scale=0.02), np.zeros(
        C, np.float32)
    wte, targets = arr(V, C, scale=0.02), rng.integers(0, V, (B, T))

    def ours(fn, *arrays, grad=None):
        def run():
            ts = [Tensor(a, requires_grad=True) for a in arrays]
            out = fn(*ts)
            out.backward(grad) if grad is not None else out.backward()
        return run

    def ref(fn, *arrays, grad=None):
        ts = [torch.tensor(a, requires_grad=True) for a in arrays]
        tg = None if grad is None else torch.tensor(grad)

        def run():
            for t in ts:
                t.grad = None
            out = fn(*ts)
            out.backward(tg) if tg is not None else out.backward()
        return run

    tF = torch.nn.functional

    def torch_attention(t):
        q, k, v = (z.view(B, T, H, C // H).transpose(1, 2) for z in t.split(C, dim=2))
        return tF.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).contiguous().view(B, T, C)

    return {
        "LayerNorm": (ours(F.layer_norm, x, w_ln, b_ln, grad=g),
                      ref(lambda t, w, b: tF.layer_norm(t, (C,), w, b), x, w_ln, b_ln, grad=g)),
        "c_attn (Linear C -> 3C)": (ours(F.linear, x, w_qkv, b_qkv, grad=g3),
                                    ref(lambda t, w, b: tF.linear(t, w.T, b), x, w_qkv, b_qkv, grad=g3)),
        "attention (causal, packed)": (ours(lambda t: packed_self_attention(t, H, is_causal=True), qkv, grad=g),
                                       ref(torch_attention, qkv, grad=g)),
        "MLP (c_fc, tanh-GELU, c_proj)": (
            ours(lambda t, a, b, c, d: mlp(t, a, b, c, d), x, w1, w2, b1, b2, grad=g),
            ref(lambda t, a, b, c, d: tF.linear(tF.gelu(tF.linear(t, a.T, c), approximate="tanh"), b.T, d),
                x, w1, w2, b1, b2, grad=g)),
        "lm_head + cross-entropy": (
            ours(lambda t, w: F.cross_entropy(F.linear(t, w.T), targets), x, wte),
            ref(lambda t, w: tF.cross_entropy(tF.linear(t, w).view(-1, V), torch.tensor(targets).view(-1)), x, wte)),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="small")
    parser.add_argument("--steps", type=int, default=60, help="steps per side, the first 5 not timed (default 60)")
    parser.add_argument("--repeat", type=int, default=200, help="timed calls per op and side (default 200)")
    parser.add_argument("--processes", type=int, default=2,
                        help="ranks that share the batch: the op comparison times one share (default 2)")
    parser.add_argument("--threads", type=int, help="BLAS/torch threads (see train_step.py)")
    args = parser.parse_args(argv)
    if args.steps <= 5:
        parser.error("--steps must exceed the 5 warm-up steps")
    cfg = CONFIGS[args.config]
    print(f"{args.config}: n_layer {cfg['n_layer']}, n_head {cfg['n_head']}, n_embd {cfg['n_embd']}, block "
          f"{cfg['block_size']}, batch {cfg['batch_size']}; {_common.load_average()}")
    stream, _ = _common.char_stream(cfg["vocab_size"])
    data = _common.batches(stream, cfg["batch_size"], cfg["block_size"], args.steps)
    step_parts(cfg, data)

    torch = train_step.import_torch()
    if torch is None:
        print("\ntorch is not installed: the op comparison is skipped")
        return
    from tinygrad_lite.fast.blas import blas_threads

    torch.set_num_threads(1)
    rows = -(-cfg["batch_size"] // max(args.processes, 1))
    with blas_threads(1):
        pairs = op_pairs(torch, cfg, rows)
        print(f"\none share ({rows} x {cfg['block_size']} tokens), forward + backward on one thread, alternating, "
              f"{args.repeat} calls each: median and minimum ms")
        print(f"  {'op':32s} {'ours':>17s} {'torch':>17s}  ratio of medians")
        for name, (ours, ref) in pairs.items():
            times = _common.alternate({"ours": ours, "torch": ref}, args.repeat, warmup=5, pause=0.0)
            ratio = statistics.median(times["ours"]) / statistics.median(times["torch"])
            print(f"  {name:32s} {summary(times['ours'])} {summary(times['torch'])}  {ratio:5.2f}")
    print(_common.load_average())


if __name__ == "__main__":
    main()
