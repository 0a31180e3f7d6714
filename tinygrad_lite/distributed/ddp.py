"""Data parallelism: every rank holds the whole model, runs forward and backward on its own share of the batch, and
the ranks add up their gradients, in buckets that start travelling while backward is still running.

The algorithm of PyTorch's DistributedDataParallel (Li et al., "PyTorch Distributed: Experiences on Accelerating
Data Parallel Training", VLDB 2020):

    rank r:  loss_r = w_r * (mean loss of its rows),  backward -> g_r      w_r = rows_r / rows of the global batch
    all:     g = sum_r g_r                                                 (allreduce)

so every rank ends with the gradient of the global batch's mean loss and takes the same optimizer step: the
parameters stay identical without ever being sent. The caller scales each rank's loss by its share w_r (1/N for
equal shares: the mean that torch's DDP takes); here the collective only sums.

Bucketing and overlap. One allreduce per parameter would pay MPI's latency per tensor; one allreduce of everything
after backward would leave the network idle during backward and the cores idle during the allreduce. So the
parameters are laid out, in reverse order (roughly the order backward finishes them), in flat buckets of about
`bucket_mb` megabytes. A post-accumulate-grad hook on each parameter copies its gradient into its bucket; when a
bucket is full it is allreduced with a non-blocking call, and the rest of backward runs meanwhile:

    backward:  [lm_head, ln_f, h.3 ...][h.2 ...][h.1 ...][h.0, wpe, wte]
    network:                 allreduce b0   allreduce b1   allreduce b2  allreduce b3 -> wait()

Buckets start strictly in order, as every rank must issue the same collectives in the same order; a parameter that
got no gradient on this rank (an expert no token was routed to) holds its bucket back until wait(), which sends
zeros for it. A parameter no rank gave a gradient keeps .grad None, as in one process.

Gradient accumulation: micro-steps inside `with ddp.no_sync():` only accumulate locally; the last micro-step's
backward communicates the accumulated sums. After wait() each parameter's .grad is a view into its reduced bucket.

With `shard=True` (ZeRO, zero.py) each bucket is reduce-scattered instead: rank r receives only slice r of the
summed bucket, its shard; the parameters' .grad are left as they were (the local, unreduced gradients).
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager

import numpy as np

ALIGN = 64  # bytes: every rank's slice of a bucket starts on a cache line (see slice_sums)


def _aligned(n: int, dtype) -> np.ndarray:
    itemsize = np.dtype(dtype).itemsize
    raw = np.zeros(n + ALIGN // itemsize, dtype=dtype)
    start = (-raw.ctypes.data % ALIGN) // itemsize
    return raw[start:start + n]


class Bucket:
    """A flat buffer holding the gradients of some parameters, back to back, padded so that it cuts into one equal
    slice per rank, each slice a whole number of cache lines."""

    def __init__(self, params: list, size: int):
        self.params = params
        self.slices, end = [], 0
        for p in params:
            self.slices.append(slice(end, end + p.size))
            end += p.size
        quantum = size * ALIGN // params[0].data.itemsize
        self.numel = -(-end // quantum) * quantum
        self.grad = _aligned(self.numel, params[0].dtype)
        self.shard = _aligned(self.numel // size, params[0].dtype) if size > 1 else self.grad
        self.ready: set = set()  # ids of the parameters whose gradient is in `grad` for this step

    def rank_slice(self, rank: int, size: int) -> slice:
        n = self.numel // size
        return slice(rank * n, (rank + 1) * n)


def slice_sums(arrays) -> float:
    """Sum of squares of some flat float arrays, each by one BLAS dot, added in order.

    Plain data parallelism computes the gradient norm from every rank's slices, ZeRO from the slices each rank
    holds: the same dots of the same aligned slices, added in the same order, give the same norm to the last bit,
    so both clip by the same factor and their parameters stay equal."""
    total = 0.0
    for a in arrays:
        total += float(np.dot(a, a))
    return total


class DataParallel:
    """Sums the gradients of `params` over the ranks of `comm`; see the module docstring.

    `overlap=False` starts every bucket in wait() instead, after backward (the baseline the overlap is measured
    against). `seconds` accumulates the time spent blocked in wait(): communication not hidden behind backward.
    """

    def __init__(self, params, comm, bucket_mb: float = 1.0, overlap: bool = True, shard: bool = False):
        self.params = list(params)
        self.comm, self.overlap, self.shard = comm, overlap, shard
        self.buckets = self._layout(bucket_mb * 2**20)
        self._where = {id(p): (b, s) for b in self.buckets for p, s in zip(b.params, b.slices)}
        self.sync = True
        self.seconds = 0.0
        self._requests: list = []
        self._next = 0  # the first bucket not started this step
        for p in self.params:
            p.register_post_accumulate_grad_hook(self._grad_ready)

    def _layout(self, cap_bytes: float) -> list:
        buckets, current, nbytes = [], [], 0
        for p in reversed(self.params):
            if current and (nbytes + p.data.nbytes > cap_bytes or p.dtype != current[0].dtype):
                buckets.append(Bucket(current, self.comm.size))
                current, nbytes = [], 0
            current.append(p)
            nbytes += p.data.nbytes
        if current:
            buckets.append(Bucket(current, self.comm.size))
        return buckets

    @contextmanager
    def no_sync(self):
        """Backward inside the block accumulates into .grad and sends nothing (gradient-accumulation micro-steps)."""
        self.sync = False
        try:
            yield
        finally:
            self.sync = True

    # ----- during backward

    def _grad_ready(self, p) -> None:
        if not self.sync:
            return
        bucket, where = self._where[id(p)]
        bucket.grad[where] = p.grad.reshape(-1)
        bucket.ready.add(id(p))
        if self.overlap:
            self._start_ready()
            self.comm.poke(self._requests)

    def _start_ready(self) -> None:
        while self._next < len(self.buckets) and len(self.buckets[self._next].ready) == len(
                self.buckets[self._next].params):
            self._start(self.buckets[self._next])

    def _start(self, b: Bucket) -> None:
        if self.shard:
            self._requests.append(self.comm.ireduce_scatter(b.grad, b.shard))
        else:
            self._requests.append(self.comm.iallreduce(b.grad))
        self._next += 1

    # ----- after backward

    def wait(self) -> np.ndarray:
        """Finish every bucket's collective; returns which parameters some rank gave a gradient (bool per param)."""
        t0 = time.perf_counter()
        used = np.array([p.grad is not None for p in self.params], dtype=np.uint8)
        for b in self.buckets[self._next:]:  # parameters backward did not reach this step: their .grad, or zeros
            for p, where in zip(b.params, b.slices):
                if id(p) not in b.ready:
                    b.grad[where] = 0.0 if p.grad is None else p.grad.reshape(-1)
            b.ready.update(id(p) for p in b.params)
        while self._next < len(self.buckets):
            self._start(self.buckets[self._next])
        self.comm.allreduce(used, op="max")
        self.comm.wait(self._requests)
        self._requests, self._next = [], 0
        for b in self.buckets:
            b.ready.clear()
        used = used.astype(bool)
        if not self.shard:
            for p, u in zip(self.params, used):
                b, where = self._where[id(p)]
                p.grad = b.grad[where].reshape(p.shape) if u else None
        self.seconds += time.perf_counter() - t0
        return used

    def clip_grad_norm_(self, max_norm: float, eps: float = 1e-6) -> float:
        """optim.clip_grad_norm_ of the summed gradients (after wait()), added up slice by slice as ZeRO must."""
        size = self.comm.size
        per_rank = [slice_sums(b.grad[b.rank_slice(r, size)] for b in self.buckets) for r in range(size)]
        total = math.sqrt(sum(per_rank))
        coef = float(max_norm) / (total + eps)
        if coef < 1.0:
            for b in self.buckets:
                b.grad *= coef
        return total
