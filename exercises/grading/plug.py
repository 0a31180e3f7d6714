"""`train.py --exercises all|NAME,NAME`: train with the learner's code in place of the library's.

Each chosen exercise is graded first. A failing or unstarted one stops the run with one line, unless
`--allow_failing true`: then the failing ones are plugged in all the same (to watch what a wrong gradient does to
the loss) and the unstarted ones are left out, since a blank only raises. What each exercise's grader `plug()`
returns goes into `tinygrad_lite.use_implementations` for the whole run, every implementation wrapped to count its
calls, so the end of the run says how often each exercise's code ran, and which ones the preset never used.
"""

from __future__ import annotations

import contextlib

from tinygrad_lite import Function, use_implementations

from .registry import load, select
from .report import NOT_STARTED, PASSING, grade


class ExerciseNotReady(Exception):
    """A chosen exercise does not pass its grader (the message is one line for the command line)."""


def _counted(value, bump):
    """`value` (a Function class or a callable) with every use counted by bump()."""
    if isinstance(value, type) and issubclass(value, Function):
        def __init__(self):
            bump()

        return type(value.__name__, (value,), {"__init__": __init__, "__module__": value.__module__,
                                                "__qualname__": value.__qualname__})

    def call(*args, **kwargs):
        bump()
        return value(*args, **kwargs)

    return call


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

        for key, value in r.exercise.grader.plug(load(r.exercise.path)).items():
            overrides[key] = _counted(value, bump)
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
