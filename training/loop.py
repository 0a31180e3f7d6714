"""The training loop: AdamW, warmup + cosine learning rate, clipping, accumulation, evaluation, checkpoints.

One iteration (nanoGPT's order): set the learning rate for this iteration; every eval_interval, estimate train and
val loss on eval_iters batches without building a graph (training/evaluate.py), score the held-out metric and
checkpoint; then gradient_accumulation_steps micro-batches of forward + backward (each loss divided by the number
of micro-batches so the gradient is their mean); clip the global gradient norm; one optimizer step.

Reproducibility: the training batches come from one generator seeded by --seed, saved in the training state with
the dropout generator, so the same seed gives the same losses bit for bit, and --resume the same losses as an
uninterrupted run. The run owns its out_dir for its whole life (training/lock.py); Ctrl-C saves the state.

On several MPI ranks (training/ranks.py) each rank computes its part of every iteration, the gradients are summed
over the ranks during backward (tinygrad_lite.distributed), and every rank takes the same step; rank 0 logs,
evaluates the metric and writes the files. The ranks decide together, after each step, whether Ctrl-C stops them.
"""

from __future__ import annotations

import dataclasses
import signal
import threading
import time
from pathlib import Path

import numpy as np

from tinygrad_lite.optim import AdamW, clip_grad_norm_, cosine_with_warmup, weight_decay_groups

from . import checkpoint as ckpt
from .evaluate import estimate_loss
from .lock import OutDirLock
from .metrics import MetricsLog, flops_per_token, measure_matmul_peak
from .options import TrainOptions
from .ranks import SetupFailed, World


def train(task, opts: TrainOptions, log=print, world: World | None = None) -> dict:
    """Train `task` (training/presets.py) as `opts` says, on this process's rank of `world` (training/ranks.py;
    default: one process); returns a summary of the run (last evaluation, seconds, iterations, whether Ctrl-C
    stopped it)."""
    world = world or World()
    out_dir = ckpt.check_out_dir(opts.out_dir)
    if not world.main:  # rank 0 owns out_dir; the others only read it (--resume)
        return _train(task, opts, out_dir, lambda *a, **k: None, world)
    with OutDirLock(out_dir, log):
        return _train(task, opts, out_dir, log, world)


def _optimizer(model, opts: TrainOptions, world: World):
    """(optimizer, data parallelism or None): AdamW; on several ranks with its gradients summed over them
    (tinygrad_lite.distributed: no_sync(), wait(), clip_grad_norm_), and with --zero 1 its state sharded over them,
    when the optimizer does all three itself."""
    groups = weight_decay_groups(model.parameters(), opts.weight_decay)
    hyper = dict(lr=opts.learning_rate, betas=(opts.beta1, opts.beta2))
    if world.size == 1:
        return AdamW(groups, **hyper), None
    from tinygrad_lite.distributed import DataParallel, ZeroAdamW

    if opts.zero:
        optimizer = ZeroAdamW(groups, world.comm, **hyper, layout=model.parameters())
        return optimizer, optimizer
    return AdamW(groups, **hyper), DataParallel(model.parameters(), world.comm)


