"""The graded exercises (exercises/): every reference solution passes, every blank is "not started", every kept wrong
solution fails with its diagnosis, and the command line and the student handout behave.

Wrong solutions live in tests/exercise_mistakes/NAME.py as edits of the reference solution: (what, text of the
solution, replacement, words the diagnosis must contain), so they follow the solution when it changes, and a
replacement text that is no longer in the solution fails here instead of silently testing nothing.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from exercises.grading.registry import ROOT, all_exercises, find, is_blank
from exercises.grading.report import FAILING, NOT_STARTED, PASSING, grade

PROJECT = ROOT.parent
EXERCISES = all_exercises()
NAMES = [ex.name for ex in EXERCISES]
MISTAKES_DIR = Path(__file__).parent / "exercise_mistakes"


def _mistakes():
    cases = []
    for ex in EXERCISES:
        module = importlib.import_module(f"exercise_mistakes.{ex.name}")
        for what, old, new, diagnosis in module.MISTAKES:
            cases.append(pytest.param(ex, old, new, diagnosis, id=f"{ex.name}: {what}"))
    return cases


def run_cli(*args, cwd=PROJECT, timeout=120):
    env = dict(os.environ, PYTHONPATH=str(cwd))
    return subprocess.run([sys.executable, "-m", "exercises", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_there_are_exercises_each_with_its_files():
    assert len(EXERCISES) >= 2
    for ex in EXERCISES:
        assert ex.path.is_file() and ex.solution.is_file(), ex.name
        assert ex.topic and len(ex.hints) >= 2 and ex.grader.LIBRARY, ex.name
        assert callable(ex.grader.check) and callable(ex.grader.plug), ex.name
    assert [ex.number for ex in EXERCISES] == sorted({ex.number for ex in EXERCISES})  # numbers are unique


@pytest.mark.parametrize("ex", EXERCISES, ids=NAMES)
def test_reference_solution_passes(ex):
    result = grade(ex, ex.solution)
    assert result.status == PASSING, result.text()


@pytest.mark.parametrize("ex", EXERCISES, ids=NAMES)
def test_blank_is_not_started_even_with_a_comment_added(ex, tmp_path):
    assert grade(ex, ex.blank).status == NOT_STARTED
    edited = tmp_path / ex.path.name
    edited.write_text("# my notes\n" + ex.blank.read_text().replace("\nimport ", "\n\n# here goes\nimport ", 1))
    assert is_blank(edited, ex.blank)
    assert grade(ex, edited).status == NOT_STARTED


@pytest.mark.parametrize("ex", EXERCISES, ids=NAMES)
def test_the_committed_exercise_file_is_the_blank(ex):
    if shutil.which("git") is None or not (PROJECT / ".git").exists():
        pytest.skip("not a git checkout")
    rel = ex.path.relative_to(PROJECT).as_posix()
    committed = subprocess.run(["git", "show", f"HEAD:{rel}"], cwd=PROJECT, capture_output=True)
    if committed.returncode:
        pytest.skip(f"{rel} is not committed yet")
    assert committed.stdout == ex.blank.read_bytes()


@pytest.mark.parametrize("ex", EXERCISES, ids=NAMES)
def test_blank_that_only_raises_in_one_part_is_failing_and_names_the_part(ex, tmp_path):
    """A file that differs from the blank but still raises NotImplementedError is failing, naming where."""
    path = tmp_path / ex.path.name
    path.write_text(ex.blank.read_text() + "\nSTARTED = True\n")
    result = grade(ex, path)
    assert result.status == FAILING
    assert "is not written yet" in result.text() and "NotImplementedError" in result.text()
    assert "Traceback" not in result.text()


@pytest.mark.parametrize("ex", EXERCISES, ids=NAMES)
def test_every_exercise_keeps_a_wrong_solution(ex):
    module = importlib.import_module(f"exercise_mistakes.{ex.name}")
    assert len(module.MISTAKES) >= 1


@pytest.mark.parametrize("ex, old, new, diagnosis", _mistakes())
def test_wrong_solution_fails_with_its_diagnosis(ex, old, new, diagnosis, tmp_path):
    source = ex.solution.read_text()
    assert source.count(old) == 1, "the text to replace must occur once in the solution"
    path = tmp_path / ex.path.name
    path.write_text(source.replace(old, new))
    result = grade(ex, path)
    assert result.status == FAILING, f"a wrong solution passes the grader:\n{new}"
    assert diagnosis.lower() in result.text().lower(), result.text()
    assert "Traceback" not in result.text()


def test_exception_in_learner_code_is_one_message_with_its_line(tmp_path):
    ex = find("broadcast")
    path = tmp_path / ex.path.name
    source = ex.solution.read_text().replace("    extra = grad.ndim - len(shape)\n",
                                             "    extra = grad.ndim - len(shape)\n    grad.sum(axis=7)\n")
    path.write_text(source)
    line = source.splitlines().index("    grad.sum(axis=7)") + 1
    text = grade(ex, path).text()
    assert f"{path.name} line {line}, in unbroadcast" in text and "AxisError" in text and "Traceback" not in text
    path.write_text(source.replace("grad.sum(axis=7)", "grad.sum(axis=7"))
    assert "SyntaxError" in grade(ex, path).text()


# ----------------------------------------------------------------------------------------- the command line


@pytest.fixture(scope="module")
def handout(tmp_path_factory):
    dest = tmp_path_factory.mktemp("handout") / "course"
    result = run_cli("handout", str(dest))
    assert result.returncode == 0, result.stderr
    return dest


def test_handout_has_blanks_graders_and_no_solutions(handout):
    assert not (handout / "exercises" / "solutions").exists()
    assert not list(handout.glob("tests/test_exercises*")) and not (handout / "tests" / "exercise_mistakes").exists()
    for ex in EXERCISES:
        assert (handout / "exercises" / ex.path.name).read_bytes() == ex.blank.read_bytes()
        assert (handout / "exercises" / "checks" / f"{ex.name}.py").is_file()
    for package in ("tinygrad_lite", "layers", "models", "training", "tokenizers", "samplers"):
        assert (handout / package / "__init__.py").is_file()
    assert (handout / "train.py").is_file()


def test_check_all_in_a_fresh_copy_reports_every_exercise_not_started(handout):
    result = run_cli("check", "--all", cwd=handout)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    for name in NAMES:
        assert f"{name}: not started" in result.stdout
    assert f"0 passing, 0 failing, {len(NAMES)} not started" in result.stdout


def test_list_and_json(handout):
    result = run_cli("list", cwd=handout)
    assert result.returncode == 0, result.stderr
    for ex in EXERCISES:
        assert f"{ex.number:02d}  {ex.name}" in result.stdout
    rows = json.loads(run_cli("list", "--json", cwd=handout).stdout)
    assert [r["name"] for r in rows] == NAMES
    assert all(r["status"] == "not started" and r["topic"] for r in rows)
    assert {"name", "topic", "status"} <= set(rows[0])


def test_check_names_one_exercise_and_solution_is_absent_from_the_handout(handout):
    result = run_cli("check", "layer_norm", cwd=handout)
    assert result.returncode == 1 and "layer_norm: not started" in result.stdout
    result = run_cli("check", "layer_norm", "--solution", cwd=handout)
    assert result.returncode == 2 and "no reference solution" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_check_solution_passes_in_the_repository():
    result = run_cli("check", "--all", "--solution")
    assert result.returncode == 0, result.stdout
    assert f"{len(NAMES)} passing" in result.stdout


def test_user_mistakes_are_one_line_and_exit_2(handout):
    for args in (["check", "no_such_exercise"], ["frobnicate"], ["check"], ["hint"], ["reset", "--everything"]):
        result = run_cli(*args, cwd=handout)
        assert result.returncode == 2, args
        assert result.stderr.startswith("exercises: error:") and "Traceback" not in result.stderr, args


def test_hints_advance_and_reset_restores_the_blank(handout):
    ex = EXERCISES[0]
    first, second = run_cli("hint", ex.name, cwd=handout), run_cli("hint", ex.name, cwd=handout)
    assert f"hint 1 of {len(ex.hints)}" in first.stdout and ex.hints[0][:40] in first.stdout
    assert f"hint 2 of {len(ex.hints)}" in second.stdout and ex.hints[1][:40] in second.stdout
    progress = handout / "exercises" / ".progress.json"
    assert json.loads(progress.read_text())["hints"][ex.name] == 2
    mine = handout / "exercises" / ex.path.name
    mine.write_text(ex.solution.read_text())
    assert "passing" in run_cli("check", ex.name, cwd=handout).stdout
    result = run_cli("reset", ex.name, cwd=handout)
    assert result.returncode == 0
    assert mine.read_bytes() == ex.blank.read_bytes()
    assert (handout / "exercises" / ".backups" / ex.path.name).read_text() == ex.solution.read_text()
    assert ex.name not in json.loads(progress.read_text())["hints"]
    assert "hint 1 of" in run_cli("hint", ex.name, cwd=handout).stdout


def test_progress_and_backups_are_ignored_by_git():
    if shutil.which("git") is None or not (PROJECT / ".git").exists():
        pytest.skip("not a git checkout")
    for path in ("exercises/.progress.json", "exercises/.backups/03_broadcast.py"):
        assert subprocess.run(["git", "check-ignore", "-q", path], cwd=PROJECT).returncode == 0, path
