"""cProfile of a training step, rows named Class.method, paths relative to the repository (train_step.py --profile)."""

from __future__ import annotations

import time
from pathlib import Path

from _common import REPO


def report(step, batches: list, warmup: int, top: int, sort: str, title: str) -> None:
    """Profile step(batch) over batches[warmup:] after warm-up on batches[:warmup]; print the top rows by `sort`."""
    import cProfile
    import pstats

    data = batches
    steps = len(data) - warmup
    for batch in data[:warmup]:
        step(batch)
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    for batch in data[warmup:]:
        step(batch)
    prof.disable()
    wall = (time.perf_counter() - t0) / steps * 1e3
    stats = pstats.Stats(prof)
    total = stats.total_tt
    print(f"cProfile of {title}, {steps} steps after {warmup} warm-up: {wall:.1f} ms/step "
          f"under the profiler, {stats.total_calls / steps:.0f} function calls per step; top {top} by {sort}")
    column = {"tottime": 2, "cumtime": 3, "cumulative": 3, "ncalls": 1, "calls": 1}.get(sort, 2)
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][column], reverse=True)[:top]
    print(f"{'calls/step':>10s} {'tottime s':>9s} {'% total':>7s} {'ms/call':>8s} {'cumtime s':>9s}  function")
    for (file, line, func), (_, nc, tt, ct, _) in rows:
        print(f"{nc / steps:10.1f} {tt:9.3f} {100 * tt / total:6.1f}% {1e3 * tt / nc:8.3f} {ct:9.3f}  "
              f"{_where(file, line, func)}")


def _where(file: str, line: int, func: str) -> str:
    """'tinygrad_lite/functional.py:220 Linear.forward' for project code, the builtin's name otherwise."""
    if file == "~" or not file.endswith(".py"):
        return func
    path = Path(file)
    try:
        rel = path.resolve().relative_to(REPO)
    except ValueError:
        rel = Path(*path.parts[-2:])
    return f"{rel}:{line} {_qualname(path, line) or func}"


_AST_CACHE: dict = {}


def _qualname(path: Path, line: int) -> str | None:
    """The Class.method name of the def at `line` of a source file (cProfile only records the bare name)."""
    import ast

    if path not in _AST_CACHE:
        try:
            _AST_CACHE[path] = ast.parse(path.read_text())
        except (OSError, SyntaxError):
            _AST_CACHE[path] = None
    tree = _AST_CACHE[path]

    def walk(node, prefix):
        for child_node in ast.iter_child_nodes(node):
            if isinstance(child_node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child_node.name}"
                if not isinstance(child_node, ast.ClassDef) and child_node.lineno == line:
                    return name
                found = walk(child_node, name + ".")
                if found:
                    return found
        return None

    return walk(tree, "") if tree is not None else None