def _train(task, opts: TrainOptions, out_dir: Path, log, world: World) -> dict:
    model = task.model
    work = world.work(opts)  # [(micro-batch, rows, weight)] of this rank
    optimizer, dp = _optimizer(model, opts, world)
    rng = np.random.default_rng(opts.seed)  # the training batches, the same on every rank
    start_iter, best = 0, None
    if opts.resume:
        meta, arrays = ckpt.load_training_state(out_dir)
        ckpt.check_compatible(meta, opts)
        ckpt.restore(model, optimizer, meta, arrays)
        ckpt.set_rng_state(rng, meta["rng"])
        if "dropout" in meta.get("model_rngs", {}):
            ckpt.set_rng_state(task.dropout_rng, meta["model_rngs"]["dropout"])
        start_iter, best = meta["iter"], meta.get("best")
        log(f"resumed from {out_dir} at iteration {start_iter}")
    if world.agree(True):  # some rank could not set up; from here on, an error on one rank ends the job
        raise SetupFailed
    metrics = MetricsLog(out_dir, append=opts.resume) if world.main else None
    if metrics is not None:
        metrics.truncate_after(start_iter)

    n_params = model.num_parameters()
    tokens_per_iter = opts.batch_size * task.tokens_per_example * opts.gradient_accumulation_steps
    fpt = flops_per_token(n_params, opts.n_layer, opts.n_embd, task.tokens_per_example)
    peak = measure_matmul_peak() * world.size if world.main else 1.0
    log(f"{type(model).__name__}: {n_params:,} parameters, {tokens_per_iter} tokens/iter, "
        f"measured float32 matmul peak {peak:.0f} GFLOP/s" + (f" ({world.size} ranks)" if world.size > 1 else ""))
    if opts.zero and world.size > 1:
        whole = 2 * sum(p.data.nbytes for p in model.parameters())
        log(f"ZeRO-1: AdamW moments {optimizer.state_bytes() / 2**20:.2f} MiB on rank 0, "
            f"{whole / 2**20:.2f} MiB unsharded")

    def save_state(iteration: int) -> None:
        state = optimizer.state_dict() if world.main or opts.zero else None  # ZeRO gathers on every rank
        if world.main:
            meta = {"iter": iteration, "best": best, "rng": rng.bit_generator.state,
                    "options": dataclasses.asdict(opts),
                    "model_rngs": {"dropout": task.dropout_rng.bit_generator.state}}
            ckpt.save_training_state(out_dir, model, state, meta)

    def save_model() -> None:
        model.save_pretrained(out_dir)
        if task.tokenizer is not None:
            ckpt.save_tokenizer(out_dir, task.tokenizer)

    model.train()
    t_start = t_last = time.perf_counter()
    it = it_last = start_iter
    summary: dict = {"interrupted": False}
    stop = _StopRequest()
    stopping = False
    try:
        while True:
            if stopping:
                raise KeyboardInterrupt
            lr = cosine_with_warmup(it, opts.learning_rate, opts.warmup_iters, opts.lr_decay_iters, opts.min_lr)
            for group in optimizer.param_groups:
                group["lr"] = lr
            if it % opts.eval_interval == 0 or it == opts.max_iters:
                world.check_same_parameters(model, it)
                losses = estimate_loss(task, opts, it, world)
                row = {"iter": it, "train_loss": losses["train"], "val_loss": losses["val"], "lr": lr}
                accuracy = task.metric() if task.metric is not None and world.main else None
                if accuracy is not None:
                    row["accuracy"] = accuracy
                log(f"step {it}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}"
                    + (f", accuracy {accuracy:.4f}" if accuracy is not None else ""))
                if world.main:
                    metrics.append(row)
                    score = accuracy if accuracy is not None else -losses["val"]  # higher is better
                    if best is None or score > best:  # the first evaluation always writes a model folder
                        best = score
                        save_model()
                if it > start_iter or not opts.resume:
                    save_state(it)
                world.wait_for_main()
                summary.update(row)
            if it >= opts.max_iters:
                break
            world.seed_dropout(task.dropout_rng, opts.seed, it)
            loss_value = 0.0
            for i in range(opts.gradient_accumulation_steps):
                batch = task.get_batch("train", rng)  # every rank draws every micro-batch: one stream for all
                mine = [(rows, w) for j, rows, w in work if j == i]
                if not mine:
                    continue
                rows, weight = mine[0]
                if rows != slice(None):
                    batch = tuple(a[rows] for a in batch)
                loss = task.loss(batch)
                if weight != 1.0:
                    loss = loss * weight
                if dp is not None and i != work[-1][0]:
                    with dp.no_sync():  # only the last micro-batch's backward communicates
                        loss.backward()
                else:
                    loss.backward()
                loss_value += float(loss.item())
            if dp is not None:
                dp.wait()  # the gradients summed over the ranks
            if opts.grad_clip > 0:
                if dp is None:
                    clip_grad_norm_(model.parameters(), opts.grad_clip)
                else:  # the norm of the summed gradients, added slice by slice: the same bits with ZeRO or not
                    dp.clip_grad_norm_(opts.grad_clip)
            optimizer.step()
            optimizer.zero_grad()
            loss_value, stopping = world.sum_and_any(loss_value, stop.requested)
            it += 1
            if it % opts.log_interval == 0:
                now = time.perf_counter()
                dt = (now - t_last) / max(it - it_last, 1)
                t_last, it_last = now, it
                share = fpt * tokens_per_iter / dt / 1e9 / peak
                log(f"iter {it}: loss {loss_value:.4f}, lr {lr:.2e}, {dt * 1000:.1f} ms/iter, "
                    f"{tokens_per_iter / dt:,.0f} tok/s, {100 * share:.1f}% of matmul peak" + task.note())
    except KeyboardInterrupt:
        stop.restore()  # a second Ctrl-C during the save interrupts for real
        save_state(it)  # every rank stops here at the same iteration: sum_and_any made them agree
        log(f"\ninterrupted at iteration {it}: training state saved to {out_dir} (continue with --resume)")
        summary["interrupted"] = True
    finally:
        stop.restore()
    summary["seconds"] = time.perf_counter() - t_start
    summary["iterations"] = it - start_iter
    if metrics is not None and metrics.plot(out_dir):
        log(f"loss curve: {out_dir / 'loss.png'}")
    return summary


class _StopRequest:
    """Ctrl-C sets a flag that the loop checks between iterations, so the state it saves is never half-updated (an
    interrupt inside optimizer.step() would leave some parameters stepped and others not)."""

    def __init__(self):
        self.requested = False
        self._previous = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame):
        self.requested = True

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
