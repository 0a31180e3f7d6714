"""train.py on N ranks: how the work of an iteration is divided, what the ranks agree on, and how a job ends.

    mpiexec -n 4 python train.py --preset shakespeare_char      # 4 ranks (add -f hostfile for several machines)
    python train.py --ranks 4 --preset shakespeare_char         # the same: train.py starts mpiexec itself

Every rank builds the same model from the same seed and draws the same training batches from the same generator;
each computes the gradient of its part of the iteration (tinygrad_lite.distributed sums them), and all take the same
optimizer step. An iteration's work is divided so that its global batch is what the options say, whatever N is:

- nanoGPT's rule where it applies: if N divides gradient_accumulation_steps (A), the ranks share the micro-batches,
  A / N each, every micro-batch of batch_size rows;
- otherwise (A = 1, the presets' default) each micro-batch's rows are split between the ranks, a contiguous share
  each, its loss weighted by its share of the rows. This needs batch_size >= N.

Either way the gradient is the mean over the same rows as in one process, so the losses do not depend on N beyond
float32 rounding (tested to 1e-4). Exceptions: dropout masks and MoE router noise are drawn per rank (from the
stream (seed, 1, iteration, rank), so a run repeats and resumes exactly on the same N), and MoE's load-balancing
loss is each rank's own, as in PyTorch's DistributedDataParallel.

Rank 0 alone logs, evaluates the held-out metric, writes metrics and checkpoints; the val/train loss estimate is
split between the ranks (each evaluates every N-th batch), its mean taken in batch order as one process takes it.
A checksum of the parameters is compared at every evaluation: ranks that drifted apart stop the run.

Failure: the ranks agree once, after setup, that every one of them is ready; a user mistake found before that
(a missing file, a bad checkpoint) ends every rank with the one-line error and status 2. Any error after it makes
the failing rank print its rank and the error and call MPI_Abort, which ends the whole job at once: no rank is left
waiting in a collective for one that is gone. A rank killed from outside ends the job too (mpiexec sees it die).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import traceback
import zlib
from pathlib import Path

import numpy as np

from tinygrad_lite.distributed.comm import INSTALL

from .options import OptionError


def find_mpiexec() -> str | None:
    """The mpiexec beside this Python (a virtual environment's, from the mpich wheel), else the one on PATH."""
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.is_file() and os.access(here, os.X_OK) else shutil.which("mpiexec")


def relaunch(argv: list[str], ranks: int) -> int:
    """`python train.py --ranks N ...` outside mpiexec: run `mpiexec -n N python train.py ...` and return its
    status. mpiexec runs in a session of its own, so a Ctrl-C at the terminal reaches this process alone, which
    passes it to mpiexec, which passes it to the ranks: they stop together and save the training state. (Had the
    terminal's SIGINT reached mpiexec's helper processes too, they would end the job before the save.)"""
    try:
        import mpi4py  # noqa: F401  (the package only; MPI itself starts in the ranks)
    except ImportError:
        raise OptionError(f"--ranks {ranks} needs MPI (mpi4py and an MPI library): {INSTALL}") from None
    mpiexec = find_mpiexec()
    if mpiexec is None:
        raise OptionError(f"--ranks {ranks}: no mpiexec beside {sys.executable} or on PATH; {INSTALL} installs one")
    import signal

    cmd = [mpiexec, "-n", str(ranks), sys.executable, str(Path(__file__).resolve().parents[1] / "train.py"), *argv]
    job = subprocess.Popen(cmd, start_new_session=True)
    forward = {s: signal.signal(s, lambda signum, frame: job.send_signal(signum))
               for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return job.wait()
    finally:
        for s, previous in forward.items():
            signal.signal(s, previous)


class SetupFailed(Exception):
    """Another rank could not set up (and said why): this one stops too, with status 2."""


class World:
    """This process's place in the job: rank, size, the communicator (None in one process) and the job's rules."""

    def __init__(self, comm=None):
        self.comm = comm
        self.rank, self.size = (comm.rank, comm.size) if comm is not None else (0, 1)
        self.main = self.rank == 0
        self.agreed = comm is None

    @classmethod
    def start(cls, opts) -> World:
        """The world this process runs in: MPI's when mpiexec started it with several ranks, else one process."""
        from tinygrad_lite.distributed import DistributedError, launched, world

        _, size = launched()
        if opts.ranks and size > 1 and opts.ranks != size:
            raise OptionError(f"--ranks {opts.ranks}, but mpiexec started {size} ranks")
        if size <= 1:
            if opts.zero:
                raise OptionError("--zero 1 shards AdamW's state over MPI ranks: use it with --ranks N (N > 1)")
            return cls()
        try:
            comm = world()
        except DistributedError:
            raise OptionError(f"mpiexec started {size} ranks, but this Python has no mpi4py: {INSTALL}") from None
        from tinygrad_lite.fast.blas import set_blas_threads

        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        set_blas_threads(max(1, cores // comm.local_size))  # the ranks on a machine share its cores
        return cls(comm)

    def describe(self) -> str:
        if self.size == 1:
            return "one process (--ranks N: data parallelism over N MPI ranks)"
        return f"data parallel over {self.size} MPI ranks"

    def log(self, *args, **kwargs) -> None:
        if self.main:
            print(*args, **kwargs, flush=True)

    # ----- the division of an iteration's work

    def work(self, opts) -> list[tuple[int, slice, float]]:
        """(micro-batch index, rows, loss weight) for each micro-batch this rank computes in an iteration."""
        a, b, n, r = opts.gradient_accumulation_steps, opts.batch_size, self.size, self.rank
        if n == 1:
            return [(i, slice(None), 1.0 / a) for i in range(a)]
        if a % n == 0:
            return [(i, slice(None), 1.0 / a) for i in range(r * a // n, (r + 1) * a // n)]
        if b < n:
            raise OptionError(f"batch_size ({b}) must be at least the number of ranks ({n}) unless "
                              f"gradient_accumulation_steps ({a}) is a multiple of it")
        rows = slice(b * r // n, b * (r + 1) // n)
        return [(i, rows, (rows.stop - rows.start) / b / a) for i in range(a)]

    def seed_dropout(self, gen: np.random.Generator, seed: int, iteration: int) -> None:
        """Each rank's masks from a stream of its own: (seed, 1, iteration, rank)."""
        if self.size > 1:
            gen.bit_generator.state = np.random.default_rng([seed, 1, iteration, self.rank]).bit_generator.state

    # ----- what the ranks share

    def agree(self, ok: bool) -> list[int]:
        """Every rank calls this once, when its setup is done or has failed: the ranks that failed (none: go)."""
        self.agreed = True
        if self.comm is None:
            return [] if ok else [0]
        flags = self.comm.allgather_values([0.0 if ok else 1.0])[:, 0]
        return [r for r in range(self.size) if flags[r]]

    def sum_and_any(self, value: float, flag: bool) -> tuple[float, bool]:
        """The sum of every rank's `value` and whether any rank raised `flag` (Ctrl-C): one small allreduce."""
        if self.comm is None:
            return value, flag
        out = self.comm.allreduce(np.array([value, float(flag)]))
        return float(out[0]), bool(out[1] > 0)

    def mean_in_order(self, values_of_mine: list, count: int) -> float:
        """Rank r holds the values of items r, r + N, ...: their mean over all `count` items, added in item order."""
        if self.comm is None:
            return float(np.mean(values_of_mine))
        per = -(-count // self.size)
        mine = values_of_mine + [np.nan] * (per - len(values_of_mine))
        table = self.comm.allgather_values(mine)  # (ranks, per)
        return float(np.mean([table[i % self.size, i // self.size] for i in range(count)]))

    def check_same_parameters(self, model, iteration: int) -> None:
        """Stop the run if the ranks' parameters differ (a CRC-32 of every parameter's bytes)."""
        if self.comm is None:
            return
        crc = 0
        for p in model.parameters():
            crc = zlib.crc32(np.ascontiguousarray(p.data).view(np.uint8), crc)
        table = self.comm.allgather_values([crc])[:, 0].astype(np.int64)
        if (table != table[0]).any():
            raise RuntimeError(f"the ranks' parameters differ at iteration {iteration} (CRC-32 per rank: "
                               f"{', '.join(f'{c:08x}' for c in table)}): the run is stopped")

    def wait_for_main(self) -> None:
        """Ranks other than 0 sleep (instead of spinning) while rank 0 evaluates and writes its files."""
        if self.comm is not None:
            self.comm.idle_barrier()

    # ----- the end of a job

    def fail(self, error: BaseException) -> None:
        """An error on this rank after setup: say which rank and what, then end every rank of the job."""
        head = f"train.py: rank {self.rank} of {self.size} failed: {type(error).__name__}: {error}"
        print("".join(traceback.format_exception(error)) + head + " (ending the job with MPI_Abort)",
              file=sys.stderr, flush=True)
        time.sleep(0.5)  # mpiexec forwards a rank's output through a pipe: let the message out before the abort
        self.comm.abort(1)
        os._exit(1)  # MPICH may return from MPI_Abort in the calling rank while mpiexec ends the others
