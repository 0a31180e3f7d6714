"""train.py on several MPI ranks, started with the extra's mpiexec: the losses of one process, ZeRO-1's parameters
equal to plain data parallelism's, resuming on another number of ranks, and a failing rank ending the job.

Every test here skips, saying why, unless mpi4py and an mpiexec are installed (`pip install -e ".[mpi]"`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tinygrad_lite.serialization import load_safetensors
from training.ranks import find_mpiexec

REPO = Path(__file__).resolve().parents[1]
TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n" * 40
MPIEXEC = find_mpiexec()


def _mpi_missing() -> str:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return 'mpi4py is not installed (pip install -e ".[mpi]")'
    return "" if MPIEXEC else 'no mpiexec beside this Python or on PATH (pip install -e ".[mpi]")'


pytestmark = pytest.mark.skipif(bool(_mpi_missing()), reason=_mpi_missing() or "MPI is installed")

# nanoGPT's CPU config (benchmarks/train_step.py's "small"), 20 iterations on a short text
SMALL = ["--preset", "shakespeare_char", "--max_iters", "20", "--eval_interval", "10", "--eval_iters", "2",
         "--log_interval", "1", "--warmup_iters", "5", "--lr_decay_iters", "20"]
TINY = ["--n_layer", "1", "--n_head", "2", "--n_embd", "16", "--batch_size", "12", "--eval_iters", "3",
        "--log_interval", "1", "--max_iters", "12", "--eval_interval", "6"]

# A rank that misbehaves on cue (FAULT=raise|setup|drift, FAULT_RANK=r), then train.py as usual.
WRAPPER = """
import os, sys
sys.path.insert(0, {repo!r})
from training import presets
build = presets.build_task
rank = os.environ.get("PMI_RANK") == os.environ["FAULT_RANK"]
fault = os.environ["FAULT"]
def patched(opts, log=print):
    if rank and fault == "setup":
        from training.options import OptionError
        raise OptionError("this rank cannot read its data")
    task = build(opts, log)
    if rank and fault == "drift":
        task.model.parameters()[0].data[0] += 1e-3
    loss, calls = task.loss, [0]
    def failing(batch):
        calls[0] += 1
        if rank and fault == "raise" and calls[0] == 8:
            raise ValueError("marked batch")
        return loss(batch)
    task.loss = failing
    return task
presets.build_task = patched
if fault == "pid":
    print(f"rank {{os.environ['PMI_RANK']}} pid {{os.getpid()}}", flush=True)
