"""tinygrad_lite.fast.memory: freed memory stays in the process, so a repeated training step causes no page faults."""

import os
import platform
import subprocess
import sys

import pytest

from tinygrad_lite.fast import memory

linux_glibc = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                 reason="mallopt is glibc's")

_LOOP = """
import resource, numpy as np
from tinygrad_lite import Tensor
from tinygrad_lite.fast import memory
applied = memory.keep_freed_memory()
x = Tensor(np.ones((256, 1024), dtype=np.float32), requires_grad=True)  # 1 MiB arrays: mmap-sized by default
def step():
    y = (x * 2.0).gelu().sum()
    y.backward()
    x.grad = None
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(keep: str) -> tuple:
    env = {**os.environ, "TINYGRAD_LITE_KEEP_MEMORY": keep}
    out = subprocess.run([sys.executable, "-c", _LOOP], env=env, capture_output=True, text=True, check=True).stdout
    applied, faults = out.split()
    return applied == "True", int(faults)


@linux_glibc
def test_repeated_steps_reuse_memory_instead_of_faulting_in_fresh_pages():
    applied, faults = _faults("1")
    off, faults_off = _faults("0")
    assert applied and not off
    # Each step allocates about 5 MiB of temporaries = about 1,300 fresh pages when they are not reused.
    assert faults < 200 < faults_off, (faults, faults_off)


def test_keep_freed_memory_reports_its_state():
    # In effect exactly under glibc, unless switched off; the same answer on every call (applied once).
    expected = memory._is_glibc() and os.environ.get("TINYGRAD_LITE_KEEP_MEMORY", "1") != "0"
    assert memory.keep_freed_memory() is expected
    assert memory.keep_freed_memory() is expected
    assert memory._is_glibc() == (platform.libc_ver()[0] == "glibc")  # the quick check agrees with the slow one
