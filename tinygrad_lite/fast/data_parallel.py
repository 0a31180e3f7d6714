"""Data parallelism over processes: each batch split between this process and forked workers, like PyTorch's
DistributedDataParallel on one machine, without the GIL in the way.

Threads inside one process would split one op at a time, and every NumPy call takes the GIL for its Python part:
two threads each making thousands of small calls wait for each other. Processes do not share a GIL. So here each of
P processes runs the whole forward and backward on its share of the batch, its BLAS on its own share of the cores,
and only the gradients meet:

    batch (N rows) -> shares n_0 ... n_{P-1}    process r: loss_r = loss_fn(share r), backward -> g_r
    loss = sum_r (n_r / N) loss_r,   grad = sum_r (n_r / N) g_r

which is the gradient of the mean loss over the whole batch, because each loss_r is a mean over its n_r rows.

- The parameters live in shared memory (an anonymous shared mmap made before the workers are forked), so the
  optimizer, which runs in this process only, updates them in place for every worker at once. Nothing but the
  batch shares and the losses travels between processes; each worker writes its gradients into a shared buffer.
- Process 0 is this one: it computes its own share while the workers compute theirs.
- Dropout: before each step this process draws one seed from each random generator of the model, and worker r
  reseeds its copies from (seed, r); masks differ between shares and a run is reproducible (and resumable) from
  this process's generators alone.
- Workers are forked (Linux; macOS and Windows lack a safe fork), so they start with the model, the loss function
  and everything they refer to, with nothing serialised. They ignore Ctrl-C (this process decides) and exit when
  this process closes them or dies.

Use it as a context manager, or call close():

    with DataParallel(model, lambda batch: model(*batch)[1], processes=2) as dp:
        for batch in batches:
            loss = dp.step(batch)          # gradients are in p.grad, as after loss.backward()
            clip_grad_norm_(model.parameters(), 1.0); optimizer.step(); optimizer.zero_grad()
"""

from __future__ import annotations

import json
import mmap
import multiprocessing
import os
import signal
import struct
import sys
import time
import traceback

import numpy as np

from .blas import blas_threads, set_blas_threads
from ..module import Module

_ALIGN = 64  # bytes: every parameter starts on a cache line of the shared buffers


class DataParallelError(RuntimeError):
    """A worker failed (its error is in the message), or the workers are gone."""


class _Gone(Exception):
    """A worker's pipe broke: it died, or was stopped."""


def available() -> bool:
    """Whether this platform can fork workers safely (Linux and other Unixes but macOS)."""
    return "fork" in multiprocessing.get_all_start_methods() and sys.platform != "darwin"


def _layout(params) -> tuple[list[int], int]:
    offsets, end = [], 0
    for p in params:
        offsets.append(end)
        end += -(-p.data.nbytes // _ALIGN) * _ALIGN
    return offsets, max(end, _ALIGN)


def _views(buf, params, offsets) -> list[np.ndarray]:
    return [np.frombuffer(buf, dtype=p.dtype, count=p.size, offset=o).reshape(p.shape) for p, o in zip(params, offsets)]


def _generators(model: Module) -> list[np.random.Generator]:
    """The distinct random generators the model's modules hold (dropout masks, router noise), in module order."""
    seen, out = set(), []
    for m in model.modules():
        for value in vars(m).values():
            if isinstance(value, np.random.Generator) and id(value) not in seen:
                seen.add(id(value))
                out.append(value)
    return out


def _reseed(gen: np.random.Generator, seed: int, rank: int) -> None:
    gen.bit_generator.state = type(gen.bit_generator)(np.random.SeedSequence([seed, rank])).state


def _arrays_of(batch) -> list[np.ndarray]:
    arrays = [batch] if isinstance(batch, np.ndarray) else list(batch) if isinstance(batch, (tuple, list)) else []
    if not arrays or any(not isinstance(a, np.ndarray) or a.ndim == 0 for a in arrays):
        raise TypeError("DataParallel.step: the batch must be an array or a tuple of arrays, rows along axis 0")
    if any(len(a) != len(arrays[0]) for a in arrays):
        raise ValueError(f"DataParallel.step: the batch's arrays differ in rows: {[a.shape for a in arrays]}")
    if len(arrays[0]) == 0:
        raise ValueError("DataParallel.step: the batch is empty")
    return arrays


# ----------------------------------------------------------------------------------------- messages (no pickle)


def _pack(header: dict, arrays: list[np.ndarray] = ()) -> bytes:
    header = dict(header, arrays=[[a.dtype.str, list(a.shape)] for a in arrays])
    head = json.dumps(header).encode()
    return struct.pack("<I", len(head)) + head + b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)