import train
sys.exit(train.main(sys.argv[1:]))
"""


def train(ranks: int, args: list, out: Path, timeout: float = 300, script=None, env=None):
    """train.py (or a wrapper) on `ranks` ranks (1: a plain process); returns the CompletedProcess."""
    cmd = [sys.executable, str(script or REPO / "train.py"), *args, "--out_dir", str(out)]
    if ranks > 1:
        cmd = [MPIEXEC, "-n", str(ranks), *cmd]
    # One BLAS thread in the one-process runs too (the ranks set theirs): the 2-core test machine is shared.
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, OPENBLAS_NUM_THREADS="1", **(env or {})))


def losses(stdout: str) -> dict:
    return {int(i): float(v) for i, v in re.findall(r"^iter (\d+): loss ([\d.]+)", stdout, flags=re.M)}


def metrics(out: Path) -> list:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def weights(out: Path) -> dict:
    return {k: v for k, v in load_safetensors(out / "training_state.safetensors").items() if k.startswith("model.")}


def assert_same_trajectory(a: Path, b: Path, log_a: str, log_b: str, rel: float) -> None:
    la, lb = losses(log_a), losses(log_b)
    assert la.keys() == lb.keys() and la
    for i in la:
        assert la[i] == pytest.approx(lb[i], rel=rel), (i, la[i], lb[i])
    for ra, rb in zip(metrics(a), metrics(b), strict=True):
        assert ra["iter"] == rb["iter"]
        for key in ("train_loss", "val_loss"):
            assert ra[key] == pytest.approx(rb[key], rel=rel), (ra, rb)


@pytest.fixture(scope="module")
def text(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "text.txt"
    path.write_text(TEXT)
    return path


@pytest.fixture(scope="module")
def one_process(text, tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "out"
    r = train(1, [*SMALL, "--data", str(text)], out)
    assert r.returncode == 0, r.stderr
    return out, r.stdout


@pytest.mark.parametrize("ranks, extra", [(2, []), (3, []), (2, ["--gradient_accumulation_steps", "2"])])
def test_losses_do_not_depend_on_the_ranks(text, tmp_path, one_process, ranks, extra):
    """20 iterations of the small config: batch rows split over 2 and 3 ranks (the default, no accumulation), and
    nanoGPT's rule (2 micro-batches shared by 2 ranks) give one process's losses on the same global batch."""
    out = tmp_path / "out"
    r = train(ranks, [*SMALL, "--data", str(text), *extra], out)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].endswith(f"data parallel over {ranks} MPI ranks")
    if extra:  # the same global batch in one process: 2 micro-batches of 12 rows
        base = tmp_path / "one"
        b = train(1, [*SMALL, "--data", str(text), *extra], base)
        assert b.returncode == 0, b.stderr
        assert_same_trajectory(base, out, b.stdout, r.stdout, rel=1e-4)
    else:
        assert_same_trajectory(one_process[0], out, one_process[1], r.stdout, rel=1e-4)
    assert sum(line.startswith("step ") for line in r.stdout.splitlines()) == 3  # rank 0 alone logs


@pytest.mark.parametrize("ranks", [2, 3])
def test_zero1_gives_the_parameters_of_plain_data_parallelism(tmp_path, ranks):
    plain, zero = tmp_path / "plain", tmp_path / "zero"
    a = train(ranks, TINY, plain)
    b = train(ranks, [*TINY, "--zero", "1"], zero)
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    assert "ZeRO-1: AdamW moments" in b.stdout
    wa, wb = weights(plain), weights(zero)
    assert wa.keys() == wb.keys()
    for k in wa:
        np.testing.assert_allclose(wb[k], wa[k], rtol=0, atol=1e-6, err_msg=k)
    # The gathered optimizer state is an unsharded AdamW's: the same arrays as plain data parallelism's.
    sa = load_safetensors(plain / "training_state.safetensors")
    sb = load_safetensors(zero / "training_state.safetensors")
    assert sa.keys() == sb.keys() and any(k.startswith("optim.") for k in sa)
    for k in sa:
        np.testing.assert_allclose(sb[k], sa[k], rtol=0, atol=1e-6, err_msg=k)


def test_resume_a_two_rank_zero_checkpoint_on_one_and_on_three_ranks(tmp_path):
    """A ZeRO run on 2 ranks stopped at iteration 6 continues on 1 process and on 3 ranks along the trajectory of
    the uninterrupted 2-rank run."""
    full, part = tmp_path / "full", tmp_path / "part"
    f = train(2, TINY, full)
    p = train(2, [*TINY, "--zero", "1", "--max_iters", "6"], part)
    assert f.returncode == 0 and p.returncode == 0, f.stderr + p.stderr
    for ranks in (1, 3):
        out = tmp_path / f"resumed-{ranks}"
        shutil.copytree(part, out)
        r = train(ranks, [*TINY, "--resume"], out)
        assert r.returncode == 0, r.stderr
        assert f"resumed from {out} at iteration 6" in r.stdout
        resumed, uninterrupted = losses(r.stdout), losses(f.stdout)
        assert sorted(resumed) == list(range(7, 13))
        for i in resumed:
            assert resumed[i] == pytest.approx(uninterrupted[i], rel=1e-4), (ranks, i)
        for a, b in zip(metrics(out), metrics(full), strict=True):
            assert a["iter"] == b["iter"] and a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-4)


def _wrapper(tmp_path: Path) -> Path:
    path = tmp_path / "rank_with_a_fault.py"
    path.write_text(WRAPPER.format(repo=str(REPO)))
    return path


def test_a_rank_that_raises_ends_the_job_naming_its_rank(tmp_path):
    t0 = time.monotonic()
    r = train(2, [*TINY, "--max_iters", "100000", "--eval_interval", "100000"], tmp_path / "out", timeout=60,
              script=_wrapper(tmp_path), env={"FAULT": "raise", "FAULT_RANK": "1"})
    assert time.monotonic() - t0 < 30
    assert r.returncode != 0
    assert "train.py: rank 1 of 2 failed: ValueError: marked batch" in r.stderr, r.stderr


def test_a_rank_killed_from_outside_ends_the_job(tmp_path):
    cmd = [MPIEXEC, "-n", "2", sys.executable, str(_wrapper(tmp_path)), *TINY, "--max_iters", "100000",
           "--eval_interval", "100000", "--out_dir", str(tmp_path / "out")]
    job = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=dict(os.environ, FAULT="pid", FAULT_RANK="-"))
    try:
        pids, iterating, deadline = {}, False, time.monotonic() + 60
        while len(pids) < 2 or not iterating:  # both ranks started and training
            line = job.stdout.readline()
            assert line and time.monotonic() < deadline, "the job did not start iterating"
            if m := re.match(r"rank (\d+) pid (\d+)", line):
                pids[int(m[1])] = int(m[2])
            iterating = iterating or line.startswith("iter ")
        os.kill(pids[1], signal.SIGKILL)
        t0 = time.monotonic()
        job.wait(timeout=30)
        assert time.monotonic() - t0 < 30 and job.returncode != 0
    finally:
        if job.poll() is None:
            job.kill()
        job.communicate()


def test_a_setup_mistake_on_one_rank_ends_every_rank_with_one_line(tmp_path):
    r = train(2, TINY, tmp_path / "out", timeout=60, script=_wrapper(tmp_path),
              env={"FAULT": "setup", "FAULT_RANK": "1"})
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines == ["train.py: error on rank 1: this rank cannot read its data"], r.stderr


def test_ranks_whose_parameters_differ_stop_at_the_first_evaluation(tmp_path):
    r = train(2, TINY, tmp_path / "out", timeout=60, script=_wrapper(tmp_path),
              env={"FAULT": "drift", "FAULT_RANK": "1"})
    assert r.returncode != 0
    assert "the ranks' parameters differ at iteration 0" in r.stderr, r.stderr


def test_ranks_option_starts_mpiexec_itself(tmp_path):
    """`python train.py --ranks 2`: the same run as `mpiexec -n 2 python train.py`; a count that contradicts
    mpiexec's is a one-line error."""
    r = train(1, [*TINY, "--ranks", "2", "--max_iters", "2", "--eval_interval", "2"], tmp_path / "a")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].endswith("data parallel over 2 MPI ranks")
    r = train(2, [*TINY, "--ranks", "3"], tmp_path / "b")
    assert r.returncode == 2 and r.stderr.strip() == "train.py: error: --ranks 3, but mpiexec started 2 ranks"
