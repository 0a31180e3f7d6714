"""ZeRO stage 1: AdamW whose moments are split over the ranks, so each rank keeps 1/N of the optimizer state.

Rajbhandari et al., "ZeRO: Memory Optimizations Toward Training Trillion Parameter Models" (SC 2020). Plain data
parallelism keeps on every rank the parameters (4 bytes each in float32), the gradients (4) and AdamW's two moments
(8): 16 bytes per parameter, all of it N times over. Stage 1 (P_os) partitions the optimizer state:

    gradients    reduce-scatter: rank r receives slice r of the summed gradients         (the same bytes as the
    update       rank r runs AdamW on slice r only, with the moments of slice r           allreduce of plain data
    parameters   allgather: every rank receives every updated slice                       parallelism: reduce-scatter
                                                                                          + allgather = allreduce)

Memory per rank: 4 + 4 + 8/N bytes per parameter. Stage 2 (P_os+g) would also free the gradients outside the
rank's slice once reduced, stage 3 (P_os+g+p) the parameters too, gathered layer by layer for each forward and
backward (docs/distributed.md). The slices are those of the gradient buckets (ddp.py): every bucket is cut into N
equal slices, and rank r owns slice r of each, so communication still overlaps backward bucket by bucket.

A slice may start or end inside a parameter, and AdamW is elementwise, so rank r updates *pieces*: flat views into
the parameters and their reduced gradients, each in the weight-decay group of its parameter, stepped by the
project's own AdamW. Each element goes through exactly the arithmetic of plain data parallelism, so the parameters
after a step are the same. The model's parameters become views into the flat buckets, so the allgather writes
straight into them.

`state_dict()` (every rank calls it) gathers the moments onto rank 0 in the layout of an unsharded AdamW over the
same parameter groups, and `load_state_dict` takes that layout on any number of ranks: a checkpoint does not
depend on N.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..optim import AdamW
from ..tensor import Tensor
from .ddp import DataParallel, slice_sums


class Piece(NamedTuple):
    """The part of one parameter inside this rank's slice of a bucket."""

    tensor: Tensor      # a flat view into the parameter, stepped by AdamW
    param: int          # the parameter's index (in the groups' order)
    bucket: int         # its bucket
    start: int          # where the piece starts in this rank's slice of the bucket
    offset: int         # where it starts in the flattened parameter
    grad: np.ndarray    # its reduced gradient: a view into the bucket's shard


