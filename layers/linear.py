"""Linear and Embedding: the two layers that hold most of a language model's parameters.

Linear computes y = x @ W + b with W stored (in_features, out_features), the layout of GPT-2's Conv1D, so the
formula reads the way it is written on paper (a row vector times a matrix). Hugging Face `nn.Linear` stores
(out, in); the model loaders transpose.

Embedding is a table lookup, E[ids]: multiplying a one-hot row by E without building the one-hot vector. Its
gradient scatters each output row's gradient back onto the row it came from (repeated ids add up).
"""

from __future__ import annotations

import math

import numpy as np

import tinygrad_lite.functional as F
from tinygrad_lite import Module, Parameter, Tensor, as_generator


class Linear(Module):
    """y = x @ W + b, W (in_features, out_features), b (out_features,).

    Initialisation: W ~ U(-1/sqrt(in), 1/sqrt(in)), PyTorch's default (He et al. 2015's scheme with its gain chosen
    so that the output variance is about a third of the input's), bias zero. Models that want GPT-2's N(0, 0.02)
    re-initialise after construction.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, rng=None, dtype=np.float32):
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / math.sqrt(in_features)
        self.weight = Parameter(as_generator(rng).uniform(-bound, bound, (in_features, out_features)).astype(dtype))
        self.bias = Parameter(np.zeros(out_features, dtype=dtype)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)  # (..., in) -> (..., out)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    """out = W[ids], W (num_embeddings, embedding_dim).

    Initialisation: W ~ N(0, 1), as PyTorch (GPT-2 re-initialises with N(0, 0.02)).
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, rng=None, dtype=np.float32):
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = Parameter(as_generator(rng).standard_normal((num_embeddings, embedding_dim)).astype(dtype))

    def forward(self, ids) -> Tensor:
        return F.embedding(self.weight, ids)  # (...) integer ids -> (..., dim)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"
