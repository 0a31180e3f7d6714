"""benchmarks/train_step.py --full-run: whole `train.py --preset shakespeare_char` runs, timed against nanoGPT's CPU
command for the same data when a nanoGPT checkout is given (--nanogpt).

Each run's wall time, median ms/iter, last reported val loss (eval_iters batches) and peak RSS are printed. After
each run its best model is also evaluated on every window of the val split (benchmarks/val_loss.py), a figure
without the evaluation noise of 20 random batches, with the same windows for ours and nanoGPT's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common
from _common import REPO, TEXT, TEXT_MISSING

NANOGPT_ARGS = ["config/train_shakespeare_char.py", "--device=cpu", "--compile=False", "--eval_iters=20",
                "--log_interval=1", "--block_size=64", "--batch_size=12", "--n_layer=4", "--n_head=4",
                "--n_embd=128", "--max_iters=2000", "--lr_decay_iters=2000", "--dropout=0.0"]


def prepare_nanogpt(root: Path, text: Path) -> None:
    """nanoGPT's data/shakespeare_char/prepare.py downloads input.txt only when it is missing: put the local copy
    there first, then let it write train.bin, val.bin and meta.pkl."""
    data = root / "data" / "shakespeare_char"
    if all((data / f).is_file() for f in ("train.bin", "val.bin", "meta.pkl")):
        return
    if not (data / "input.txt").is_file():
        shutil.copyfile(text, data / "input.txt")
    subprocess.run([sys.executable, "prepare.py"], cwd=data, check=True, capture_output=True, text=True)


def timed_run(cmd: list, cwd: Path, log: Path) -> dict:
    """Wall time, peak RSS and exit status of one command.

    The peak RSS is wait4's ru_maxrss of this child alone; it starts from this (small, torch-free) process's RSS,
    which a vfork + exec child inherits, so it is exact whenever the child grows past that, as training does.
    """
    with log.open("w") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text(errors="replace")
    iters = [float(v) for v in re.findall(r"^iter \d+: .*?([\d.]+) ?ms", text, flags=re.M)]
    vals = re.findall(r"^step (\d+): train loss ([\d.]+), val loss ([\d.]+)", text, flags=re.M)
    return {"wall": wall, "rss_mb": usage.ru_maxrss / 1024, "status": proc.returncode, "ms_iter": iters,
            "final": vals[-1] if vals else None, "log": log}


def full_run(args) -> None:
    text = Path(args.data) if args.data else TEXT
    if text is None:
        sys.exit(f"--full-run {TEXT_MISSING}, or pass --data FILE")
    if not text.is_file():
        sys.exit(f"--full-run: {text} not found")
    work = Path(tempfile.mkdtemp(prefix="bench-full-"))
    runs = {"ours": ([sys.executable, "train.py", "--preset", "shakespeare_char", "--data", str(text.resolve()),
                      "--out_dir", str(work / "ours"), "--log_interval", "1"], REPO)}
    if args.max_iters:  # a shorter run: decay over it, warm up over at most all of it (both sides alike)
        warmup = min(100, args.max_iters)
        runs["ours"][0].extend(["--max_iters", str(args.max_iters), "--lr_decay_iters", str(args.max_iters),
                                "--warmup_iters", str(warmup)])
    if args.ranks > 1:  # the same run on MPI ranks, each with its share of every batch's rows
        runs["ours-mpi"] = ([*runs["ours"][0], "--ranks", str(args.ranks)], REPO)
        runs["ours-mpi"][0][runs["ours-mpi"][0].index("--out_dir") + 1] = str(work / "ours-mpi")
    if args.nanogpt:
        root = Path(args.nanogpt).resolve()
        prepare_nanogpt(root, text)
        cmd = [sys.executable, "train.py", *NANOGPT_ARGS, f"--out_dir={work / 'nanogpt'}"]
        if args.max_iters:
            cmd = [c for c in cmd if not c.startswith(("--max_iters", "--lr_decay_iters"))]
            cmd += [f"--max_iters={args.max_iters}", f"--lr_decay_iters={args.max_iters}",
                    f"--warmup_iters={min(100, args.max_iters)}"]
        runs["nanoGPT"] = (cmd, root)
    print(f"{_common.load_average()}; logs in {work}")
    results = {k: [] for k in runs}
    for r in range(args.full_repeat):  # A B A B: the load drifts over minutes
        for name, (cmd, cwd) in runs.items():
            print(f"  run {r + 1}: {name}: {' '.join(cmd)}  (cwd {cwd})", flush=True)
            res = timed_run(cmd, cwd, work / f"{name}-{r}.log")
            if res["status"] != 0:
                print(f"    failed (exit {res['status']}); see {res['log']}")
                continue
            res["val_full"] = _whole_val(name, work, text, cwd)
            results[name].append(res)
            print(f"    {res['wall']:.1f} s, median {_common.median(res['ms_iter']):.1f} ms/iter, "
                  f"final {res['final']}, whole val split {res['val_full']}, peak RSS {res['rss_mb']:.0f} MB",
                  flush=True)
    print(f"\n{'run':8s} {'wall s':>8s} {'ms/iter':>8s} {'iters':>6s} {'val loss':>9s} {'whole val':>10s} "
          f"{'peak RSS MB':>12s}")
    for name, rs in results.items():
        for res in rs:
            final = res["final"]
            print(f"{name:8s} {res['wall']:8.1f} {_common.median(res['ms_iter']):8.1f} "
                  f"{final[0] if final else '-':>6s} {final[2] if final else '-':>9s} {res['val_full']:>10s} "
                  f"{res['rss_mb']:12.0f}")
    for side in ("ours", "ours-mpi"):
        if results.get("nanoGPT") and results.get(side):
            w = _common.median([r["wall"] for r in results[side]]) / _common.median([r["wall"] for r in
                                                                                      results["nanoGPT"]])
            print(f"{side} / nanoGPT wall time: {w:.2f}")
    print(_common.load_average())


def _whole_val(name: str, work: Path, text: Path, cwd: Path) -> str:
    """The run's best model evaluated on the whole val split (benchmarks/val_loss.py), as text ("-" if that fails).

    In a child process: loading our model here would grow this process's RSS, which the next run's child inherits
    as the floor of its ru_maxrss (see timed_run)."""
    cmd = [sys.executable, str(REPO / "benchmarks" / "val_loss.py"), str(work / name.lower()), "--data", str(text),
           "--json"]
    if name == "nanoGPT":
        cmd += ["--nanogpt", str(cwd)]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        print(f"    whole val split: not evaluated ({run.stderr.strip().splitlines()[-1:]})")
        return "-"
    return f"{json.loads(run.stdout)['loss']:.4f}"
