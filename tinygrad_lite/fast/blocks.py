"""Elementwise kernels in cache-sized slices.

A GELU makes about ten passes over its (B, T, 4C) arrays (the exact one about thirty). On whole arrays of a few MB
each pass reads and writes main memory; fed slices of CACHE_BLOCK elements, each pass finds the previous pass's
output still in the core's cache. The kernels (tinygrad_lite/fused/gelu.py) are elementwise, so they give the same
result on any slices; `install()` makes `run_elementwise` feed them this way (benchmarks/cache_block.py measures it).
"""

from __future__ import annotations

from ..fused import gelu

CACHE_BLOCK = 1 << 16  # elements: 256 KB per float32 array, a handful of arrays fit a core's L2 cache


def in_blocks(kernel, arrays) -> None:
    """kernel(*arrays) run slice by slice, CACHE_BLOCK elements at a time."""
    n = arrays[0].size
    if n <= CACHE_BLOCK:
        kernel(*arrays)
        return
    for start in range(0, n, CACHE_BLOCK):
        kernel(*(a[start:start + CACHE_BLOCK] for a in arrays))


def install() -> None:
    gelu.runner = in_blocks


def uninstall() -> None:
    gelu.runner = gelu._whole
