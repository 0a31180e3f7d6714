"""Metrics: the machine's measured matmul peak, model FLOPs per token, metrics.jsonl and the loss-curve PNG.

"Share of peak" compares the arithmetic a training step needs (6 N FLOPs per token for the weights, forward 2 N and
backward 4 N, plus attention's 12 L T C per token: Kaplan et al. 2020, as in nanoGPT's estimate_mfu) with the
float32 matmul throughput measured on this machine with this NumPy, so the figure says how close to the hardware
the Python framework gets.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np


def measure_matmul_peak(n: int = 1024, repeats: int = 5) -> float:
    """Best observed float32 GFLOP/s of an n x n matmul (2 n^3 FLOPs)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b  # warm-up: thread pool start, page faults
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def flops_per_token(n_params: int, n_layer: int, n_embd: int, block_size: int) -> float:
    """Training FLOPs per token: 6 N + 12 L T C (weights forward and backward, attention scores and mixing)."""
    return 6 * n_params + 12 * n_layer * block_size * n_embd


class MetricsLog:
    """One JSON object per evaluation appended to <out_dir>/metrics.jsonl (flushed each time)."""

    def __init__(self, out_dir: Path, append: bool):
        self.path = out_dir / "metrics.jsonl"
        self.rows: list[dict] = []
        if append and self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    self.rows.append(json.loads(line))
        elif self.path.exists():
            self.path.unlink()

    def append(self, row: dict) -> None:
        self.rows.append(row)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")

    def truncate_after(self, iteration: int) -> None:
        """On resume, drop rows logged after the checkpoint (they will be logged again)."""
        kept = [r for r in self.rows if r["iter"] < iteration]
        if len(kept) != len(self.rows):
            self.rows = kept
            self.path.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")

    def plot(self, out_dir: Path) -> Path | None:
        """loss.png when matplotlib is installed (extra `plot`); silently nothing otherwise."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return None
        its = [r["iter"] for r in self.rows]
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(its, [r["train_loss"] for r in self.rows], label="train")
        ax.plot(its, [r["val_loss"] for r in self.rows], label="val")
        ax.set_xlabel("iteration")
        ax.set_ylabel("loss")
        ax.legend()
        ax.grid(alpha=0.3)
        path = out_dir / "loss.png"
        fig.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(fig)
        return path
