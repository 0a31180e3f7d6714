"""How a model's loss is measured: on a few random batches while it trains, and on the whole val split afterwards.

- `estimate_loss`: nanoGPT's estimate_loss, the mean loss over eval_iters random batches of each split, which is
  what the loop prints and what picks the best model. Evaluation batches come from a generator seeded by
  (seed, iteration, split), so evaluating (or resuming, which evaluates again) never shifts the training batches.
  It is an estimate: with 20 batches of 12 x 64 characters, two draws of the same model differ by about 0.01.
- `val_split_loss`: the mean cross-entropy over every consecutive block_size window of a text's val split (the
  last 10%, as TextDataset splits it), with nothing drawn at random, so two trained models (ours or nanoGPT's,
  benchmarks/val_loss.py) compare without evaluation noise.
"""

from __future__ import annotations

import numpy as np

from tinygrad_lite import no_grad


def estimate_loss(task, opts, iteration: int, world=None) -> dict:
    """{"train": mean loss, "val": mean loss} over opts.eval_iters batches per split, in eval mode, without a graph.
    On several ranks (training/ranks.World) rank r evaluates batches r, r + N, ...; the mean is the same."""
    rank, size = (world.rank, world.size) if world is not None else (0, 1)
    out = {}
    task.model.eval()
    with no_grad():
        for split in ("train", "val"):
            rng = np.random.default_rng([opts.seed, iteration, 0 if split == "train" else 1])
            batches = [task.get_batch(split, rng) for _ in range(opts.eval_iters)]  # every rank draws them all
            losses = [float(task.loss(batches[i]).item()) for i in range(rank, opts.eval_iters, size)]
            out[split] = world.mean_in_order(losses, opts.eval_iters) if size > 1 else float(np.mean(losses))
    task.model.train()
    return out


def val_windows(ids: np.ndarray, block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y), each (windows, block_size): consecutive windows of the val split of token stream `ids` and the
    tokens that follow each position. Every window's targets lie inside the split."""
    ids = np.asarray(ids, dtype=np.int64)
    val = ids[int(0.9 * len(ids)):]  # TextDataset's split
    starts = np.arange(0, len(val) - block_size, block_size)
    offsets = starts[:, None] + np.arange(block_size + 1)  # (windows, block_size + 1)
    return val[offsets[:, :-1]], val[offsets[:, 1:]]


def val_split_loss(model, ids: np.ndarray, batch_size: int = 64) -> tuple[float, int]:
    """(mean loss over every position of every val window, number of windows) for a decoder model (GPT2, MoEGPT)
    whose context is model.config's block size; evaluated in eval mode, batch_size windows at a time."""
    config = model.config
    block_size = getattr(config, "n_positions", None) or config.max_position_embeddings
    x, y = val_windows(ids, block_size)
    model.eval()
    total = 0.0
    with no_grad():
        for i in range(0, len(x), batch_size):
            xb, yb = x[i:i + batch_size], y[i:i + batch_size]
            # each batch's loss is a mean over its positions; weighted by rows, the sum is a mean over all
            total += float(model(xb, targets=yb)[1].item()) * len(xb)
    return total / len(x), len(x)
