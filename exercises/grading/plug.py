"""`train.py --exercises all|NAME,NAME`: train with the learner's code in place of the library's.

Each chosen exercise is graded first. A failing or unstarted one stops the run with one line, unless
`--allow_failing true`: then the failing ones are plugged in all the same (to watch what a wrong gradient does to
the loss) and the unstarted ones are left out, since a blank only raises. What each exercise's grader `plug()`
returns goes into `tinygrad_lite.use_implementations` for the whole run, with the learner's functions and classes
wrapped to count their calls, so the end of the run says how often each exercise's code ran, and which ones the
preset never used.
"""

from __future__ import annotations

import contextlib
import functools
import types

from tinygrad_lite import Function, use_implementations

from .registry import load, select
from .report import NOT_STARTED, PASSING, grade


class ExerciseNotReady(Exception):
    """A chosen exercise does not pass its grader (the message is one line for the command line)."""


def _counted(value, bump):
    """`value` (a Function class or a function) with every use counted by bump()."""
    if isinstance(value, type):
        def __init__(self):
            bump()

        return type(value.__name__, (value,), {"__init__": __init__, "__module__": value.__module__,
                                                "__qualname__": value.__qualname__})

    @functools.wraps(value)
    def call(*args, **kwargs):
        bump()
        return value(*args, **kwargs)

    return call


def count_calls(module, bump) -> None:
    """Wrap the functions and Function classes the learner's module defines, in the module itself, so that what
    runs them (the grader's plug adapters, the learner's own code) is counted; an adapter that falls back to the
    library's code for some calls counts only the others."""
    for name, value in list(vars(module).items()):
        if getattr(value, "__module__", None) != module.__name__:
            continue  # imported, not the learner's
        if isinstance(value, types.FunctionType) or (isinstance(value, type) and issubclass(value, Function)):
            setattr(module, name, _counted(value, bump))


@contextlib.contextmanager
def exercises_in_place(spec: str, allow_failing: bool = False, log=print):
    """Grade the exercises `spec` names, then run the block with their code plugged into the library."""
    if not spec:
        yield None
        return
    results = [grade(ex) for ex in select(spec)]
    ready = [r for r in results if r.status == PASSING or (allow_failing and r.status != NOT_STARTED)]
    for r in results:
        if r not in ready and not allow_failing:
            what = next((line for line in r.lines if not line.startswith(("input:", "(stuck?"))), "")
            raise ExerciseNotReady(f"exercise {r.exercise.name} is {r.status}: {what} (python -m exercises check "
                                   f"{r.exercise.name}; --allow_failing true trains with a failing one anyway)")
    calls = {r.exercise.name: 0 for r in ready}
    overrides = {}
    for r in ready:
        def bump(name=r.exercise.name):
            calls[name] += 1

        module = load(r.exercise.path)
        count_calls(module, bump)
        overrides.update(r.exercise.grader.plug(module))
    skipped = [r.exercise.name for r in results if r not in ready]
    log("your code in place of the library's: " + ", ".join(
        r.exercise.name + ("" if r.status == PASSING else f" ({r.status})") for r in ready)
        + (f"; not started, the library's code runs: {', '.join(skipped)}" if skipped else ""))
    with use_implementations(overrides):
        yield calls
    used = [f"{name} {n:,}" for name, n in calls.items() if n]
    unused = [name for name, n in calls.items() if not n]
    log("calls into your code: " + (", ".join(used) or "none")
        + (f"; not used by this preset: {', '.join(unused)}" if unused else ""))
