"""One run owns its out_dir: a lock file, out_dir/.lock, held with fcntl.flock for the run's whole life.

The file says who holds it, {"pid", "host", "since"}, so that a second run on the same folder can stop with one line
naming the holder instead of writing its checkpoints over the first's. The flock, not the file, is the lock: the
kernel releases it when its process ends in any way, SIGKILL included, so a lock file whose flock can be taken is
stale and is taken over with a notice. So is one whose flock is still held but whose owner, on this host, is dead:
some other process inherited the open file (a fork without exec); the file is then replaced by a fresh one.

Processes this one forks close their inherited copy at once, so that the lock dies with the run and not with the
last of its children. On several MPI ranks, rank 0 alone takes it (training/loop.py). `python train.py sample`
only reads and takes no lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

from .options import OptionError

LOCK_NAME = ".lock"

_held: set[int] = set()  # file descriptors of the locks this process holds (closed in forked children)
_fork_hook = False


def _close_in_child() -> None:
    for fd in _held:
        try:
            os.close(fd)
        except OSError:
            pass
    _held.clear()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _read(fd: int) -> dict:
    try:
        doc = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _describe(owner: dict) -> str:
    return f"pid {owner.get('pid', '?')} on {owner.get('host', '?')}, since {owner.get('since', '?')}"


class OutDirLock:
    """`with OutDirLock(out_dir, log):` creates out_dir if needed and owns it until the block ends; OptionError when
    another live run holds it. On exit the lock file is removed, and so is out_dir if this lock created it and left
    it empty (a run that failed before writing anything leaves nothing behind)."""

    def __init__(self, out_dir: Path, log=print):
        self.out_dir, self.path, self.log = Path(out_dir), Path(out_dir) / LOCK_NAME, log
        self.fd = None
        self.created_dir = False

    def __enter__(self) -> OutDirLock:
        global _fork_hook
        if not self.out_dir.is_dir():
            self.out_dir.mkdir(parents=True)
            self.created_dir = True
        try:
            self.fd = self._acquire()
        except BaseException:
            self._remove_dir_if_empty()
            raise
        if not _fork_hook:
            os.register_at_fork(after_in_child=_close_in_child)
            _fork_hook = True
        _held.add(self.fd)
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, json.dumps(owner).encode(), 0)
        return self

    def _acquire(self) -> int:
        for _ in range(5):  # the file can be replaced between open and flock by a run that ends or takes over
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if not _try_flock(fd):
                owner = _read(fd)
                if owner.get("host") != socket.gethostname() or not isinstance(owner.get("pid"), int) \
                        or _alive(owner["pid"]):
                    os.close(fd)
                    raise OptionError(f"--out_dir {self.out_dir} is in use by another run ({_describe(owner)}; "
                                      f"lock file {self.path}); wait for it to end or choose another --out_dir")
                self.log(f"taking over {self.path}: its run ({_describe(owner)}) is no longer running, but another "
                         "process still holds the file; replacing it")
                if os.fstat(fd).st_ino == _inode(self.path):
                    os.unlink(self.path)
                os.close(fd)
                continue
            if os.fstat(fd).st_ino != _inode(self.path):  # ours is no longer the file at that path: start again
                os.close(fd)
                continue
            owner = _read(fd)
            if owner:
                self.log(f"taking over {self.path}: its run ({_describe(owner)}) is no longer running")
            return fd
        raise OptionError(f"could not lock {self.path}: other runs keep replacing it")

    def __exit__(self, *exc) -> None:
        fd, self.fd = self.fd, None
        if fd is None:
            return
        _held.discard(fd)
        try:
            # Unlink before unlocking: a run waiting on this file then finds it gone and opens a fresh one.
            if os.fstat(fd).st_ino == _inode(self.path):
                os.unlink(self.path)
        finally:
            os.close(fd)
        self._remove_dir_if_empty()

    def _remove_dir_if_empty(self) -> None:
        if self.created_dir:
            try:
                self.out_dir.rmdir()
            except OSError:  # not empty: the run wrote something, or another run has started there
                pass


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None
