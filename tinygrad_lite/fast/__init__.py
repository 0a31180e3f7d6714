"""tinygrad_lite.fast: the opt-in speed backend. The core never imports it; an application turns it on.

    from tinygrad_lite import fast
    print(fast.enable())      # what it turned on, for the application's log

What it holds, each piece kept because benchmarks/ shows it pays (docs/performance.md has the figures):
- memory.py          glibc's malloc keeps freed memory for the next step instead of handing it back to the OS
- data_parallel.py   each batch split between forked processes that share the weights
"""

from __future__ import annotations

from . import memory


def enable() -> list[str]:
    """Turn on every process-wide setting of the backend; returns one short description per setting in effect."""
    done = []
    if memory.keep_freed_memory():
        done.append("malloc keeps freed memory")
    return done
