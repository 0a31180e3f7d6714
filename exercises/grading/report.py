"""Grade one exercise: not started, failing (with what is wrong, in words) or passing; never a traceback.

An exception in the learner's code becomes one message with the line of the learner's file it came from; an error
the library raised about what the learner's code returned (a gradient of the wrong shape, say) is shown as the
library worded it, with the input that was being checked.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .helpers import Failure
from .registry import Exercise, is_blank, load

NOT_STARTED, FAILING, PASSING = "not started", "failing", "passing"


@dataclass
class Result:
    exercise: Exercise
    status: str
    lines: list = field(default_factory=list)  # what is wrong and where, for failing; the summary otherwise
    seconds: float = 0.0

    @property
    def passing(self) -> bool:
        return self.status == PASSING

    def text(self) -> str:
        took = f" (graded in {self.seconds * 1000:.0f} ms)" if self.passing else ""
        head = f"{self.exercise.name}: {self.status}{took}"
        return "\n".join([head] + ["  " + line for line in self.lines])


def _same_file(a: str, b: Path) -> bool:
    try:
        return Path(a).resolve() == b.resolve()
    except (OSError, ValueError):
        return False


def _tracebacks(exc: BaseException):
    tb = exc.__traceback__
    while tb is not None:
        yield tb
        tb = tb.tb_next


def describe(exc: BaseException, path: Path) -> list[str]:
    """One or two lines for an exception raised while grading the file at `path`."""
    if isinstance(exc, SyntaxError) and exc.filename and _same_file(exc.filename, path):
        return [f"{path.name} line {exc.lineno}: {type(exc).__name__}: {exc.msg}"]
    frames = [(f, tb.tb_frame.f_code) for f, tb in zip(traceback.extract_tb(exc.__traceback__), _tracebacks(exc))
              if _same_file(f.filename, path)]
    message = str(exc).strip() or "(no message)"
    if not frames:  # raised by the library about what the learner's code returned, or by numpy inside it
        return [f"{type(exc).__name__}: {message}"]
    last, code = frames[-1]
    name = getattr(code, "co_qualname", last.name)  # Add.backward rather than backward (Python 3.11+)
    where = f"{path.name} line {last.lineno}, in {name}"
    if isinstance(exc, NotImplementedError):
        return [f"{name} is not written yet: {path.name} line {last.lineno} still raises NotImplementedError"]
    if isinstance(exc, RecursionError):
        return [f"RecursionError at {where}: the recursion is too deep for Python; use a loop with an explicit stack"]
    lines = [f"your code raised {type(exc).__name__}: {message}", f"at {where}: {last.line}"]
    if "could not be broadcast" in message:
        lines.append("shapes that do not broadcast: a reduction without keepdims=True, or a transposed operand?")
    return lines


def grade(exercise: Exercise, path: Path | None = None) -> Result:
    """Grade the learner's file (or `path`, e.g. the solution) with the exercise's grader."""
    path = exercise.path if path is None else Path(path)
    start = time.perf_counter()
    if not path.is_file():
        return Result(exercise, FAILING, [f"{path} is missing: `python -m exercises reset {exercise.name}` "
                                          "writes the blank again"])
    if path != exercise.solution and exercise.blank.is_file() and is_blank(path, exercise.blank):
        return Result(exercise, NOT_STARTED, [f"open {path.name} and replace each `raise NotImplementedError`"])
    try:
        # Overflow in a learner's exp shows up as inf or nan in the comparison, with its diagnosis, not as warnings
        with np.errstate(all="ignore"):
            exercise.grader.check(load(path))
    except Failure as f:
        lines = ([f"input: {f.case}"] if f.case else []) + f.lines
        return Result(exercise, FAILING, lines + [_hint_line(exercise)], time.perf_counter() - start)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:
        case = getattr(e, "case", None)
        lines = ([f"input: {case}"] if case else []) + describe(e, path)
        return Result(exercise, FAILING, lines + [_hint_line(exercise)], time.perf_counter() - start)
    return Result(exercise, PASSING, [], time.perf_counter() - start)


def _hint_line(exercise: Exercise) -> str:
    return f"(stuck? `python -m exercises hint {exercise.name}`)"
