"""tinygrad_lite.fast: the opt-in speed backend. The core never imports it; an application turns it on.

    from tinygrad_lite import fast
    print(fast.enable())      # what it turned on, for the application's log

Each piece is kept because benchmarks/ shows it pays (docs/performance.md has the figures):
- memory.py          glibc's malloc keeps freed memory for the next step instead of handing it back to the OS
- blocks.py          the elementwise kernels fed cache-sized slices (fused GELU)
- blas.py            the BLAS's thread count per call, for MPI ranks that share a machine's cores

Parallelism across cores and machines is data parallelism over MPI ranks: tinygrad_lite/distributed/.
"""

from __future__ import annotations

from . import blocks, memory


def enable() -> list[str]:
    """Turn on the backend's process-wide settings; returns one short description per setting in effect."""
    done = []
    if memory.keep_freed_memory():
        done.append("malloc keeps freed memory")
    blocks.install()
    done.append(f"elementwise kernels in {blocks.CACHE_BLOCK}-element slices")
    return done
