"""A run owns its out_dir (training/lock.py): a second run on it stops with one line naming the holder, a stale lock
is taken over with a notice, --resume after SIGKILL works, and `train.py sample` needs no lock."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from training.lock import LOCK_NAME, OutDirLock
from training.options import OptionError

REPO = Path(__file__).resolve().parents[1]
TINY = ["--n_layer", "1", "--n_head", "2", "--n_embd", "16", "--batch_size", "8", "--eval_iters", "2"]


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def write_owner(path: Path, pid: int, host: str | None = None) -> None:
    path.write_text(json.dumps({"pid": pid, "host": host or socket.gethostname(), "since": "2026-01-02 03:04:05"}))


def test_lock_file_names_its_owner_and_goes_away(tmp_path):
    out = tmp_path / "out"
    with OutDirLock(out, log=pytest.fail):
        owner = json.loads((out / LOCK_NAME).read_text())
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname() and owner["since"]
    assert not out.exists()  # created by the lock and left empty: removed with it


def test_held_lock_refuses_with_the_holder(tmp_path):
    with OutDirLock(tmp_path, log=pytest.fail):
        with pytest.raises(OptionError, match=rf"in use by another run \(pid {os.getpid()} on "
                                              rf"{socket.gethostname()}, since "):
            with OutDirLock(tmp_path, log=pytest.fail):
                pass
        assert (tmp_path / LOCK_NAME).is_file()  # the refused run took nothing away


def test_stale_lock_file_is_taken_over_with_a_notice(tmp_path):
    pid = dead_pid()
    write_owner(tmp_path / LOCK_NAME, pid)
    notices = []
    with OutDirLock(tmp_path, log=notices.append):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert len(notices) == 1 and f"pid {pid} on {socket.gethostname()}, since 2026-01-02 03:04:05" in notices[0]
    assert "no longer running" in notices[0]
    assert tmp_path.is_dir() and not (tmp_path / LOCK_NAME).exists()  # a folder it did not create stays


def test_lock_held_open_by_another_process_of_a_dead_owner_is_replaced(tmp_path):
    """The flock is held (some process inherited the open file), but the owner named in it is dead on this host."""
    path = tmp_path / LOCK_NAME
    write_owner(path, dead_pid())
    inheritor = os.open(path, os.O_RDWR)
    fcntl.flock(inheritor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        notices = []
        with OutDirLock(tmp_path, log=notices.append):
            assert os.stat(path).st_ino != os.fstat(inheritor).st_ino  # a fresh file, locked by us
            assert json.loads(path.read_text())["pid"] == os.getpid()
        assert len(notices) == 1 and "still holds the file" in notices[0]
    finally:
        os.close(inheritor)


def test_live_owner_on_another_host_is_not_taken_over(tmp_path):
    path = tmp_path / LOCK_NAME
    write_owner(path, dead_pid(), host="some-other-host")
    holder = os.open(path, os.O_RDWR)
    fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        with pytest.raises(OptionError, match="on some-other-host, since 2026-01-02 03:04:05"):
            with OutDirLock(tmp_path, log=pytest.fail):
                pass
    finally:
        os.close(holder)


def test_forked_children_do_not_keep_the_lock(tmp_path):
    with OutDirLock(tmp_path, log=pytest.fail) as lock:
        pid = os.fork()
        if pid == 0:  # the child: its copy of the lock's descriptor must be closed already
            try:
                os.fstat(lock.fd)
            except OSError:
                os._exit(0)
            os._exit(1)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def test_two_runs_one_out_dir_and_resume_after_sigkill(tmp_path):
    """Real processes: a run holds out_dir; a second exits 2 naming it; `sample` reads meanwhile; after kill -9 of
    the first (its data-parallel workers included, if any), --resume takes the lock over and continues."""
    out = tmp_path / "out"
    common = ["--eval_interval", "5", "--log_interval", "5", "--out_dir", str(out), *TINY]
    log = (tmp_path / "first.log").open("w")
    first = subprocess.Popen([sys.executable, str(REPO / "train.py"), "--max_iters", "100000", *common], cwd=REPO,
                             stdout=log, stderr=subprocess.STDOUT)
    workers = []
    try:
        deadline = time.time() + 60
        while time.time() < deadline:  # a lock, and a saved state past iteration 0
            state = out / "training_state.json"
            if (out / LOCK_NAME).is_file() and state.is_file() and json.loads(state.read_text())["iter"] >= 5:
                break
            assert first.poll() is None, (tmp_path / "first.log").read_text()
            time.sleep(0.1)
        else:
            pytest.fail("the first run saved no training state within 60 s")
        workers = _children(first.pid)

        second = subprocess.run([sys.executable, str(REPO / "train.py"), "--max_iters", "10", *common], cwd=REPO,
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 2, second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in second.stderr, second.stderr
        assert f"pid {first.pid} on {socket.gethostname()}, since " in lines[0] and "in use" in lines[0]

        sample = subprocess.run([sys.executable, str(REPO / "train.py"), "sample", "--out_dir", str(out),
                                 "--prompt", "12+34"], cwd=REPO, capture_output=True, text=True, timeout=60)
        assert sample.returncode == 0 and sample.stdout.startswith("12 + 34 = "), sample.stderr

        first.kill()  # SIGKILL: no chance to clean up; the kernel drops its flock
        first.wait(timeout=30)
        saved = json.loads((out / "training_state.json").read_text())["iter"]
        third = subprocess.run([sys.executable, str(REPO / "train.py"), "--resume", "--max_iters", str(saved + 5),
                                *common], cwd=REPO, capture_output=True, text=True, timeout=60)
        assert third.returncode == 0, third.stderr
        notice = [line for line in third.stdout.splitlines() if line.startswith("taking over")]
        assert len(notice) == 1 and f"pid {first.pid} on {socket.gethostname()}" in notice[0], third.stdout
        assert "still holds" not in notice[0]  # the workers forked by the first run did not keep the lock
        assert f"resumed from {out} at iteration {saved}" in third.stdout
        rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        assert rows[-1]["iter"] == saved + 5
        assert not (out / LOCK_NAME).exists()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        log.close()
        for pid in workers:  # a data-parallel worker may outlive its killed parent
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
