"""Normalisation layers: LayerNorm and RMSNorm, thin Modules over tinygrad_lite.functional's layer_norm and rms_norm.

Both rescale each token's feature vector to a fixed size before a learned per-feature gain. LayerNorm also
removes the mean (and adds a learned bias); RMSNorm skips the centring, which costs nothing measurable in quality
and is what Llama and Mixtral use.
"""

from __future__ import annotations

import numpy as np

import tinygrad_lite.functional as F
from tinygrad_lite import Module, Parameter, Tensor


class LayerNorm(Module):
    """Layer normalisation (Ba, Kiros & Hinton 2016): y = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias,
    over the last axis, with the biased variance (divide by n).

    Initialisation: weight = 1, bias = 0, so the layer starts as plain standardisation.
    """

    def __init__(self, dim: int, eps: float = 1e-5, bias: bool = True, dtype=np.float32):
        self.dim, self.eps = dim, eps
        self.weight = Parameter(np.ones(dim, dtype=dtype))
        self.bias = Parameter(np.zeros(dim, dtype=dtype)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, self.weight, self.bias, eps=self.eps)

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}"


class RMSNorm(Module):
    """Root-mean-square normalisation (Zhang & Sennrich 2019): y = x / sqrt(mean(x^2) + eps) * weight.

    Initialisation: weight = 1.
    """

    def __init__(self, dim: int, eps: float = 1e-6, dtype=np.float32):
        self.dim, self.eps = dim, eps
        self.weight = Parameter(np.ones(dim, dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        return F.rms_norm(x, self.weight, eps=self.eps)

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}"
