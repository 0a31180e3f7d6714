"""What a preset reaches over several seeds: held-out accuracy (or val loss) at each evaluation, mean and range.

    python benchmarks/convergence.py                                  # addition, seeds 1337-1341
    python benchmarks/convergence.py --seeds 3 -- --fused false       # options after -- go to train.py
    python benchmarks/convergence.py --preset reverse --seeds 2

One run of train.py per seed, one after the other, each into a temporary out_dir; the figures come from each run's
metrics.jsonl. A single run's number depends on its seed, and on anything that changes the order of float32 sums
(the number of processes that split a batch, the fused or the reference path), so the README quotes these summaries,
never one run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run(preset: str, seed: int, extra: list, work: Path) -> tuple[list, float]:
    """(rows of metrics.jsonl, wall seconds) of one train.py run."""
    out = work / f"seed{seed}"
    cmd = [sys.executable, str(REPO / "train.py"), "--preset", preset, "--seed", str(seed), "--out_dir", str(out),
           *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"convergence.py: {' '.join(cmd[1:])} failed:\n{proc.stderr[-2000:]}")
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return rows, seconds


def summary(values: list, digits: int = 4) -> str:
    mean = sum(values) / len(values)
    return f"mean {mean:.{digits}f}, range {min(values):.{digits}f}-{max(values):.{digits}f}"


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="addition")
    parser.add_argument("--seeds", type=int, default=5, help="how many seeds, from --first-seed (default 5)")
    parser.add_argument("--first-seed", type=int, default=1337)
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    by_iter: dict = {}
    seconds = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            rows, s = run(args.preset, seed, extra, Path(tmp))
            seconds.append(s)
            for row in rows:
                key = "accuracy" if "accuracy" in row else "val_loss"
                by_iter.setdefault(row["iter"], {}).setdefault(key, []).append(row[key])
            last = rows[-1]
            shown = f"accuracy {last['accuracy']:.4f}" if "accuracy" in last else f"val loss {last['val_loss']:.4f}"
            print(f"seed {seed}: {shown} at iteration {last['iter']}, {s:.1f} s", flush=True)
    result = {"preset": args.preset, "seeds": seeds, "train_py_args": extra,
              "seconds": {"mean": sum(seconds) / len(seconds), "min": min(seconds), "max": max(seconds)},
              "evals": {it: {k: {"mean": sum(v) / len(v), "min": min(v), "max": max(v)} for k, v in d.items()}
                        for it, d in sorted(by_iter.items())}}
    if args.json:
        print(json.dumps(result))
        return
    print(f"\n{args.preset}, seeds {seeds[0]}-{seeds[-1]}" + (f", train.py {' '.join(extra)}" if extra else ""))
    for it, d in sorted(by_iter.items()):
        print(f"  iteration {it:5d}: " + "; ".join(f"{k} {summary(v)}" for k, v in d.items()))
    print(f"  wall time per run: {summary(seconds, 1)} s")


if __name__ == "__main__":
    main()
