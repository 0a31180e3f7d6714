"""GPT-2 training step speed and memory, side by side with PyTorch eager on the same weights and batches.

    python benchmarks/train_step.py                       # both configs, timing + memory + matmul peak
    python benchmarks/train_step.py --config small --steps 60 --threads 1
    python benchmarks/train_step.py --profile             # cProfile of our step (nanoGPT CPU config), top 15
    python benchmarks/train_step.py --full-run --nanogpt ~/nanoGPT   # whole train.py runs (minutes)

One step is what training/loop.py does per iteration: forward, cross-entropy, backward, clip_grad_norm_(1.0), AdamW
(lr 1e-3, betas (0.9, 0.99), weight decay 0.1 on 2-D parameters only), zero_grad, loss.item(). Two configs:

    small   nanoGPT's CPU shakespeare_char command: n_layer 4, n_head 4, n_embd 128, block 64, batch 12, vocab 65
    medium  n_layer 6, n_head 6, n_embd 384, block 128, batch 16, vocab 65

The reference is a GPT-2 written in torch eager (_common.torch_gpt: nn.Linear/LayerNorm/Embedding,
scaled_dot_product_attention, tanh-GELU, tied lm_head; torch.optim.AdamW with its CPU defaults), given a copy of
our initial weights (Linear weights transposed: ours are (in, out), nn.Linear's (out, in)). Both see the same
batches (windows of tinyshakespeare characters when the data home or ../shared/data has it, else random ids).
The losses of the warm-up steps and the parameters after them are compared, to show the same work is timed. Then
the sides alternate step by step (ours, ours-ref, torch, ours, ...), back to back as in a training loop, and
the medians are reported with their ratio to torch (below 1: faster). `ours` runs the fused path with the speed
backend on (tinygrad_lite.fast.enable(), as train.py does); `ours-ref` the reference path (set_fused(False)), the
primitive ops a learner steps through. Data parallelism over MPI ranks (train.py --ranks N) is timed by
benchmarks/distributed.py. `--pause S` idles S seconds before each step (docs/performance.md says why it once
mattered). The machines are shared and noisy: compare ratios, not absolute times.

FLOPs per step = (6 N + 12 L T C) * B T (Kaplan et al. 2020; nanoGPT's estimate_mfu), where N counts the parameters
that take part in a matmul or an elementwise op of the blocks: every parameter except the position embeddings, with
the tied token embedding counted once (for the lm_head matmul). The share of peak divides achieved GFLOP/s by the
best float32 np.matmul of 1024^2 and 2048^2 measured in the same run (torch.mm shown for comparison).

Peak memory: each side runs in its own child process (`--child ours|torch`), prints its RSS after imports (baseline)
and its peak RSS (Linux: VmHWM, see _common.peak_rss_mb) after warm-up + 5 steps; the difference is the working
memory of model, gradients, optimizer state and activations.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import _common  # before NumPy: applies --threads to the environment while NumPy's BLAS is not loaded yet
import _full_run
import _profile
import numpy as np
from _common import REPO, TEXT

CONFIGS = {
    "small": dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, vocab_size=65, steps=30),
    "medium": dict(n_layer=6, n_head=6, n_embd=384, block_size=128, batch_size=16, vocab_size=65, steps=10),
}
LR, BETAS, WEIGHT_DECAY, GRAD_CLIP = 1e-3, (0.9, 0.99), 0.1, 1.0
TARGETS = {"small": "ratio <= 0.80", "medium": ">= 60% of peak and ratio <= 1.00"}


def import_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def matmul_params(cfg: dict) -> int:
    """N of the FLOP estimate: the blocks (12 C^2 + 13 C each), the tied wte (V C) once, ln_f; not wpe."""
    L, C, V = cfg["n_layer"], cfg["n_embd"], cfg["vocab_size"]
    return L * (12 * C * C + 13 * C) + V * C + 2 * C


def flops_per_step(cfg: dict) -> float:
    L, C, T, B = cfg["n_layer"], cfg["n_embd"], cfg["block_size"], cfg["batch_size"]
    return (6 * matmul_params(cfg) + 12 * L * T * C) * B * T


# ------------------------------------------------------------------------------------------------- ours


def build_model(cfg: dict, seed: int = 0):
    """(model, optimizer): our GPT2 for a config, in training mode with dropout 0, and its AdamW."""
    from models.gpt2 import GPT2, GPT2Config

    config = GPT2Config(vocab_size=cfg["vocab_size"], n_positions=cfg["block_size"], n_embd=cfg["n_embd"],
                        n_layer=cfg["n_layer"], n_head=cfg["n_head"], resid_pdrop=0.0, embd_pdrop=0.0,
                        attn_pdrop=0.0, bos_token_id=None, eos_token_id=None)
    model = GPT2(config, rng=np.random.default_rng(seed))
    model.train()
    return model, model.configure_optimizer(WEIGHT_DECAY, LR, BETAS)


def build_ours(cfg: dict, seed: int = 0, reference: bool = False):
    """(model, step): our GPT2 and one training step on a batch -> loss (float), as training/loop.py does it.
    With reference=True the step runs the reference path (tinygrad_lite.set_fused(False): primitive ops only)."""
    from tinygrad_lite import set_fused
    from tinygrad_lite.optim import clip_grad_norm_

    model, optimizer = build_model(cfg, seed)

    def step(batch) -> float:
        x, y = batch
        with set_fused(not reference):
            _, loss = model(x, targets=y)
        loss.backward()
        loss = float(loss.item())
        clip_grad_norm_(model.parameters(), GRAD_CLIP)
        optimizer.step()
        optimizer.zero_grad()
        return loss

    return model, step


# ------------------------------------------------------------------------------------------------- torch


def build_torch(torch, cfg: dict, ours=None):
    """(model, step) for torch; with `ours`, every parameter is a copy of ours (Linear weights transposed)."""
    model = _common.torch_gpt(torch, cfg)
    if ours is not None:
        theirs = dict(ours.named_parameters())
        mine = dict(model.named_parameters())
        if set(theirs) != set(mine):
            raise RuntimeError(f"parameter names differ: {sorted(set(theirs) ^ set(mine))}")
        with torch.no_grad():
            for name, p in mine.items():
                src = theirs[name].data
                if p.ndim == 2 and ".wte." not in name and ".wpe." not in name:
                    src = src.T  # (in, out) -> nn.Linear's (out, in)
                if tuple(src.shape) != tuple(p.shape):
                    raise RuntimeError(f"{name}: ours {src.shape}, torch {tuple(p.shape)}")
                p.copy_(torch.from_numpy(np.ascontiguousarray(src)))
    model.train()
    params = list(model.parameters())
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": WEIGHT_DECAY},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=LR, betas=BETAS, eps=1e-8)

    def step(batch) -> float:
        x, y = (torch.from_numpy(a) for a in batch)
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    return model, step


# ------------------------------------------------------------------------------------------------- modes


class Feeder:
    """Hands one side its next batch; each side walks the same list independently."""

    def __init__(self, step, data):
        self.step, self.data, self.i = step, data, 0

    def __call__(self) -> float:
        loss = self.step(self.data[self.i % len(self.data)])
        self.i += 1
        return loss


def child(side: str, name: str, steps: int, warmup: int) -> None:
    """Memory child: RSS after imports, then peak RSS after warm-up + steps. Prints one JSON line."""
    cfg = CONFIGS[name]
    torch = import_torch() if side == "torch" else None
    if side != "torch":
        import models.gpt2  # noqa: F401  (imports before the baseline, as torch's are)
    stream, _ = _common.char_stream(cfg["vocab_size"])
    data = _common.batches(stream, cfg["batch_size"], cfg["block_size"], warmup + steps)
    baseline = _common.current_rss_mb()
    if side == "torch":
        _, step = build_torch(torch, cfg)
    else:
        _, step = build_ours(cfg, reference=side == "ours-ref")
    times = []
    for i, batch in enumerate(data):
        t0 = time.perf_counter()
        step(batch)
        if i >= warmup:
            times.append((time.perf_counter() - t0) * 1e3)
    peak = _common.peak_rss_mb()
    print(json.dumps({"baseline_mb": baseline, "peak_mb": peak, "ms": _common.median(times)}))


def run_child(side: str, name: str, threads: int | None) -> dict | None:
    args = [sys.executable, __file__, "--child", side, "--config", name]
    if threads:
        args += ["--threads", str(threads)]
    proc = subprocess.run(args, capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        print(f"  memory child {side}/{name} failed:\n{proc.stderr[-2000:]}")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def compare(name: str, torch, args, peak: float) -> dict:
    cfg = CONFIGS[name]
    steps = args.steps or cfg["steps"]
    stream, source = _common.char_stream(cfg["vocab_size"])
    data = _common.batches(stream, cfg["batch_size"], cfg["block_size"], args.warmup + steps, seed=args.seed)
    print(f"\n== {name}: n_layer {cfg['n_layer']}, n_head {cfg['n_head']}, n_embd {cfg['n_embd']}, block "
          f"{cfg['block_size']}, batch {cfg['batch_size']}, vocab {cfg['vocab_size']} ({source}); "
          f"{flops_per_step(cfg) / 1e9:.2f} GFLOP/step (N = {matmul_params(cfg):,})")
    sides = ["ours"] + (["ours-ref"] if args.reference else []) + (["torch"] if torch is not None else [])
    if args.sides:
        sides = [side for side in sides if side in args.sides.split(",")]
    mem = {}
    if not args.no_memory:
        for side in sides:
            mem[side] = run_child(side, name, args.threads)
    ours_model, ours_step = build_ours(cfg, seed=args.seed)
    fns = {"ours": Feeder(ours_step, data)} if "ours" in sides else {}
    if "ours-ref" in sides:
        fns["ours-ref"] = Feeder(build_ours(cfg, seed=args.seed, reference=True)[1], data)
    if "torch" in sides:
        torch_model, torch_step = build_torch(torch, cfg, ours=ours_model)
        fns["torch"] = Feeder(torch_step, data)
    losses = {k: [] for k in fns}
    for _ in range(args.warmup):  # the first steps, on the same batches: their losses must agree
        for k, fn in fns.items():
            losses[k].append(fn())
    result = {"name": name, "cfg": cfg, "mem": mem, "steps": steps}
    for side in [k for k in fns if k != "torch"]:
        print(f"  first {args.warmup} losses, {side + ':':8s} " + " ".join(f"{v:.6f}" for v in losses[side]))
    if "torch" in fns:
        print(f"  first {args.warmup} losses, torch:   " + " ".join(f"{v:.6f}" for v in losses["torch"]))
        loss_diff = max(abs(a - b) for side in fns if side != "torch" for a, b in zip(losses[side], losses["torch"]))
        param_diff = float("nan")  # the parameters are compared with the one-process side's
        if "ours" in fns:
            theirs = {n: p.detach().numpy() for n, p in torch_model.named_parameters()}
            param_diff = max(float(np.max(np.abs(_torch_layout(n, theirs[n]) - p.data)))
                             for n, p in ours_model.named_parameters())
        print(f"  max |loss diff| {loss_diff:.2e}; max |param diff| after {args.warmup} AdamW steps {param_diff:.2e}")
        result.update(loss_diff=loss_diff, param_diff=param_diff)
    times = _common.alternate(fns, steps, warmup=0, pause=args.pause)
    result["ms"] = {k: _common.median(v) for k, v in times.items()}
    flops = flops_per_step(cfg)
    result["gflops"] = {k: flops / (ms / 1e3) / 1e9 for k, ms in result["ms"].items()}
    result["share"] = {k: g / peak for k, g in result["gflops"].items()}
    for k, v in times.items():
        print(f"  {k:7s} ms/step: median {_common.median(v):8.1f}, min {min(v):8.1f}, max {max(v):8.1f} "
              f"({len(v)} steps)")
    return result


def _torch_layout(name: str, arr: np.ndarray) -> np.ndarray:
    return arr.T if arr.ndim == 2 and ".wte." not in name and ".wpe." not in name else arr


def print_table(results: list, peak: float, has_torch: bool) -> None:
    print(f"\nSummary (median ms/step, alternating; GFLOP/s share of the measured np.matmul peak {peak:.0f} GFLOP/s)")
    print("ours: one process, the fused path; ours-ref: one process, the reference path (set_fused(False)); "
          "MPI ranks: benchmarks/distributed.py")
    head = f"{'config':7s} {'side':8s} {'ours ms':>9s} {'torch ms':>9s} {'ratio':>6s} {'ours GFLOP/s':>15s} " \
           f"{'torch GFLOP/s':>15s} {'ours RSS MB':>17s} {'torch RSS MB':>17s}"
    print(head)

    def rss(mem, side):
        m = mem.get(side)
        return f"{m['peak_mb']:7.0f} (+{m['peak_mb'] - m['baseline_mb']:5.0f})" if m else f"{'-':>17s}"

    for r in results:
        ms, g, s, mem = r["ms"], r["gflops"], r["share"], r["mem"]
        for side in [k for k in ms if k != "torch"]:
            t = f"{ms['torch']:9.1f} {ms[side] / ms['torch']:6.2f}" if has_torch else f"{'-':>9s} {'-':>6s}"
            tg = f"{g['torch']:7.1f} ({100 * s['torch']:4.1f}%)" if has_torch else f"{'-':>15s}"
            print(f"{r['name']:7s} {side:8s} {ms[side]:9.1f} {t} {g[side]:7.1f} ({100 * s[side]:4.1f}%) {tg:>15s} "
                  f"{rss(mem, side):>17s} {rss(mem, 'torch'):>17s}")
    print("RSS: peak of a child process running only that side (+ growth over its RSS after imports)")
    if not has_torch:
        return
    print("\nTargets")
    for r in results:
        for side in [k for k in r["ms"] if k != "torch"]:
            ratio = r["ms"][side] / r["ms"]["torch"]
            checks = []
            if r["name"] == "small":
                checks.append(("step time <= 0.8x torch", ratio <= 0.8))
            if r["name"] == "medium":
                checks.append((">= 60% of matmul peak", r["share"][side] >= 0.6))
                checks.append(("step time <= torch", ratio <= 1.0))
            mo, mt = r["mem"].get(side), r["mem"].get("torch")
            if mo and mt:
                checks.append(("peak RSS growth <= torch's", mo["peak_mb"] - mo["baseline_mb"]
                               <= mt["peak_mb"] - mt["baseline_mb"]))
                checks.append(("peak RSS <= torch's", mo["peak_mb"] <= mt["peak_mb"]))
            print(f"  {r['name']:7s} {side:8s} " + "; ".join(f"{c}: {'met' if ok else 'NOT met'}" for c, ok in checks))


def profile(name: str, steps: int, warmup: int, top: int, sort: str) -> None:
    cfg = CONFIGS[name]
    stream, _ = _common.char_stream(cfg["vocab_size"])
    _, step = build_ours(cfg)
    _profile.report(step, _common.batches(stream, cfg["batch_size"], cfg["block_size"], warmup + steps), warmup,
                    top, sort, f"our training step, config {name}")


# ------------------------------------------------------------------------------------------------- main


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.split("\n")[1:]))
    parser.add_argument("--config", choices=[*CONFIGS, "all"], default="all", help="which config (default all)")
    parser.add_argument("--steps", type=int, default=0, help="timed steps per side (default 30 small, 10 medium)")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up steps per side, losses compared (default 3)")
    parser.add_argument("--threads", type=int, default=0,
                        help="BLAS/torch threads for both sides (sets OPENBLAS/OMP/MKL_NUM_THREADS before NumPy "
                             "loads, torch.set_num_threads, threadpoolctl if installed); default: the libraries'")
    parser.add_argument("--pause", type=float, default=0.0,
                        help="idle seconds before each timed step (default 0: back to back, as in training)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-torch", action="store_true", help="time ours only")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory child processes")
    parser.add_argument("--profile", action="store_true", help="cProfile our step (--config, default small)")
    parser.add_argument("--profile-top", type=int, default=15)
    parser.add_argument("--profile-sort", default="tottime", help="pstats sort key (default tottime)")
    parser.add_argument("--full-run", action="store_true",
                        help="time whole `train.py --preset shakespeare_char` runs (and nanoGPT's with --nanogpt)")
    parser.add_argument("--nanogpt", default="", help="a nanoGPT checkout for --full-run (its data is prepared "
                        "from the local tinyshakespeare copy)")
    parser.add_argument("--data", default="", help=f"tinyshakespeare for --full-run (default {TEXT or 'none found'})")
    parser.add_argument("--max-iters", type=int, default=0, help="--full-run: fewer iterations than 2000")
    parser.add_argument("--full-repeat", type=int, default=1, help="--full-run: alternating runs per side")
    parser.add_argument("--ranks", type=int, default=2 if (os.cpu_count() or 1) >= 2 else 1,
                        help="--full-run: also the run on this many MPI ranks (train.py --ranks; default 2 on a "
                             "multi-core machine, 1 = skip)")
    parser.add_argument("--sides", default="", help="comma-separated sides to time (default: all of ours, "
                        "ours-ref, torch): one process's idle OpenBLAS threads keep spinning for a while and slow "
                        "the side that runs next, so pairs measured alone are the fair comparison")
    parser.add_argument("--no-reference", dest="reference", action="store_false",
                        help="skip the reference path's side (set_fused(False))")
    parser.add_argument("--child", choices=["ours", "ours-ref", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    from tinygrad_lite import fast

    backend = fast.enable()  # what train.py turns on: our side runs as training runs

    if args.child:
        _common.limit_threads(args.threads, import_torch() if args.child == "torch" else None)
        child(args.child, args.config, 5, args.warmup)
        return
    if args.full_run:  # before torch is imported: a child's ru_maxrss starts at this process's RSS (vfork + exec)
        _full_run.full_run(args)
        return
    torch = None if args.no_torch or args.profile else import_torch()
    _common.limit_threads(args.threads, torch)
    if args.profile:
        profile("small" if args.config == "all" else args.config, args.steps or 30, args.warmup, args.profile_top,
                args.profile_sort)
        return

    missing = "not used (--no-torch)" if args.no_torch else "not installed"
    print(f"numpy {np.__version__}, torch {torch.__version__ if torch else missing}, float32; "
          f"{_common.load_average()}")
    print(_common.thread_report(torch) + "; our speed backend: " + ", ".join(backend))
    peaks = _common.matmul_peak(torch)
    peak = max(v for (side, _), v in peaks.items() if side == "numpy")
    print("float32 matmul peak, best of 5: " + ", ".join(f"{side} {n}^2 {v:.0f}" for (side, n), v in peaks.items())
          + " GFLOP/s")
    names = list(CONFIGS) if args.config == "all" else [args.config]
    results = [compare(name, torch, args, peak) for name in names]
    print_table(results, peak, "torch" in results[0]["ms"])
    print(f"\n{_common.load_average()}")


if __name__ == "__main__":
    main()
