"""tinygrad_lite.distributed: data parallelism over MPI ranks (the extra `mpi`: mpi4py and an MPI library).

    comm.py   the ranks of the job and the collectives, over mpi4py (imported only when a run asks for MPI)
    ddp.py    data parallelism: gradients summed over the ranks in buckets, overlapped with backward
    zero.py   ZeRO stage 1: AdamW with its moments sharded over the ranks

The core never imports this package; importing it loads no library and starts no thread. docs/distributed.md
explains each strategy against this code; training/ranks.py is how train.py uses it.
"""

from .comm import INSTALL, Comm, DistributedError, launched, world
from .ddp import DataParallel
from .zero import ZeroAdamW

__all__ = ["INSTALL", "Comm", "DataParallel", "DistributedError", "ZeroAdamW", "launched", "world"]
