"""A small thread pool for the layers that split their work by batch.

NumPy runs every ufunc on one core, and OpenBLAS runs the many small matrix products of batched attention on one
core each as well. Both release Python's GIL while they work, so handing halves of a batch to two Python threads
keeps two cores busy. Set LAYERS_NUM_THREADS=1 to run everything on the calling thread (e.g. in a debugger).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

_pool: ThreadPoolExecutor | None = None
_pool_pid = None  # a forked child inherits the pool object but not its threads: it needs a pool of its own


def num_threads() -> int:
    """LAYERS_NUM_THREADS, else the BLAS thread setting (OPENBLAS/OMP_NUM_THREADS), else the number of cores."""
    for var in ("LAYERS_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return os.cpu_count() or 1


def parallel_map(fn, items: list) -> list:
    """[fn(item) for item in items], the items run concurrently on the pool when there are several."""
    global _pool, _pool_pid
    if len(items) <= 1 or num_threads() <= 1:
        return [fn(item) for item in items]
    if _pool is None or _pool_pid != os.getpid():
        _pool, _pool_pid = ThreadPoolExecutor(max_workers=num_threads(), thread_name_prefix="layers"), os.getpid()
    return list(_pool.map(fn, items))


def split(n: int, parts: int) -> list:
    """Contiguous slices covering range(n) in at most `parts` nearly equal pieces."""
    parts = max(1, min(parts, n))
    bounds = [n * i // parts for i in range(parts + 1)]
    return [slice(bounds[i], bounds[i + 1]) for i in range(parts)]
