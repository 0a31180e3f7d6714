"""Keep freed memory in the process for the next training step (glibc's malloc, Linux).

Every training step allocates and frees hundreds of NumPy arrays of 0.1 to 10 MB (activations, gradients,
temporaries). By default glibc serves such sizes with mmap, or gives freed heap memory back to the OS (trimming), so
the next step's arrays land on fresh pages that the kernel must map and zero-fill on first touch. Measured on the
nanoGPT CPU config (benchmarks/train_step.py): about 9,000 page faults and 35 ms of system time per step, a quarter
of the step. Raising malloc's mmap threshold to its maximum (32 MiB on 64-bit) and its trim threshold to 1 GiB makes
freed memory stay in the process and be reused: 0-30 page faults per step. Live memory is unchanged; the process
just does not shrink between steps, as with any caching allocator (PyTorch's CUDA allocator, jemalloc...).

`keep_freed_memory()` runs once when tinygrad_lite is imported. It changes a setting of the whole process, so it can
be turned off with the environment variable TINYGRAD_LITE_KEEP_MEMORY=0; elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import os

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, from glibc's <malloc.h>
MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed value on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 1 << 30

_applied: bool | None = None


def _is_glibc() -> bool:
    """True under glibc (os.confstr answers in microseconds; platform.libc_ver() reads the executable, ~5 ms)."""
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (AttributeError, ValueError, OSError):  # no confstr (Windows) or no such name (musl, macOS)
        return False


def keep_freed_memory() -> bool:
    """Set glibc's malloc thresholds as described above; True if they are in effect."""
    global _applied
    if _applied is None:
        _applied = False
        if os.environ.get("TINYGRAD_LITE_KEEP_MEMORY", "1") != "0" and _is_glibc():
            try:
                mallopt = ctypes.CDLL(None).mallopt
            except (OSError, AttributeError):
                return False
            mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
            _applied = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD,
                                                                                       TRIM_THRESHOLD))
    return _applied
