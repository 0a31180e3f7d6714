"""Elementwise kernels in cache-sized slices: the fused GELU's forward and backward with tinygrad_lite.fast.blocks
and on whole arrays.

    python benchmarks/cache_block.py [--threads 1] [--repeat 9]

Each GELU kernel makes many passes over its arrays; fast.blocks feeds a kernel slices of CACHE_BLOCK elements so
that the passes run on data still in the core's cache. This times the kernels on the (B*T, 4C) activations of the
two configs of benchmarks/train_step.py for several slice sizes, taking turns round after round, and prints the best
ns per element of each (torch's F.gelu beside them when installed).
"""

from __future__ import annotations

import argparse
import time

import _common  # noqa: F401  (applies --threads before NumPy loads)
import numpy as np

from tinygrad_lite.fast import blocks
from tinygrad_lite.fused.gelu import gelu_backward, gelu_forward

SHAPES = {"small": (12 * 64, 4 * 128), "medium": (16 * 128, 4 * 384)}
BLOCKS = (None, 1 << 14, 1 << 15, 1 << 16, 1 << 17)


def kernels(x, g, approximate):
    y, saved = gelu_forward(x, approximate)
    return {f"{approximate} forward": lambda: gelu_forward(x, approximate),
            f"{approximate} backward": lambda: gelu_backward(x, saved, g, approximate)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="threads (default: the machine's)")
    parser.add_argument("--repeat", type=int, default=9, help="rounds; each figure is the best (default 9)")
    args = parser.parse_args()
    try:
        import torch
        if args.threads:
            torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
    rng = np.random.default_rng(0)
    print(f"{_common.thread_report(torch)}; ns per element, best of {args.repeat} rounds")
    original = blocks.CACHE_BLOCK
    for config, shape in SHAPES.items():
        x = rng.standard_normal(shape, dtype=np.float32)
        g = rng.standard_normal(shape, dtype=np.float32)
        fns = {**kernels(x, g, "tanh"), **kernels(x, g, "none")}
        best = {(name, block): float("inf") for name in fns for block in BLOCKS}
        try:
            for _ in range(args.repeat):
                for block in BLOCKS:
                    if block is None:
                        blocks.uninstall()
                    else:
                        blocks.CACHE_BLOCK = block
                        blocks.install()
                    for name, fn in fns.items():
                        start = time.perf_counter()
                        fn()
                        best[name, block] = min(best[name, block], time.perf_counter() - start)
        finally:
            blocks.CACHE_BLOCK = original
            blocks.uninstall()
        print(f"\n{config} {shape}: " + "  ".join(f"{'whole' if b is None else b:>8}" for b in BLOCKS))
        for name in fns:
            print(f"  {name:<16}" + "  ".join(f"{best[name, b] / x.size * 1e9:8.2f}" for b in BLOCKS))
        if torch is not None:
            tx = torch.from_numpy(x)
            for approximate in ("tanh", "none"):
                t = float("inf")
                for _ in range(args.repeat):
                    start = time.perf_counter()
                    torch.nn.functional.gelu(tx, approximate=approximate)
                    t = min(t, time.perf_counter() - start)
                print(f"  torch {approximate} forward {t / x.size * 1e9:.2f}")


if __name__ == "__main__":
    main()
