"""The BLAS's own threads: how many each matrix product of this process may use.

NumPy's wheels bundle OpenBLAS, which runs every large product on all cores by default. MPI ranks that share a
machine (tinygrad_lite/distributed, training/ranks.py) each want their share of it, or they would fight over the
cores; OpenBLAS reads its environment variable only when it loads, so the setting is changed through its exported
functions (ctypes), found in the libraries this process has mapped. Where no OpenBLAS is found, every function
here does nothing.
"""

from __future__ import annotations

import ctypes
from contextlib import contextmanager

_SYMBOLS = [  # (set, get) as exported by OpenBLAS builds: plain, 64-bit-integer, and NumPy's bundled one
    ("openblas_set_num_threads", "openblas_get_num_threads"),
    ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
    ("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
    ("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"),
]
_found = None  # (set, get) ctypes functions, or () when no OpenBLAS could be found


def _openblas():
    """The thread-count functions of the OpenBLAS loaded in this process (Linux: found in /proc/self/maps)."""
    global _found
    if _found is not None:
        return _found
    import numpy  # noqa: F401  (loads the BLAS)

    _found = ()
    try:
        with open("/proc/self/maps") as maps:
            paths = sorted({line.split()[-1] for line in maps if "openblas" in line.lower() and "/" in line})
    except OSError:
        return _found
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for set_name, get_name in _SYMBOLS:
            if hasattr(lib, set_name) and hasattr(lib, get_name):
                set_fn, get_fn = getattr(lib, set_name), getattr(lib, get_name)
                set_fn.argtypes, set_fn.restype, get_fn.restype = [ctypes.c_int], None, ctypes.c_int
                _found = (set_fn, get_fn)
                return _found
    return _found


def get_blas_threads() -> int | None:
    """The BLAS's thread count per call, or None where OpenBLAS is not found."""
    return _openblas()[1]() if _openblas() else None


def set_blas_threads(n: int) -> None:
    """Set the BLAS's thread count per call (a no-op where OpenBLAS is not found)."""
    if _openblas():
        _found[0](n)


@contextmanager
def blas_threads(n: int):
    """Run the BLAS on n threads per call inside the block, restored afterwards."""
    before = get_blas_threads()
    if before is not None and before != n:
        set_blas_threads(n)
    try:
        yield
    finally:
        if before is not None and before != n:
            set_blas_threads(before)