class ZeroAdamW:
    """AdamW over `param_groups` (as for optim.AdamW) with its state sharded over the ranks of `comm`.

    Per step: backward (the buckets reduce-scatter as in ddp.py), `wait()`, optionally `clip_grad_norm_`, `step()`,
    `zero_grad()`. `param_groups` may be edited between steps (the learning rate), as any optimizer's. `layout`:
    the parameters in the model's order, which the buckets follow as ddp.DataParallel's do (backward finishes them
    roughly in reverse); the default, the groups' order, would hold the first bucket back until backward's end.
    """

    def __init__(self, param_groups, comm, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 bucket_mb: float = 1.0, overlap: bool = True, layout=None):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
        self.param_groups = [dict(defaults, **{k: v for k, v in g.items() if k != "params"}, params=list(g["params"]))
                             for g in param_groups]
        self.params = [p for g in self.param_groups for p in g["params"]]
        self.comm = comm
        layout = self.params if layout is None else list(layout)
        if {id(p) for p in layout} != {id(p) for p in self.params} or len(layout) != len(self.params):
            raise ValueError("ZeroAdamW: layout must list the parameters of the groups, each once")
        self.reducer = DataParallel(layout, comm, bucket_mb, overlap, shard=True)
        index = {id(p): i for i, p in enumerate(self.params)}
        group_of = {id(p): k for k, g in enumerate(self.param_groups) for p in g["params"]}
        self.pieces: list[Piece] = []
        by_group = [[] for _ in self.param_groups]
        for k, b in enumerate(self.reducer.buckets):
            b.param = np.zeros(b.numel, dtype=b.grad.dtype)  # the parameters, laid out as their gradients
            n = b.numel // comm.size
            lo = comm.rank * n  # this rank's slice of the bucket is [lo, lo + n)
            for p, where in zip(b.params, b.slices):
                b.param[where] = p.data.reshape(-1)
                p.data = b.param[where].reshape(p.shape)  # the allgather writes into the model's parameters
                a, c = max(lo, where.start), min(lo + n, where.stop)
                if a < c:
                    piece = Tensor(b.param[a:c], requires_grad=True)
                    self.pieces.append(Piece(piece, index[id(p)], k, a - lo, a - where.start, b.shard[a - lo:c - lo]))
                    by_group[group_of[id(p)]].append(piece)
        self._group_ids = [k for k, pieces in enumerate(by_group) if pieces]
        self._opt = AdamW([{"params": by_group[k]} for k in self._group_ids]) if self.pieces else None
        self._used = np.ones(len(self.params), dtype=bool)

    def state_bytes(self) -> int:
        """Bytes of AdamW moments this rank holds (after the first step)."""
        return sum(2 * q.tensor.data.nbytes for q in self.pieces)

    # ----- a step

    def no_sync(self):
        """Backward inside the block only accumulates locally (gradient-accumulation micro-steps)."""
        return self.reducer.no_sync()

    def wait(self) -> None:
        """Finish the reduce-scatter of every bucket (after the last micro-step's backward)."""
        self._used = self.reducer.wait()
        for q in self.pieces:
            q.tensor.grad = q.grad if self._used[q.param] else None  # no rank gave a gradient: not stepped

    def clip_grad_norm_(self, max_norm: float, eps: float = 1e-6) -> float:
        """optim.clip_grad_norm_ over the whole model: each rank's sum of squares, then their sum in rank order
        (ddp.slice_sums: the same bits as plain data parallelism's norm)."""
        mine = slice_sums(b.shard for b in self.reducer.buckets)
        total = math.sqrt(sum(self.comm.allgather_values([mine])[:, 0].tolist()))
        coef = float(max_norm) / (total + eps)
        if coef < 1.0:
            for b in self.reducer.buckets:
                b.shard *= coef
        return total

    def step(self) -> None:
        """AdamW on this rank's pieces, then every rank receives every updated slice."""
        if self._opt is not None:
            for g, k in zip(self._opt.param_groups, self._group_ids):
                g.update({key: v for key, v in self.param_groups[k].items() if key != "params"})
            self._opt.step()
        self.comm.wait([self.comm.iallgather(b.param) for b in self.reducer.buckets])

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    # ----- checkpoints: the layout of an unsharded AdamW over the same groups

    def state_dict(self) -> dict | None:
        """optim.AdamW.state_dict() of the whole model, on rank 0 (None elsewhere). Every rank must call it."""
        state = self._opt.state if self._opt is not None else {}
        steps = np.zeros(len(self.params))
        for q in self.pieces:
            if q.tensor in state:
                steps[q.param] = state[q.tensor]["step"]
        self.comm.allreduce(steps, op="max")  # a parameter's pieces may all live on other ranks
        root = self.comm.rank == 0
        moments = {i: {} for i in range(len(self.params)) if steps[i] > 0}
        for k, b in enumerate(self.reducer.buckets):
            for key in ("exp_avg", "exp_avg_sq"):
                mine = np.zeros(b.numel // self.comm.size, dtype=b.param.dtype)
                for q in self.pieces:
                    if q.bucket == k and q.tensor in state:
                        mine[q.start:q.start + q.tensor.size] = state[q.tensor][key]
                flat = self.comm.gather(mine, np.empty(b.numel, dtype=mine.dtype) if root else None)
                if root:
                    index = {id(p): i for i, p in enumerate(self.params)}
                    for p, where in zip(b.params, b.slices):
                        if index[id(p)] in moments:
                            moments[index[id(p)]][key] = flat[where].reshape(p.shape)
        if not root:
            return None
        groups, start = [], 0
        for g in self.param_groups:
            groups.append(dict({k: v for k, v in g.items() if k != "params"},
                               params=list(range(start, start + len(g["params"])))))
            start += len(g["params"])
        return {"state": {i: dict(m, step=int(steps[i])) for i, m in moments.items()}, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Take this rank's pieces of an unsharded AdamW state (saved on any number of ranks), checked first."""
        check = AdamW([{"params": [Tensor(np.zeros(p.shape, p.dtype), requires_grad=True) for p in g["params"]]}
                       for g in self.param_groups])
        check.load_state_dict(state_dict)  # the checks of an unsharded AdamW: groups, counts, keys, shapes
        for g, saved in zip(self.param_groups, check.param_groups):
            g.update({k: v for k, v in saved.items() if k != "params"})
        full = [check.state.get(p) for g in check.param_groups for p in g["params"]]
        if self._opt is None:
            return
        self._opt.state = {}
        for q in self.pieces:
            saved, n = full[q.param], q.tensor.size
            if saved is not None:
                self._opt.state[q.tensor] = dict(step=saved["step"], **{
                    key: saved[key].reshape(-1)[q.offset:q.offset + n].copy() for key in ("exp_avg", "exp_avg_sq")})
