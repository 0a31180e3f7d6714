"""The command line: python -m exercises list|check|hint|reset|handout.

    list [--json]                 every exercise: number, name, status, topic (--json: name, topic, status, ...)
    check NAME [NAME ...] | --all [--solution]
                                  grade; exit status 0 only when every graded exercise passes
    hint NAME                     the next hint (the count is kept in exercises/.progress.json)
    reset NAME | --all            restore the blank (the current file is kept in exercises/.backups/)
    handout DIR                   a copy of the project for students: blanks, graders, no solutions

A mistake on the command line prints one line and exits with status 2.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from .registry import ROOT, UnknownExercise, all_exercises, find
from .report import PASSING, grade

PROGRESS = ROOT / ".progress.json"
BACKUPS = ROOT / ".backups"

USAGE = """usage: python -m exercises list [--json]
       python -m exercises check NAME [NAME ...] | --all [--solution]
       python -m exercises hint NAME
       python -m exercises reset NAME | --all
       python -m exercises handout DIR"""


class UsageError(Exception):
    pass


def _read_progress() -> dict:
    try:
        data = json.loads(PROGRESS.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_progress(data: dict) -> None:
    tmp = PROGRESS.with_name(PROGRESS.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, PROGRESS)


def cmd_list(args: list[str]) -> int:
    as_json = "--json" in args
    rest = [a for a in args if a != "--json"]
    if rest:
        raise UsageError(f"list: unexpected argument {rest[0]!r}")
    rows = []
    for ex in all_exercises():
        rows.append({"number": ex.number, "name": ex.name, "topic": ex.topic, "status": grade(ex).status,
                     "file": f"exercises/{ex.path.name}"})
    if as_json:
        print(json.dumps(rows, indent=1))
        return 0
    width = max([len(r["name"]) for r in rows] + [8])
    print(f"{'#':>2}  {'exercise':{width}}  {'status':11}  topic")
    for r in rows:
        print(f"{r['number']:02d}  {r['name']:{width}}  {r['status']:11}  {r['topic']}")
    counts = {s: sum(r["status"] == s for r in rows) for s in ("passing", "failing", "not started")}
    print(f"\n{counts['passing']} passing, {counts['failing']} failing, {counts['not started']} not started. "
          "Grade one: python -m exercises check NAME")
    return 0


def cmd_check(args: list[str]) -> int:
    solution = "--solution" in args
    every = "--all" in args
    names = [a for a in args if a not in ("--solution", "--all")]
    bad = [a for a in names if a.startswith("-")]
    if bad:
        raise UsageError(f"check: unknown option {bad[0]}")
    if every == bool(names):
        raise UsageError("check: give exercise names or --all")
    exercises = all_exercises() if every else [find(n) for n in names]
    results = []
    for ex in exercises:
        if solution and not ex.solution.is_file():
            raise UsageError(f"no reference solution for {ex.name} in this copy ({ex.solution} is absent: a handout "
                             "has none)")
        result = grade(ex, ex.solution if solution else None)
        results.append(result)
        print(result.text())
    if len(results) > 1:
        counts = {s: sum(r.status == s for r in results) for s in ("passing", "failing", "not started")}
        print(f"\n{counts['passing']} passing, {counts['failing']} failing, {counts['not started']} not started")
    return 0 if all(r.status == PASSING for r in results) else 1


def cmd_hint(args: list[str]) -> int:
    if len(args) != 1:
        raise UsageError("hint: give one exercise name")
    ex = find(args[0])
    hints = ex.hints
    progress = _read_progress()
    shown = progress.setdefault("hints", {})
    n = int(shown.get(ex.name, 0))
    if n >= len(hints):
        print(f"{ex.name}: all {len(hints)} hints shown. Again from the first one: python -m exercises hint "
              f"{ex.name} after `reset` (which also restores the blank), or read the library's version: "
              f"{ex.grader.LIBRARY}")
        return 0
    print(f"{ex.name}, hint {n + 1} of {len(hints)}:\n{hints[n]}")
    shown[ex.name] = n + 1
    _write_progress(progress)
    return 0


def cmd_reset(args: list[str]) -> int:
    if args == ["--all"]:
        exercises = all_exercises()
    elif len(args) == 1 and not args[0].startswith("-"):
        exercises = [find(args[0])]
    else:
        raise UsageError("reset: give one exercise name, or --all")
    progress = _read_progress()
    for ex in exercises:
        if ex.path.is_file() and ex.path.read_bytes() != ex.blank.read_bytes():
            BACKUPS.mkdir(exist_ok=True)
            shutil.copyfile(ex.path, BACKUPS / ex.path.name)
            print(f"{ex.name}: your version is kept in {BACKUPS.relative_to(ROOT.parent) / ex.path.name}")
        shutil.copyfile(ex.blank, ex.path)
        progress.get("hints", {}).pop(ex.name, None)
        print(f"{ex.name}: {ex.path.relative_to(ROOT.parent)} is the blank again; hints start from the first")
    _write_progress(progress)
    return 0


def cmd_handout(args: list[str]) -> int:
    from .handout import HandoutError, write_handout

    if len(args) != 1 or args[0].startswith("-"):
        raise UsageError("handout: give the folder to write (it must not exist, or be empty)")
    try:
        n = write_handout(Path(args[0]))
    except HandoutError as e:
        raise UsageError(str(e)) from None
    print(f"wrote {n} files to {args[0]}: the project with every exercise blank, the graders, no solutions. "
          f"Students start with: cd {args[0]} && python -m exercises list")
    return 0


COMMANDS = {"list": cmd_list, "check": cmd_check, "hint": cmd_hint, "reset": cmd_reset, "handout": cmd_handout}


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0 if argv else 2
    command = COMMANDS.get(argv[0])
    try:
        if command is None:
            raise UsageError(f"unknown command {argv[0]!r}\n{USAGE}")
        return command(argv[1:])
    except (UsageError, UnknownExercise) as e:
        print(f"exercises: error: {e}", file=sys.stderr)
        return 2
