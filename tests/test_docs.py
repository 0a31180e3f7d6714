"""The README's instructions stay true: the debugger line number and the commands it shows."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_readme_breakpoint_line_is_the_backward_call():
    readme = (REPO / "README.md").read_text()
    line = int(re.search(r"b tinygrad_lite/autograd\.py:(\d+)", readme).group(1))
    source = (REPO / "tinygrad_lite" / "autograd.py").read_text().splitlines()
    assert source[line - 1].strip() == "in_grads = ctx.backward(g)"


def test_readme_install_and_test_commands_are_the_ci_commands():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert 'pip install -e ".[test]" && python train.py' in readme
    assert 'pip install --quiet -e ".[test]"' in ci and "\npytest\n" in ci
