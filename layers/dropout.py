"""Dropout as a Module: active in training mode, the identity in eval mode.

Inverted dropout (Srivastava et al. 2014): each element is zeroed with probability p and the survivors are scaled by
1 / (1 - p), so the expected activation is unchanged and evaluation needs no rescaling.
"""

from __future__ import annotations

import numpy as np

import tinygrad_lite.functional as F
from tinygrad_lite import Module, Tensor, as_generator


class Dropout(Module):
    """y = x * m / (1 - p) with m ~ Bernoulli(1 - p) in training mode; y = x in eval mode. No parameters.

    `rng` (a np.random.Generator) makes the masks reproducible; by default a fresh generator is used.
    """

    def __init__(self, p: float = 0.1, rng: np.random.Generator | None = None):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p = p
        self.rng = as_generator(rng)

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, training=self.training, rng=self.rng)

    def extra_repr(self) -> str:
        return f"p={self.p}"
