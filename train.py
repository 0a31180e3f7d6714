"""The project's main command.

Until the GPT training loop lands (see the README's status table), this runs a small, honest demo of the engine:
a 2-layer MLP built from tinygrad_lite learns to classify the classic two-spirals toy dataset with AdamW, printing
the loss and accuracy as it trains. Everything is generated in memory; no download, no data file.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import tinygrad_lite.functional as F
from tinygrad_lite import Module, Parameter, Tensor, no_grad
from tinygrad_lite.optim import AdamW


def spirals(n_per_class: int, rng: np.random.Generator, noise: float = 0.15):
    """Two interleaved spirals in the plane, labels 0 and 1."""
    t = np.sqrt(rng.random(n_per_class)) * 3 * np.pi
    arm = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / (3 * np.pi)
    x = np.concatenate([arm, -arm]) + noise * rng.standard_normal((2 * n_per_class, 2)) / 3
    y = np.concatenate([np.zeros(n_per_class, np.int64), np.ones(n_per_class, np.int64)])
    return x.astype(np.float32), y


class MLP(Module):
    def __init__(self, n_in: int, hidden: int, n_out: int, rng: np.random.Generator):
        # Kaiming-style scale 1/sqrt(fan_in) keeps activations O(1) at initialisation.
        self.w1 = Parameter(rng.standard_normal((n_in, hidden)).astype(np.float32) / np.sqrt(n_in))
        self.b1 = Parameter(np.zeros(hidden, np.float32))
        self.w2 = Parameter(rng.standard_normal((hidden, hidden)).astype(np.float32) / np.sqrt(hidden))
        self.b2 = Parameter(np.zeros(hidden, np.float32))
        self.w3 = Parameter(rng.standard_normal((hidden, n_out)).astype(np.float32) / np.sqrt(hidden))
        self.b3 = Parameter(np.zeros(n_out, np.float32))

    def forward(self, x: Tensor) -> Tensor:
        h = F.linear(x, self.w1, self.b1).relu()  # (N, hidden)
        h = F.linear(h, self.w2, self.b2).relu()  # (N, hidden)
        return F.linear(h, self.w3, self.b3)  # (N, n_out) logits


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Engine demo: an MLP learns the two-spirals dataset.")
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--learning_rate", type=float, default=1e-2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.hidden < 1 or args.learning_rate <= 0:
        parser.error("--steps and --hidden must be >= 1 and --learning_rate > 0")

    rng = np.random.default_rng(args.seed)
    x_train, y_train = spirals(500, rng)
    x_test, y_test = spirals(500, rng)
    model = MLP(2, args.hidden, 2, rng)
    opt = AdamW(model.parameters(), lr=args.learning_rate, weight_decay=1e-4)
    print(f"two-spirals MLP: {model.num_parameters()} parameters, {len(x_train)} training points")
    t0 = time.perf_counter()
    for step in range(1, args.steps + 1):
        loss = F.cross_entropy(model(Tensor(x_train)), y_train)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 250 == 0 or step == 1:
            with no_grad():
                acc = (model(Tensor(x_test)).data.argmax(-1) == y_test).mean()
            print(f"step {step:5d}  loss {loss.item():.4f}  test accuracy {acc:.3f}")
    ms = 1000 * (time.perf_counter() - t0) / args.steps
    with no_grad():
        acc = (model(Tensor(x_test)).data.argmax(-1) == y_test).mean()
    print(f"done: test accuracy {acc:.3f} after {args.steps} steps ({ms:.2f} ms/step)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
