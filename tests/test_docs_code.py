"""Every Python code block of the pages that promise to run, executed in order in a fresh interpreter per page."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((REPO / "docs" / "tutorials").glob("[0-9][0-9]_*.md"))
PAGES = [REPO / "docs" / "engine.md", *TUTORIALS]

# One BLAS thread: the pages train small models, and on a shared 2-core machine OpenBLAS's spinning threads make a
# few seconds of training take a minute. A caller's own setting wins.
ENV = {**os.environ, "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1"),
       "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_code_block_runs_in_order(page):
    blocks = python_blocks(page.read_text())
    assert blocks, f"{page} has no python code block"
    program = "\n\n".join(f"# --- block {i + 1}\n{b}" for i, b in enumerate(blocks))
    run = subprocess.run([sys.executable, "-c", program], cwd=REPO, capture_output=True, text=True, timeout=300,
                         env=ENV)
    assert run.returncode == 0, f"{page.name}:\n{run.stderr[-3000:]}"
