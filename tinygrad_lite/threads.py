"""A small thread pool for work that NumPy would run on one core.

NumPy runs every ufunc on one core, and OpenBLAS runs the many small matrix products of batched attention on one
core each as well. Both release Python's GIL while they work, so handing halves of an array to two Python threads
keeps two cores busy. Linear (by rows; dx beside dW), GELU, LayerNorm, attention, the fused MLP, SparseMoE and
AdamW split their work this way.

The pool is minimal on purpose: the calling thread runs the first part itself and each worker gets one part through
a semaphore, a round trip of about 25 µs against about 80 µs for concurrent.futures. Parts run in parallel only from
the thread that owns no running map; a map started while another runs (from a worker, or a second user thread)
runs its parts one after the other, so nesting never deadlocks.

While a map runs in parallel, the BLAS (OpenBLAS, as bundled with NumPy's wheels) is set to one thread per call and
restored afterwards: each part's matrix products then run on the part's own thread. Otherwise OpenBLAS would start
its own threads inside a part, and its threads, which keep spinning for a while after each call, would compete for
the cores with the pool's next parts (measured on the nanoGPT CPU config: 103 ms per step with OpenBLAS threads,
88 ms with the pool splitting the matrix products itself).

Set LAYERS_NUM_THREADS=1 to run everything on the calling thread (e.g. in a debugger).
"""

from __future__ import annotations

import ctypes
import os
import threading
from contextlib import contextmanager
from functools import partial

MIN_PARALLEL_SIZE = 1 << 16  # elements: below this a split costs more (two handoffs) than the second core saves
_CORES = os.cpu_count() or 1  # read once: os.cpu_count() costs about 40 µs here, and num_threads() runs per op


# When set, the thread count of this process, whatever the environment says: tinygrad_lite.data_parallel gives each
# of its processes a share of the cores.
THREADS_OVERRIDE: int | None = None


