"""The training loop: AdamW, warmup + cosine learning rate, clipping, accumulation, evaluation, checkpoints.

One iteration (nanoGPT's order): set the learning rate for this iteration; every eval_interval, evaluate train and
val loss on eval_iters batches without building a graph and checkpoint; then gradient_accumulation_steps
micro-batches of forward + backward (each loss divided by the number of micro-batches so the gradient is their
mean); clip the global gradient norm; one optimizer step.

Reproducibility: training batches come from one Generator seeded by --seed, evaluation batches from a Generator
seeded by (seed, iteration), so evaluating (or resuming, which re-evaluates) never shifts the training data. With
the same seed, the same losses come out bit for bit; after --resume, the same losses as an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import signal
import threading
import time

import numpy as np

from tinygrad_lite import no_grad
from tinygrad_lite.fast.data_parallel import DataParallel
from tinygrad_lite.optim import clip_grad_norm_, cosine_with_warmup

from . import checkpoint as ckpt
from .metrics import MetricsLog, flops_per_token, measure_matmul_peak
from .options import TrainOptions, data_parallel_processes


def estimate_losses(job, opts: TrainOptions, iteration: int) -> dict:
    """Mean loss over eval_iters batches per split, in eval mode, without a graph."""
    out = {}
    job.model.eval()
    with no_grad():
        for split in ("train", "val"):
            rng = np.random.default_rng([opts.seed, iteration, 0 if split == "train" else 1])
            losses = [float(job.loss(job.batch(split, rng)).item()) for _ in range(opts.eval_iters)]
            out[split] = float(np.mean(losses))
    job.model.train()
    return out


def train(job, opts: TrainOptions, log=print) -> dict:
    """Run the loop for `job` (see training.jobs) and return a summary of the run."""
    out_dir = ckpt.check_out_dir(opts.out_dir)
    model = job.model
    optimizer = job.make_optimizer()
    rng = np.random.default_rng(opts.seed)
    start_iter, best = 0, None
    if opts.resume:
        meta, arrays = ckpt.load_training_state(out_dir)
        job.check_compatible(meta)
        ckpt.restore(model, optimizer, meta, arrays)
        rng = ckpt.restore_rng(meta["rng"])
        job.restore_rngs(meta.get("model_rngs", {}))
        start_iter, best = meta["iter"], meta.get("best")
        log(f"resumed from {out_dir} at iteration {start_iter}")
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = MetricsLog(out_dir, append=opts.resume)
    metrics.truncate_after(start_iter)

    n_params = model.num_parameters()
    tokens_per_iter = opts.batch_size * job.tokens_per_example * opts.gradient_accumulation_steps
    fpt = flops_per_token(n_params, opts.n_layer, opts.n_embd, job.tokens_per_example)
    peak = measure_matmul_peak()
    processes = data_parallel_processes(opts)
    split = f", each batch split between {processes} processes" if processes > 1 else ""
    log(f"{type(model).__name__}: {n_params:,} parameters, {tokens_per_iter} tokens/iter, "
        f"measured float32 matmul peak {peak:.0f} GFLOP/s{split}")

    def save_state(iteration: int) -> None:
        meta = {"iter": iteration, "best": best, "rng": ckpt.rng_state(rng), "options": dataclasses.asdict(opts),
                "model_rngs": job.rng_states(), **job.checkpoint_extra()}
        ckpt.save_training_state(out_dir, model, optimizer, meta)

    model.train()
    t_last, it_last = time.perf_counter(), start_iter
    t_start = time.perf_counter()
    summary: dict = {"interrupted": False}
    it = start_iter
    stop = _StopRequest()
    # --data_parallel N: the forward and backward of each batch split between this process and N - 1 forked workers
    # that share the weights (tinygrad_lite.data_parallel); evaluation and the optimizer stay here.
    dp = DataParallel(model, job.loss, processes) if processes > 1 else None
    try:
        while True:
            if stop.requested:
                raise KeyboardInterrupt
            lr = cosine_with_warmup(it, opts.learning_rate, opts.warmup_iters, opts.lr_decay_iters, opts.min_lr)
            for group in optimizer.param_groups:
                group["lr"] = lr
            if it % opts.eval_interval == 0 or it == opts.max_iters:
                losses = estimate_losses(job, opts, it)
                row = {"iter": it, "train_loss": losses["train"], "val_loss": losses["val"], "lr": lr}
                metric = job.metric()
                if metric is not None:
                    row[job.metric_name] = metric
                metrics.append(row)
                extra = f", {job.metric_name} {metric:.4f}" if metric is not None else ""
                log(f"step {it}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}{extra}")
                score = metric if metric is not None else -losses["val"]  # higher is better
                if best is None or score > best:  # the first evaluation always writes a model folder
                    best = score
                    job.save_model(out_dir)
                if it > start_iter or not opts.resume:
                    save_state(it)
                summary.update(row)
            if it >= opts.max_iters:
                break
            loss_value = 0.0
            scale = 1.0 / opts.gradient_accumulation_steps
            for _ in range(opts.gradient_accumulation_steps):
                batch = job.batch("train", rng)
                if dp is not None:
                    loss_value += scale * dp.step(batch, scale=scale)
                    continue
                loss = job.loss(batch)
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
                    f"{tokens_per_iter / dt:,.0f} tok/s, {100 * share:.1f}% of matmul peak"
                    + job.progress_note())
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
