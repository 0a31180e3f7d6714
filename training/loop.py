"""The training loop: AdamW, warmup + cosine learning rate, clipping, accumulation, evaluation, checkpoints.

One iteration (nanoGPT's order): set the learning rate for this iteration; every eval_interval, estimate train and
val loss on eval_iters batches without building a graph (training/evaluate.py), score the held-out metric and
checkpoint; then gradient_accumulation_steps micro-batches of forward + backward (each loss divided by the number
of micro-batches so the gradient is their mean); clip the global gradient norm; one optimizer step.

Reproducibility: the training batches come from one generator seeded by --seed, saved in the training state with
the dropout generator, so the same seed gives the same losses bit for bit, and --resume the same losses as an
uninterrupted run. The run owns its out_dir for its whole life (training/lock.py); Ctrl-C saves the state.
"""

from __future__ import annotations

import dataclasses
import signal
import threading
import time
from pathlib import Path

import numpy as np

from tinygrad_lite.fast.data_parallel import DataParallel
from tinygrad_lite.optim import AdamW, clip_grad_norm_, cosine_with_warmup, weight_decay_groups

from . import checkpoint as ckpt
from .evaluate import estimate_loss
from .lock import OutDirLock
from .metrics import MetricsLog, flops_per_token, measure_matmul_peak
from .options import TrainOptions, data_parallel_processes


def train(task, opts: TrainOptions, log=print) -> dict:
    """Train `task` (training/presets.py) as `opts` says; returns a summary of the run (last evaluation, seconds,
    iterations, whether Ctrl-C stopped it)."""
    out_dir = ckpt.check_out_dir(opts.out_dir)
    with OutDirLock(out_dir, log):
        return _train(task, opts, out_dir, log)


def _train(task, opts: TrainOptions, out_dir: Path, log) -> dict:
    model = task.model
    optimizer = AdamW(weight_decay_groups(model.parameters(), opts.weight_decay), lr=opts.learning_rate,
                      betas=(opts.beta1, opts.beta2))
    rng = np.random.default_rng(opts.seed)  # the training batches
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
    metrics = MetricsLog(out_dir, append=opts.resume)
    metrics.truncate_after(start_iter)

    n_params = model.num_parameters()
    tokens_per_iter = opts.batch_size * task.tokens_per_example * opts.gradient_accumulation_steps
    fpt = flops_per_token(n_params, opts.n_layer, opts.n_embd, task.tokens_per_example)
    peak = measure_matmul_peak()
    log(f"{type(model).__name__}: {n_params:,} parameters, {tokens_per_iter} tokens/iter, "
        f"measured float32 matmul peak {peak:.0f} GFLOP/s")

    def save_state(iteration: int) -> None:
        meta = {"iter": iteration, "best": best, "rng": rng.bit_generator.state, "options": dataclasses.asdict(opts),
                "model_rngs": {"dropout": task.dropout_rng.bit_generator.state}}
        ckpt.save_training_state(out_dir, model, optimizer, meta)

    def save_model() -> None:
        model.save_pretrained(out_dir)
        if task.tokenizer is not None:
            ckpt.save_tokenizer(out_dir, task.tokenizer)

    model.train()
    t_start = t_last = time.perf_counter()
    it = it_last = start_iter
    summary: dict = {"interrupted": False}
    stop = _StopRequest()
    processes = data_parallel_processes(opts)
    # The forward and backward of each batch split between this process and processes - 1 forked workers that
    # share the weights (tinygrad_lite.fast.data_parallel); evaluation, the optimizer and checkpoints stay here.
    dp = DataParallel(model, task.loss, processes) if processes > 1 else None
    try:
        while True:
            if stop.requested:
                raise KeyboardInterrupt
            lr = cosine_with_warmup(it, opts.learning_rate, opts.warmup_iters, opts.lr_decay_iters, opts.min_lr)
            for group in optimizer.param_groups:
                group["lr"] = lr
            if it % opts.eval_interval == 0 or it == opts.max_iters:
                losses = estimate_loss(task, opts, it)
                row = {"iter": it, "train_loss": losses["train"], "val_loss": losses["val"], "lr": lr}
                accuracy = task.metric() if task.metric is not None else None
                if accuracy is not None:
                    row["accuracy"] = accuracy
                metrics.append(row)
                log(f"step {it}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}"
                    + (f", accuracy {accuracy:.4f}" if accuracy is not None else ""))
                score = accuracy if accuracy is not None else -losses["val"]  # higher is better
                if best is None or score > best:  # the first evaluation always writes a model folder
                    best = score
                    save_model()
                if it > start_iter or not opts.resume:
                    save_state(it)
                summary.update(row)
            if it >= opts.max_iters:
                break
            loss_value = 0.0
            scale = 1.0 / opts.gradient_accumulation_steps
            for _ in range(opts.gradient_accumulation_steps):
                batch = task.get_batch("train", rng)
                if dp is not None:
                    loss_value += scale * dp.step(batch, scale=scale)
                    continue
                loss = task.loss(batch)
                if opts.gradient_accumulation_steps > 1:
                    loss = loss * scale
                loss.backward()
                loss_value += float(loss.item())
            if opts.grad_clip > 0:
                clip_grad_norm_(model.parameters(), opts.grad_clip)
            optimizer.step()
            optimizer.zero_grad()
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
        save_state(it)
        log(f"\ninterrupted at iteration {it}: training state saved to {out_dir} (continue with --resume)")
        summary["interrupted"] = True
    finally:
        stop.restore()
        if dp is not None:
            dp.close()
    summary["seconds"] = time.perf_counter() - t_start
    summary["iterations"] = it - start_iter
    if metrics.plot(out_dir):
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
