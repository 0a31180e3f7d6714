"""Data parallelism over MPI ranks (tinygrad_lite.distributed) against PyTorch, the GPT-2 step of train_step.py.

    python benchmarks/distributed.py                         # small and medium, 1 and 2 ranks on 2 cores
    python benchmarks/distributed.py --config small --ranks 1,2,4,8,16 --rounds 3
    python benchmarks/distributed.py --project               # + the parts a 16-core projection is made of

Sides, each a job of its own, run in turn round after round (A B C A B C: the load drifts over minutes), medians:

    ours N      mpiexec -n N: each rank its share of the batch's rows on cores / N BLAS threads, gradients summed
                in 1 MB buckets during backward (overlap), clip and AdamW on every rank; N = 1: one process on
                all the cores' BLAS threads
    ours 1t     one process on one BLAS thread: the one-core time that scaling efficiency is measured from
    ours-seq N  the same with every bucket started after backward (no overlap)
    ours-zero N the same with --zero 1 (AdamW's moments and work split over the ranks)
    torch best  PyTorch eager in one process, at its best thread count among 1, 2, 4, ... up to the cores
    torch-ddp N DistributedDataParallel (gloo) over N processes started by the same mpiexec, cores / N threads each

A step is train_step.py's: forward, cross-entropy, backward, clip 1.0, AdamW (lr 1e-3, betas (0.9, 0.99), wd 0.1 on
2-D parameters), zero_grad. `comm` is the time a rank spends blocked waiting for its gradients after backward (all
of the allreduce without overlap, the part overlap did not hide with it); scaling efficiency E(N) = T(1) / (N T(N))
with T(1) the one-core time (ours 1t).
Ranks are tried up to the machine's cores (and no more than the batch's rows).

--project measures, on one core, our forward + backward at the rows one of N ranks gets, and clip + AdamW of the
whole model, and projects the step time on N cores as compute(B / N rows) + update (/ N with ZeRO) + the 2-rank
allreduce time scaled by ring allreduce's 2 (N - 1) / N. It is a projection, not a measurement: it assumes each rank
keeps one core's speed and the 2-rank allreduce bandwidth (a node's memory bandwidth is shared, so this is optimistic).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time

import _common  # before NumPy: applies --threads to the environment
import numpy as np
from _common import REPO
from train_step import BETAS, CONFIGS, GRAD_CLIP, LR, WEIGHT_DECAY, flops_per_step

CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
MPIEXEC = None


def _rank() -> tuple[int, int]:
    from tinygrad_lite.distributed import launched

    return launched()


def _share(batch, rank: int, size: int):
    n = len(batch[0])
    rows = slice(n * rank // size, n * (rank + 1) // size)
    return tuple(a[rows] for a in batch), (rows.stop - rows.start) / n


def _data(cfg, count):
    stream, _ = _common.char_stream(cfg["vocab_size"])
    return _common.batches(stream, cfg["batch_size"], cfg["block_size"], count)


def _summary(times: dict) -> dict:
    return {k: 1e3 * statistics.median(v) for k, v in times.items()}


# ------------------------------------------------------------------------------------------------ workers (one job)


def worker_ours(cfg, steps, warmup, overlap, zero):
    from models.gpt2 import GPT2, GPT2Config
    from tinygrad_lite import fast
    from tinygrad_lite.optim import AdamW, clip_grad_norm_, weight_decay_groups

    fast.enable()  # as train.py runs
    rank, size = _rank()
    comm = None
    if size > 1:
        from tinygrad_lite.distributed import DataParallel, ZeroAdamW, world
        from tinygrad_lite.fast.blas import set_blas_threads

        comm = world()
        set_blas_threads(max(1, CORES // comm.local_size))
    config = GPT2Config(vocab_size=cfg["vocab_size"], n_positions=cfg["block_size"], n_embd=cfg["n_embd"],
                        n_layer=cfg["n_layer"], n_head=cfg["n_head"], resid_pdrop=0.0, embd_pdrop=0.0,
                        attn_pdrop=0.0, bos_token_id=None, eos_token_id=None)
    model = GPT2(config, rng=np.random.default_rng(0)).train()
    groups = weight_decay_groups(model.parameters(), WEIGHT_DECAY)
    if comm is not None and zero:
        optimizer = dp = ZeroAdamW(groups, comm, lr=LR, betas=BETAS, overlap=overlap, layout=model.parameters())
    else:
        optimizer = AdamW(groups, lr=LR, betas=BETAS)
        dp = DataParallel(model.parameters(), comm, overlap=overlap) if comm is not None else None
    times = {"step": [], "compute": [], "comm": [], "update": []}
    for i, batch in enumerate(_data(cfg, warmup + steps)):
        share, weight = _share(batch, rank, size)
        t0 = time.perf_counter()
        loss = model(share[0], targets=share[1])[1]
        (loss * weight if weight != 1.0 else loss).backward()
        t1 = time.perf_counter()
        if dp is not None:
            dp.wait()
            t2 = time.perf_counter()
            dp.clip_grad_norm_(GRAD_CLIP)
        else:
            t2 = t1
            clip_grad_norm_(model.parameters(), GRAD_CLIP)
        optimizer.step()
        optimizer.zero_grad()
        t3 = time.perf_counter()
        if i >= warmup:
            for k, v in zip(times, (t3 - t0, t1 - t0, t2 - t1, t3 - t2)):
                times[k].append(v)
    if rank == 0:
        print(json.dumps(_summary(times)))


def worker_torch(cfg, steps, warmup, threads, port):
    import torch

    rank, size = _rank()
    torch.set_num_threads(threads or max(1, CORES // size))
    torch.manual_seed(0)
    model = _common.torch_gpt(torch, cfg).train()
    ddp = model
    if size > 1:
        import torch.distributed as dist

        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=size)
        ddp = torch.nn.parallel.DistributedDataParallel(model)
    params = list(model.parameters())
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": WEIGHT_DECAY},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=LR, betas=BETAS)
    times = {"step": []}
    for i, batch in enumerate(_data(cfg, warmup + steps)):
        (x, y), _ = _share(batch, rank, size)  # equal shares: DDP's average is the mean over the whole batch
        t0 = time.perf_counter()
        _, loss = ddp(torch.from_numpy(x), torch.from_numpy(y))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, GRAD_CLIP)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if i >= warmup:
            times["step"].append(time.perf_counter() - t0)
    if rank == 0:
        print(json.dumps(_summary(times)))


def worker_parts(cfg, steps, warmup, rows_list):
    """One core: forward + backward at each share of rows, and clip + AdamW of the whole model."""
    from train_step import build_model

    from tinygrad_lite import fast
    from tinygrad_lite.fast.blas import set_blas_threads
    from tinygrad_lite.optim import AdamW, clip_grad_norm_, weight_decay_groups

    fast.enable()
    set_blas_threads(1)
    model, _ = build_model(cfg)
    optimizer = AdamW(weight_decay_groups(model.parameters(), WEIGHT_DECAY), lr=LR, betas=BETAS)
    data = _data(cfg, warmup + steps)
    out = {}
    for rows in rows_list:
        ts, tu = [], []
        for i, (x, y) in enumerate(data):
            t0 = time.perf_counter()
            model(x[:rows], targets=y[:rows])[1].backward()
            t1 = time.perf_counter()
            clip_grad_norm_(model.parameters(), GRAD_CLIP)
            optimizer.step()
            optimizer.zero_grad()
            if i >= warmup:
                ts.append(t1 - t0)
                tu.append(time.perf_counter() - t1)
        out[rows] = {"compute": 1e3 * statistics.median(ts), "update": 1e3 * statistics.median(tu)}
    print(json.dumps(out))


# ------------------------------------------------------------------------------------------------ the controller


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_job(kind: str, config: str, ranks: int, steps: int, warmup: int, extra=(), env=None) -> dict | None:
    cmd = [sys.executable, __file__, "--worker", kind, "--config", config, "--steps", str(steps), "--warmup",
           str(warmup), *extra]
    if kind == "torch":
        cmd += ["--port", str(_free_port())]
    if ranks > 1:
        cmd = [MPIEXEC, "-n", str(ranks), *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=dict(os.environ, **(env or {})))
    if proc.returncode != 0:
        print(f"  {kind} x{ranks} failed:\n{proc.stderr[-1500:]}")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def compare(name: str, args) -> None:
    cfg = CONFIGS[name]
    steps = args.steps or cfg["steps"]
    counts = [n for n in args.ranks if n <= CORES and n <= cfg["batch_size"]]
    skipped = [n for n in args.ranks if n not in counts]
    print(f"\n== {name}: n_layer {cfg['n_layer']}, n_embd {cfg['n_embd']}, block {cfg['block_size']}, batch "
          f"{cfg['batch_size']}; {flops_per_step(cfg) / 1e9:.2f} GFLOP/step; ranks {counts}"
          + (f" (not {skipped}: more than the {CORES} cores or the batch's rows)" if skipped else ""))
    sides = []
    sides.append(("ours 1t", "ours", 1, ["--threads", "1"]))
    for n in counts:
        sides.append((f"ours {n}", "ours", n, []))
        if n > 1:
            sides.append((f"ours-seq {n}", "ours", n, ["--no-overlap"]))
            sides.append((f"ours-zero {n}", "ours", n, ["--zero"]))
            if args.async_progress:
                sides.append((f"ours-async {n}", "ours", n, ["--async"]))
    if args.torch:
        threads = [t for t in (1, 2, 4, 8, 16, 32) if t <= CORES]
        sides += [(f"torch {t}t", "torch", 1, ["--threads", str(t)]) for t in threads]
        sides += [(f"torch-ddp {n}", "torch", n, []) for n in counts if n > 1]
    results: dict = {label: [] for label, *_ in sides}
    for r in range(args.rounds):
        for label, kind, n, extra in sides:
            env = {"MPIR_CVAR_ASYNC_PROGRESS": "1"} if "--async" in extra else None
            res = run_job(kind, name, n, steps, args.warmup, [e for e in extra if e != "--async"], env)
            if res is not None:
                results[label].append(res)
                print(f"  round {r + 1} {label:14s} " + ", ".join(f"{k} {v:.1f}" for k, v in res.items()) + " ms",
                      flush=True)
    med = {label: {k: statistics.median(x[k] for x in rs) for k in rs[0]} for label, rs in results.items() if rs}
    best = {label: min(x["step"] for x in rs) for label, rs in results.items() if rs}
    torch_labels = [k for k in med if k.startswith("torch ")]
    t_med = min((med[k]["step"], k) for k in torch_labels) if torch_labels else None
    t_best = min((best[k], k) for k in torch_labels) if torch_labels else None
    print(f"\n{name}: ms/step, median and best of {args.rounds} rounds (a round disturbed by other jobs moves the "
          "median; the best is each side undisturbed); ratio = ours / torch's best thread count in one process"
          + (f" ({t_med[1]}: median {t_med[0]:.1f}, best {t_best[0]:.1f} ms)" if t_med else ""))
    print(f"  {'side':14s} {'median':>8s} {'best':>8s} {'comm':>7s} {'ratio':>11s} {'vs ddp':>11s} "
          f"{'efficiency':>11s}")
    for label, m in med.items():
        n = int(label.split()[-1]) if label.split()[-1].isdigit() else 1
        ours = label.startswith("ours")
        ratio = f"{m['step'] / t_med[0]:5.2f} {best[label] / t_best[0]:5.2f}" if t_med else f"{'-':>11s}"
        ddp = f"torch-ddp {n}"
        vs = (f"{m['step'] / med[ddp]['step']:5.2f} {best[label] / best[ddp]:5.2f}" if ddp in med and ours
              else f"{'-':>11s}")
        base = "ours 1t" if ours else None
        eff = (f"{100 * med[base]['step'] / (n * m['step']):4.0f}% {100 * best[base] / (n * best[label]):4.0f}%"
               if base in med else f"{'-':>11s}")
        comm = f"{m['comm']:7.1f}" if "comm" in m else f"{'-':>7s}"
        print(f"  {label:14s} {m['step']:8.1f} {best[label]:8.1f} {comm} {ratio} {vs} {eff}")
    print("  (ratio, vs ddp and efficiency: from the medians, then from the bests)")
    if args.project:
        project(name, cfg, results, args)


def project(name: str, cfg: dict, results: dict, args) -> None:
    """Step time on N cores from one core's compute at B / N rows, the update, and the 2-rank allreduce."""
    want = [1, 2, 4, 8, 16]
    rows = sorted({-(-cfg["batch_size"] // n) for n in want})
    parts = run_job("parts", name, 1, args.steps or cfg["steps"], args.warmup,
                    ["--rows", ",".join(map(str, rows))])
    seq = results.get("ours-seq 2")
    if parts is None or not seq:
        print("  projection: needs the 2-rank sides and the one-core parts")
        return
    allreduce2 = min(r["comm"] for r in seq)  # the least disturbed round
    update = parts[str(max(rows))]["update"]
    print(f"\n{name}: PROJECTION for N cores (not measured): one core's forward + backward at ceil(B / N) rows, "
          f"clip + AdamW {update:.1f} ms (/ N with ZeRO), allreduce {allreduce2:.1f} ms at 2 ranks x (N - 1) / (N / 2)")
    print(f"  {'N':>3s} {'rows':>5s} {'compute':>8s} {'allreduce':>10s} {'DP step':>8s} {'ZeRO step':>10s} "
          f"{'eff DP':>7s} {'eff ZeRO':>9s}")
    t1 = parts[str(max(rows))]["compute"] + update
    for n in want:
        r = -(-cfg["batch_size"] // n)
        comp = parts[str(r)]["compute"]
        comm = 0.0 if n == 1 else allreduce2 * (n - 1) / (n / 2)
        dp, zero = comp + update + comm, comp + update / n + comm
        print(f"  {n:3d} {r:5d} {comp:8.1f} {comm:10.1f} {dp:8.1f} {zero:10.1f} {100 * t1 / (n * dp):6.0f}% "
              f"{100 * t1 / (n * zero):8.0f}%")


def main(argv=None) -> None:
    global MPIEXEC
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.split("\n")[1:]))
    parser.add_argument("--config", choices=[*CONFIGS, "all"], default="all")
    parser.add_argument("--ranks", default="1,2,4,8,16", help="rank counts, up to the cores (default 1,2,4,8,16)")
    parser.add_argument("--steps", type=int, default=0, help="timed steps per job (default: train_step.py's)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2, help="rounds over all sides (default 2)")
    parser.add_argument("--no-torch", dest="torch", action="store_false")
    parser.add_argument("--async-progress", action="store_true", help="also ours with MPIR_CVAR_ASYNC_PROGRESS=1")
    parser.add_argument("--project", action="store_true", help="project the step time on 16 cores (see above)")
    parser.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=["ours", "torch", "parts"], help=argparse.SUPPRESS)
    parser.add_argument("--no-overlap", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--zero", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--rows", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        cfg = CONFIGS[args.config]
        steps = args.steps or cfg["steps"]
        if args.worker == "ours":
            worker_ours(cfg, steps, args.warmup, not args.no_overlap, args.zero)
        elif args.worker == "torch":
            worker_torch(cfg, steps, args.warmup, args.threads, args.port)
        else:
            worker_parts(cfg, steps, args.warmup, [int(r) for r in args.rows.split(",")])
        return
    from training.ranks import find_mpiexec

    MPIEXEC = find_mpiexec()
    args.ranks = [int(n) for n in args.ranks.split(",")]
    if MPIEXEC is None:
        print('no mpiexec beside this Python or on PATH: pip install -e ".[mpi]"; timing one process only')
        args.ranks = [1]
    if args.torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("torch is not installed: ours only")
            args.torch = False
    print(f"{CORES} cores; {_common.load_average()}")
    for name in (list(CONFIGS) if args.config == "all" else [args.config]):
        compare(name, args)
    print(_common.load_average())


if __name__ == "__main__":
    main()
