"""The ranks of an MPI job and the few collectives data parallelism needs, as a thin layer over mpi4py.

MPI (the Message Passing Interface) starts N copies of one program, the ranks 0 ... N-1, on one machine or many
(`mpiexec -n N python train.py`, with a hostfile for several hosts), and gives them collectives: calls that every
rank makes in the same order and that combine or move arrays between all of them. Data parallelism needs four:

    allreduce        every rank ends with the elementwise sum of every rank's array       (plain data parallelism)
    reduce-scatter   rank r ends with the sum of slice r of every rank's array            (ZeRO: its shard of grads)
    allgather        every rank ends with every rank's slice, concatenated                (ZeRO: the updated params)
    barrier          nobody goes on until everybody has arrived

The i-versions (iallreduce, ...) start a collective and return a request at once; the arrays must not be touched
until the request is complete (wait). MPICH moves a started collective forward only while the rank is inside some
MPI call, unless it runs an asynchronous progress thread (MPIR_CVAR_ASYNC_PROGRESS=1), so `poke` lets the caller
give it a moment between two pieces of its own work. Arrays travel as raw buffers, never pickled.

mpi4py is imported only by `world()`, so importing this module loads no library and starts no thread.
"""

from __future__ import annotations

import os
import time

import numpy as np

INSTALL = 'pip install -e ".[mpi]"'

# What the common launchers put in each rank's environment: MPICH's and Intel MPI's hydra (PMI_*), Open MPI.
_ENV = (("PMI_RANK", "PMI_SIZE"), ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"))


class DistributedError(RuntimeError):
    """MPI is missing, or the ranks disagree about something they must share."""


def launched() -> tuple[int, int]:
    """(rank, size) as the launcher's environment says, without starting MPI; (0, 1) outside mpiexec."""
    for rank, size in _ENV:
        if size in os.environ:
            return int(os.environ.get(rank, "0")), int(os.environ[size])
    return 0, 1


def world() -> Comm:
    """The job's communicator (MPI_COMM_WORLD); MPI starts here, on the first call."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise DistributedError(f"data parallelism needs mpi4py and an MPI library ({e}): {INSTALL}") from None
    return Comm(MPI.COMM_WORLD, MPI)


class Comm:
    """A communicator: this rank's number, the number of ranks, and the collectives on NumPy arrays."""

    def __init__(self, comm, mpi):
        self.comm, self.MPI = comm, mpi
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self._local = None

    @property
    def local_size(self) -> int:
        """Ranks on this machine (they share its cores)."""
        if self._local is None:
            node = self.comm.Split_type(self.MPI.COMM_TYPE_SHARED)
            self._local = node.Get_size()
            node.Free()
        return self._local

    # ----- blocking collectives: in place, every rank calls them in the same order

    def allreduce(self, array: np.ndarray, op: str = "sum") -> np.ndarray:
        self.comm.Allreduce(self.MPI.IN_PLACE, array, op=getattr(self.MPI, op.upper()))
        return array

    def allgather(self, array: np.ndarray) -> np.ndarray:
        """Rank r's contribution is slice r of `array` (size must divide len(array)); every rank gets all slices."""
        self.comm.Allgather(self.MPI.IN_PLACE, array)
        return array

    def gather(self, send: np.ndarray, recv: np.ndarray | None, root: int = 0) -> np.ndarray | None:
        """Every rank's `send` (same length) concatenated into `recv` on `root` (None elsewhere)."""
        self.comm.Gather(send, recv if self.rank == root else None, root=root)
        return recv if self.rank == root else None

    def allgather_values(self, values) -> np.ndarray:
        """(size, k) float64: every rank's k numbers (losses, checksums) on every rank."""
        mine = np.asarray(values, dtype=np.float64).reshape(-1)
        out = np.empty((self.size, mine.size), dtype=np.float64)
        self.comm.Allgather(mine, out)
        return out

    def idle_barrier(self, poll: float = 0.002) -> None:
        """A barrier that sleeps while it waits: a rank waiting for rank 0 to evaluate or write a checkpoint leaves
        its core to others instead of spinning on it, as MPICH's blocking calls do."""
        request = self.comm.Ibarrier()
        while not request.Test():
            time.sleep(poll)

    # ----- non-blocking collectives: start now, wait before touching the arrays

    def iallreduce(self, array: np.ndarray):
        return self.comm.Iallreduce(self.MPI.IN_PLACE, array, op=self.MPI.SUM)

    def ireduce_scatter(self, send: np.ndarray, recv: np.ndarray):
        """recv (len(send) / size elements) <- sum over ranks of slice `rank` of send."""
        return self.comm.Ireduce_scatter_block(send, recv, op=self.MPI.SUM)

    def iallgather(self, array: np.ndarray):
        return self.comm.Iallgather(self.MPI.IN_PLACE, array)

    def poke(self, requests: list) -> None:
        """Let MPI progress the started collectives (see the module docstring); returns at once."""
        if requests:
            self.MPI.Request.Testall(requests)

    def wait(self, requests: list) -> None:
        if requests:
            self.MPI.Request.Waitall(requests)

    def abort(self, code: int = 1) -> None:
        """End every rank of the job now (MPI_Abort): the way out when one rank fails and the others may be
        blocked in a collective that will never complete."""
        self.comm.Abort(code)