def _unpack(message: bytes) -> tuple[dict, list[np.ndarray]]:
    (size,) = struct.unpack_from("<I", message)
    header = json.loads(message[4:4 + size])
    arrays, at = [], 4 + size
    for dtype, shape in header.pop("arrays"):
        a = np.frombuffer(message, dtype=dtype, count=int(np.prod(shape)), offset=at).reshape(shape)
        arrays.append(a)
        at += a.nbytes
    return header, arrays


def _split(n: int, parts: int) -> list:
    """Contiguous slices covering range(n) in `parts` nearly equal pieces (empty ones dropped)."""
    bounds = [n * i // parts for i in range(parts + 1)]
    return [slice(bounds[i], bounds[i + 1]) for i in range(parts) if bounds[i + 1] > bounds[i]]


class DataParallel:
    """Forward and backward of each batch split across `processes` processes; see the module docstring.

    `loss_fn(share)` returns the mean loss (a scalar Tensor) of a share of the batch: an array if the batch is one,
    else a tuple of arrays (a list arrives as a tuple), each cut along axis 0. `threads` is each process's thread
    count while it computes its share (default: the cores divided among the processes).
    """

    def __init__(self, model: Module, loss_fn, processes: int = 2, threads: int | None = None):
        if not isinstance(processes, int) or processes < 1:
            raise ValueError(f"DataParallel: processes must be an integer >= 1, got {processes!r}")
        if processes > 1 and not available():
            raise DataParallelError("DataParallel needs fork (Linux): it is not available on this platform")
        self.model, self.loss_fn, self.processes = model, loss_fn, processes
        self.threads = threads or max(1, (os.cpu_count() or 1) // processes)
        self.params = model.parameters()
        offsets, size = _layout(self.params)
        # Parameters move into shared memory: mmap(-1, ...) is anonymous and MAP_SHARED, so forked children write
        # and read the very same pages. The views keep the mapping alive as long as any parameter uses them.
        self._param_buf = mmap.mmap(-1, size)
        for p, view in zip(self.params, _views(self._param_buf, self.params, offsets)):
            view[...] = p.data
            p.data = view
        self._shared = [p.data for p in self.params]
        self._grad_views = [_views(mmap.mmap(-1, size), self.params, offsets) for _ in range(processes - 1)]
        self._generators = _generators(model)
        self._conns, self._workers = [], []
        ctx = multiprocessing.get_context("fork") if processes > 1 else None
        for rank in range(1, processes):
            mine, theirs = ctx.Pipe()
            worker = ctx.Process(target=self._serve, args=(rank, theirs), daemon=True,
                                 name=f"tinygrad_lite-dp-{rank}")
            worker.start()
            theirs.close()
            self._conns.append(mine)
            self._workers.append(worker)
        self.closed = False
        # Seconds the last step spent handing out the shares and on this process's forward (with its loss), on its
        # backward, waiting for the workers' answers after that, and averaging the gradients
        # (benchmarks/step_parts.py reports them).
        self.timings = {"forward": 0.0, "backward": 0.0, "wait": 0.0, "average": 0.0}

    # ----- this process

    def step(self, batch, scale: float = 1.0) -> float:
        """Loss and gradients of `batch`: p.grad += scale * d(mean loss)/dp for every parameter (as
        `(loss * scale).backward()` would do); returns the mean loss (unscaled) as a float."""
        if self.closed:
            raise DataParallelError(f"DataParallel.step after close(){self._reason}")
        for p, shared in zip(self.params, self._shared):
            if p.data is not shared:
                raise DataParallelError("DataParallel: a parameter's array was replaced after the workers started "
                                        "(assign into p.data[...] instead, or create DataParallel afterwards)")
        arrays = _arrays_of(batch)
        try:
            return self._step(arrays, isinstance(batch, np.ndarray), scale)
        except BaseException as e:
            if not isinstance(e, Exception) or isinstance(e, _Gone):
                # Ctrl-C, or a worker gone, may leave a message unanswered: these workers cannot be trusted again.
                self.close(reason=str(e) if isinstance(e, _Gone) else f"interrupted by {type(e).__name__}")
            if isinstance(e, _Gone):
                raise DataParallelError(str(e)) from None
            raise

    def _step(self, arrays: list, single: bool, scale: float) -> float:
        clock = [time.perf_counter()]
        n = len(arrays[0])
        parts = _split(n, self.processes)
        fractions = [(s.stop - s.start) / n for s in parts]
        seeds = [int(g.integers(2**63)) for g in self._generators]
        for rank, part in enumerate(parts[1:], start=1):
            self._send(rank, {"op": "step", "seeds": seeds, "single": single}, [a[part] for a in arrays])
        before = [p.grad for p in self.params]  # gradients of earlier steps (accumulation), added back at the end
        for p in self.params:
            p.grad = None
        errors, losses = [], [0.0] * len(parts)
        try:
            with blas_threads(self.threads):
                loss = self.loss_fn(arrays[0][parts[0]] if single else tuple(a[parts[0]] for a in arrays))
                clock.append(time.perf_counter())
                loss.backward()
            losses[0] = float(loss.item())
            clock.append(time.perf_counter())
        except Exception as e:  # the workers' answers must still be read, or the next step would get them
            errors.append(e)
        has_grad = {}  # rank -> which parameters that worker sent a gradient for
        for rank in range(1, len(parts)):
            try:
                reply = self._receive(rank)
                losses[rank], has_grad[rank] = reply["loss"], reply["has_grad"]
            except (DataParallelError, _Gone) as e:  # read the others' replies all the same
                errors.append(e)
        if errors:
            for p, g in zip(self.params, before):
                p.grad = g
            raise errors[0]
        clock.append(time.perf_counter())
        weights = [scale * f for f in fractions]
        for i, p in enumerate(self.params):
            g = p.grad
            if g is not None:
                g *= weights[0]
            for rank in range(1, len(parts)):
                if has_grad[rank][i]:
                    shared = self._grad_views[rank - 1][i]
                    if g is None:
                        g = shared * weights[rank]
                    else:
                        g += weights[rank] * shared
            if before[i] is not None and g is not None:
                g += before[i]
            p.grad = before[i] if g is None else g
        clock.append(time.perf_counter())
        self.timings = dict(zip(("forward", "backward", "wait", "average"), np.diff(clock).tolist()))
        return sum(f * v for f, v in zip(fractions, losses))

    def _send(self, rank: int, header: dict, arrays=()) -> None:
        try:
            self._conns[rank - 1].send_bytes(_pack(header, list(arrays)))
        except (OSError, EOFError):
            raise _Gone(f"data-parallel worker {rank} is gone (exit code {self._workers[rank - 1].exitcode})") from None

    def _receive(self, rank: int) -> dict:
        try:
            reply, _ = _unpack(self._conns[rank - 1].recv_bytes())
        except (OSError, EOFError):
            raise _Gone(f"data-parallel worker {rank} is gone (exit code {self._workers[rank - 1].exitcode})") from None
        if "error" in reply:
            raise DataParallelError(f"data-parallel worker {rank}: {reply['error']}")
        reply["has_grad"] = np.array(reply["has_grad"], bool)
        return reply

    def worker_pids(self) -> list[int]:
        return [w.pid for w in self._workers]

    def close(self, reason: str = "") -> None:
        """Stop the workers (waiting up to a few seconds each). The parameters stay in shared memory."""
        if getattr(self, "closed", True):
            return
        self.closed = True
        self._reason = f" ({reason})" if reason else ""
        for conn in self._conns:
            try:
                conn.send_bytes(_pack({"op": "close"}))
            except (OSError, EOFError):
                pass
        for worker in self._workers:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.terminate()
                worker.join()
        for conn in self._conns:
            conn.close()

    def __enter__(self) -> DataParallel:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # ----- a worker (runs in the forked child)

    def _serve(self, rank: int, conn) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the main process to handle
        set_blas_threads(self.threads)
        for c in self._conns:  # the pipes of earlier workers, inherited through fork: not ours
            c.close()
        grads = self._grad_views[rank - 1]
        while True:
            try:
                header, arrays = _unpack(conn.recv_bytes())
            except (OSError, EOFError):
                break  # the main process is gone
            if header["op"] == "close":
                break
            try:
                for gen, seed in zip(self._generators, header["seeds"]):
                    _reseed(gen, seed, rank)
                share = arrays[0] if header["single"] else tuple(arrays)
                for p in self.params:
                    p.grad = None
                loss = self.loss_fn(share)
                loss.backward()
                has_grad = []
                for p, out in zip(self.params, grads):
                    has_grad.append(p.grad is not None)
                    if p.grad is not None:
                        np.copyto(out, p.grad)
                    p.grad = None
                reply = {"loss": float(loss.item()), "has_grad": has_grad}
            except Exception as e:
                reply = {"error": "".join(traceback.format_exception_only(type(e), e)).strip()}
            conn.send_bytes(_pack(reply))
        os._exit(0)  # no atexit handlers, no flushing of the parent's buffers a second time
