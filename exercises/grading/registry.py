"""Which exercises exist, where their files are, and how a learner's file is loaded and told apart from the blank.

An exercise NAME with number NN is four files with the same stem:

    exercises/NN_NAME.py            the file the learner edits
    exercises/blanks/NN_NAME.py     its pristine copy (what `reset` restores; the list of exercises is this folder)
    exercises/checks/NAME.py        the grader: TOPIC, HINTS, check(module), plug(module)
    exercises/solutions/NN_NAME.py  the reference solution (absent from a handout)
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import itertools
import re
import sys
import tokenize
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]  # the exercises/ folder
_STEM = re.compile(r"^(\d\d)_([a-z][a-z0-9_]*)$")
_loads = itertools.count()


class UnknownExercise(ValueError):
    """A name on the command line that is no exercise (the message lists the names)."""


@dataclass(frozen=True)
class Exercise:
    number: int
    name: str
    root: Path = ROOT

    @property
    def stem(self) -> str:
        return f"{self.number:02d}_{self.name}"

    @property
    def path(self) -> Path:
        return self.root / f"{self.stem}.py"

    @property
    def blank(self) -> Path:
        return self.root / "blanks" / f"{self.stem}.py"

    @property
    def solution(self) -> Path:
        return self.root / "solutions" / f"{self.stem}.py"

    @property
    def grader(self) -> ModuleType:
        return importlib.import_module(f"exercises.checks.{self.name}")

    @property
    def topic(self) -> str:
        return self.grader.TOPIC

    @property
    def hints(self) -> list[str]:
        return list(self.grader.HINTS)


def all_exercises(root: Path = ROOT) -> list[Exercise]:
    """Every exercise, in order of its number (the order data flows through a language model)."""
    found = []
    for blank in sorted((root / "blanks").glob("[0-9][0-9]_*.py")):
        m = _STEM.match(blank.stem)
        if m:
            found.append(Exercise(int(m.group(1)), m.group(2), root))
    return sorted(found, key=lambda e: e.number)


def find(name: str, root: Path = ROOT) -> Exercise:
    """An exercise by its name ("layer_norm"), its file stem ("04_layer_norm", with or without .py) or number."""
    key = name.strip().removesuffix(".py").rsplit("/", 1)[-1]
    for ex in all_exercises(root):
        if key in (ex.name, ex.stem) or (key.isdigit() and int(key) == ex.number):
            return ex
    names = ", ".join(ex.name for ex in all_exercises(root))
    raise UnknownExercise(f"no exercise named {name!r}; the exercises are: {names}")


def select(spec: str, root: Path = ROOT) -> list[Exercise]:
    """`all`, or a comma-separated list of names, in the order of the exercises, each once."""
    if spec.strip() == "all":
        return all_exercises(root)
    chosen = {find(part, root) for part in spec.split(",") if part.strip()}
    if not chosen:
        raise UnknownExercise("no exercise named (give `all` or a comma-separated list of names)")
    return sorted(chosen, key=lambda e: e.number)


def code_tokens(path: Path) -> list | None:
    """The file's Python tokens without comments and blank lines (None if it does not tokenize), so that a blank with
    a comment added or lines re-spaced still counts as not started."""
    try:
        tokens = tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline)
        skip = (tokenize.COMMENT, tokenize.NL)
        return [(t.type, t.string) for t in tokens if t.type not in skip]
    except (OSError, SyntaxError, tokenize.TokenError, UnicodeDecodeError):
        return None


def is_blank(path: Path, blank: Path) -> bool:
    mine = code_tokens(path)
    return mine is not None and mine == code_tokens(blank)


def load(path: Path) -> ModuleType:
    """Execute a learner's (or a solution's) file as a fresh module; exceptions propagate to the grader."""
    name = f"exercises._loaded_{next(_loads)}_{path.stem.lstrip('0123456789_')}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # classes defined in it (dataclasses, Function subclasses) can find their module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
