"""`python train.py --exercises`: a handout whose exercises hold the reference solutions trains the default preset
with the learner's code in place of the library's; an exercise that fails its grader stops the run in one line,
unless --allow_failing true."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from exercises.grading.handout import write_handout
from exercises.grading.registry import all_exercises

EXERCISES = all_exercises()
SHORT = ["--max_iters", "30", "--lr_decay_iters", "30", "--warmup_iters", "5", "--eval_interval", "30",
         "--log_interval", "10"]


def train(root: Path, *args, timeout=600):
    env = dict(os.environ, PYTHONPATH=str(root))
    return subprocess.run([sys.executable, "train.py", *args], cwd=root, capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture(scope="module")
def solved(tmp_path_factory):
    """A handout with every exercise completed by its reference solution."""
    root = tmp_path_factory.mktemp("solved") / "course"
    write_handout(root)
    for ex in EXERCISES:
        (root / "exercises" / ex.path.name).write_text(ex.solution.read_text())
    return root


def accuracy(out_dir: Path) -> float:
    rows = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    return rows[-1]["accuracy"]


def test_short_run_with_every_exercise_in_place(solved, tmp_path):
    result = train(solved, "--exercises", "all", *SHORT, "--out_dir", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    log = result.stdout
    assert "your code in place of the library's: " + ", ".join(ex.name for ex in EXERCISES) in log
    assert "reference path" in log  # the learner's primitive backward passes run
    calls = log.split("calls into your code: ")[1].splitlines()[0]
    for name in ("broadcast", "layer_norm"):
        assert f"{name} " in calls.split(";")[0], calls  # called, with a count
    assert (tmp_path / "out" / "metrics.jsonl").is_file()


def test_a_failing_exercise_stops_the_run_in_one_line_unless_allowed(solved, tmp_path):
    mine = solved / "exercises" / "04_layer_norm.py"
    right = mine.read_text()
    try:
        mine.write_text(right.replace("dx = self.rstd * (dxhat - dxhat.mean(axis=-1, keepdims=True)\n"
                                      "                          - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))",
                                      "dx = self.rstd * dxhat"))
        result = train(solved, "--exercises", "broadcast,layer_norm", *SHORT, "--out_dir", str(tmp_path / "a"))
        assert result.returncode == 2
        assert result.stderr.startswith("train.py: error: exercise layer_norm is failing: dx is wrong")
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
        assert not (tmp_path / "a").exists()  # nothing written
        result = train(solved, "--exercises", "layer_norm", "--allow_failing", "true", *SHORT,
                       "--out_dir", str(tmp_path / "b"))
        assert result.returncode == 0, result.stderr
        assert "layer_norm (failing)" in result.stdout
    finally:
        mine.write_text(right)


def test_blanks_stop_the_run_and_allow_failing_leaves_them_out(solved, tmp_path):
    mine = solved / "exercises" / "03_broadcast.py"
    right = mine.read_text()
    try:
        mine.write_text((solved / "exercises" / "blanks" / "03_broadcast.py").read_text())
        result = train(solved, "--exercises", "all", *SHORT, "--out_dir", str(tmp_path / "a"))
        assert result.returncode == 2 and "exercise broadcast is not started" in result.stderr
        result = train(solved, "--exercises", "all", "--allow_failing", "true", *SHORT, "--out_dir",
                       str(tmp_path / "b"))
        assert result.returncode == 0, result.stderr
        assert "not started, the library's code runs: broadcast" in result.stdout
    finally:
        mine.write_text(right)


def test_bad_exercise_options_are_one_line(solved):
    for args in (["--exercises", "no_such"], ["--allow_failing", "true"]):
        result = train(solved, *args)
        assert result.returncode == 2 and result.stderr.startswith("train.py: error:"), args
    assert "--exercises" in train(solved, "--help").stdout


@pytest.mark.slow
def test_default_preset_reaches_the_library_accuracy_with_the_learner_code(solved, tmp_path):
    library = train(solved, "--out_dir", str(tmp_path / "library"), timeout=1800)
    assert library.returncode == 0, library.stderr
    mine = train(solved, "--exercises", "all", "--out_dir", str(tmp_path / "mine"), timeout=3600)
    assert mine.returncode == 0, mine.stderr
    a_library, a_mine = accuracy(tmp_path / "library"), accuracy(tmp_path / "mine")
    print(f"held-out accuracy: library {a_library:.3f}, exercises {a_mine:.3f}")
    assert a_library >= 0.99 and a_mine >= 0.99 and abs(a_library - a_mine) <= 0.01
