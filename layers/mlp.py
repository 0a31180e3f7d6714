"""The position-wise feed-forward blocks of a Transformer: GPT-2's MLP and the SwiGLU of Llama and Mixtral.

Both widen each token's vector, apply a nonlinearity, and project back. SwiGLU replaces the single activation by a
gate: one projection, passed through SiLU, multiplies another projection elementwise (a gated linear unit).
"""

from __future__ import annotations

import numpy as np

import tinygrad_lite.functional as F
from tinygrad_lite import Module, Tensor

from .linear import Linear
from .mlp_function import mlp


class MLP(Module):
    """GPT-2's feed-forward block (Radford et al. 2019): y = c_proj(gelu(c_fc(x))).

    GELU (Hendrycks & Gimpel 2016) in its tanh approximation by default, as GPT-2's "gelu_new"; approximate="none"
    is the exact x Phi(x) (transformers' "gelu", torch's nn.GELU(), which nanoGPT uses). Parameter names follow
    Hugging Face GPT-2: c_fc.weight (dim, hidden), c_proj.weight (hidden, dim). `hidden` defaults to 4 * dim.
    Optional dropout on the output (GPT-2's resid_pdrop). Initialisation: that of Linear.

    By default the block runs as one fused Function (layers.mlp_function, rows split between threads);
    `fused=False` runs it as three ops (c_fc, gelu, c_proj), each visible in the graph, for stepping through.
    """

    def __init__(self, dim: int, hidden: int | None = None, bias: bool = True, dropout: float = 0.0, rng=None,
                 dtype=np.float32, approximate: str = "tanh", fused: bool = True):
        if approximate not in ("tanh", "none"):
            raise ValueError(f"MLP: approximate must be 'tanh' or 'none', got {approximate!r}")
        hidden = 4 * dim if hidden is None else hidden
        self.approximate, self.fused = approximate, fused
        self.c_fc = Linear(dim, hidden, bias=bias, rng=rng, dtype=dtype)
        self.c_proj = Linear(hidden, dim, bias=bias, rng=rng, dtype=dtype)
        self.dropout = dropout
        self.rng = np.random.default_rng() if rng is None else rng

    def forward(self, x: Tensor) -> Tensor:
        if self.fused:
            y = mlp(x, self.c_fc.weight, self.c_proj.weight, self.c_fc.bias, self.c_proj.bias, self.approximate)
        else:
            h = self.c_fc(x).gelu(self.approximate)  # (..., hidden)
            y = self.c_proj(h)  # (..., dim)
        return F.dropout(y, self.dropout, training=self.training, rng=self.rng)


class SwiGLU(Module):
    """Gated feed-forward block (Shazeer 2020, "GLU Variants Improve Transformer"):
    y = w2(silu(x w1) * (x w3)), with silu(z) = z * sigmoid(z).

    Names follow Meta's Llama and Mixtral checkpoints: w1 (dim, hidden) is the gate, w3 (dim, hidden) the "up"
    projection, w2 (hidden, dim) the "down" projection; no biases by default. Initialisation: that of Linear.
    """

    def __init__(self, dim: int, hidden: int, bias: bool = False, rng=None, dtype=np.float32):
        self.w1 = Linear(dim, hidden, bias=bias, rng=rng, dtype=dtype)
        self.w3 = Linear(dim, hidden, bias=bias, rng=rng, dtype=dtype)
        self.w2 = Linear(hidden, dim, bias=bias, rng=rng, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        return self.w2(self.w1(x).silu() * self.w3(x))  # (..., dim) -> (..., hidden) -> (..., dim)