def num_threads() -> int:
    """THREADS_OVERRIDE if set, else LAYERS_NUM_THREADS, else the BLAS thread setting (OPENBLAS/OMP_NUM_THREADS),
    else the number of cores."""
    if THREADS_OVERRIDE is not None:
        return THREADS_OVERRIDE
    for var in ("LAYERS_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return _CORES


# ----------------------------------------------------------------------------------------- the BLAS's own threads

_OPENBLAS_SYMBOLS = [  # (set, get) as exported by OpenBLAS builds: plain, 64-bit-integer, and NumPy's bundled one
    ("openblas_set_num_threads", "openblas_get_num_threads"),
    ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
    ("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
    ("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"),
]
_blas = None  # (set, get) ctypes functions, or () when no OpenBLAS could be found


def _find_openblas():
    """The thread-count functions of the OpenBLAS loaded in this process (Linux: found in /proc/self/maps)."""
    import numpy  # noqa: F401  (loads the BLAS)

    try:
        with open("/proc/self/maps") as maps:
            paths = sorted({line.split()[-1] for line in maps if "openblas" in line.lower() and "/" in line})
    except OSError:
        return ()
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for set_name, get_name in _OPENBLAS_SYMBOLS:
            if hasattr(lib, set_name) and hasattr(lib, get_name):
                set_fn, get_fn = getattr(lib, set_name), getattr(lib, get_name)
                set_fn.argtypes, set_fn.restype, get_fn.restype = [ctypes.c_int], None, ctypes.c_int
                return set_fn, get_fn
    return ()


def _openblas():
    global _blas
    if _blas is None:
        _blas = _find_openblas()
    return _blas


def set_blas_threads(n: int) -> None:
    """Set the BLAS's own thread count (a no-op where OpenBLAS is not found)."""
    if _openblas():
        _blas[0](n)


@contextmanager
def blas_threads(n: int):
    """Run the BLAS on n threads per call inside the block, restored afterwards (a no-op without OpenBLAS)."""
    if not _openblas():
        yield
        return
    set_threads, get_threads = _blas
    before = get_threads()
    if before != n:
        set_threads(n)
    try:
        yield
    finally:
        if before != n:
            set_threads(before)


def blas_single_threaded():
    """Run the BLAS on one thread per call inside the block (a no-op where OpenBLAS is not found)."""
    return blas_threads(1)


# ----------------------------------------------------------------------------------------- the pool


class _Pool:
    """n worker threads, each waiting on its own semaphore for one (fn, item) task."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.busy = threading.Lock()  # held by the thread whose map is running
        self.tasks: list = [None] * n
        self.results: list = [None] * n
        self.go = [threading.Semaphore(0) for _ in range(n)]
        self.done = threading.Semaphore(0)
        for i in range(n):
            threading.Thread(target=self._work, args=(i,), name=f"tinygrad_lite-{i}", daemon=True).start()

    def _work(self, i: int) -> None:
        while True:
            self.go[i].acquire()
            fn, item = self.tasks[i]
            try:
                self.results[i] = (True, fn(item))
            except BaseException as e:  # handed to the caller, which re-raises it
                self.results[i] = (False, e)
            finally:
                self.tasks[i] = None
                self.done.release()

    def map(self, fn, items: list) -> list:
        """[fn(item) for item in items] with items[1:] on the workers (len(items) <= n + 1)."""
        rest = items[1:]
        for i, item in enumerate(rest):
            self.tasks[i] = (fn, item)
            self.go[i].release()
        try:
            first = fn(items[0])
        finally:  # wait for every worker even if our own part failed: they write into shared buffers
            for _ in rest:
                self.done.acquire()
        out = [first]
        for ok, value in self.results[: len(rest)]:
            if not ok:
                raise value
            out.append(value)
        return out


_pool: _Pool | None = None
_pool_pid = None  # a forked child inherits the pool object but not its threads: it needs a pool of its own


def parallel_map(fn, items: list) -> list:
    """[fn(item) for item in items], the items run concurrently on the pool when there are several."""
    global _pool, _pool_pid
    items = list(items)
    threads = num_threads()
    if len(items) <= 1 or threads <= 1:
        return [fn(item) for item in items]
    if _pool is None or _pool_pid != os.getpid() or _pool.n != threads - 1:
        _pool, _pool_pid = _Pool(threads - 1), os.getpid()
    pool = _pool
    if not pool.busy.acquire(blocking=False):
        return [fn(item) for item in items]  # nested or concurrent map: run here
    try:
        out = []
        with blas_single_threaded():
            for start in range(0, len(items), threads):  # at most one item per thread at a time
                out += pool.map(fn, items[start:start + threads])
        return out
    except BaseException as e:
        if not isinstance(e, Exception):
            # Ctrl-C (KeyboardInterrupt) may have cut the wait for the workers short, leaving a hand-off unmatched:
            # drop this pool (its threads finish their part and sleep forever) and start a fresh one next time.
            _pool = None
        raise
    finally:
        pool.busy.release()


def parts_for(work: int, threshold: int) -> int:
    """How many parts to cut `work` (elements, multiply-adds, ...) into: one per thread when it reaches `threshold`,
    the size below which handing a part to another thread costs more than that thread saves; else one."""
    return num_threads() if work >= threshold else 1


def split(n: int, parts: int) -> list:
    """Contiguous slices covering range(n) in at most `parts` nearly equal pieces."""
    parts = max(1, min(parts, n))
    bounds = [n * i // parts for i in range(parts + 1)]
    return [slice(bounds[i], bounds[i + 1]) for i in range(parts)]


# Elementwise kernels make many passes (a GELU about ten, the exact one thirty) over their arrays. Run over pieces of
# at most this many elements, each pass finds the previous pass's output still in the core's cache rather than in
# main memory: on the development machine, one thread, the tanh-GELU forward of a (2048, 1536) float32 array took 3.6
# instead of 7.0 ns per element, its backward 2.5 instead of 5.3 (benchmarks/cache_block.py). None: whole pieces.
CACHE_BLOCK: int | None = 1 << 16


def _in_blocks(fn, piece: slice, block: int) -> None:
    for start in range(piece.start, piece.stop, block):
        fn(slice(start, min(start + block, piece.stop)))


def parallel_chunks(fn, size: int) -> None:
    """fn(slice) over `size` elements cut into one contiguous piece per thread (one piece when size is small), each
    piece handed to fn in slices of at most CACHE_BLOCK elements.

    For elementwise kernels on flat (contiguous) arrays: each slice writes its own part of the outputs.
    """
    pieces = split(size, parts_for(size, MIN_PARALLEL_SIZE))
    if CACHE_BLOCK is not None and size > CACHE_BLOCK:
        fn = partial(_in_blocks, fn, block=CACHE_BLOCK)
    if len(pieces) == 1:
        fn(pieces[0])
    else:
        parallel_map(fn, pieces)
