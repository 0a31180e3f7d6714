"""The position-wise feed-forward blocks of a Transformer: GPT-2's MLP and the SwiGLU of Llama and Mixtral.

Both widen each token's vector, apply a nonlinearity, and project back. SwiGLU replaces the single activation by a
gate: one projection, passed through SiLU, multiplies another projection elementwise (a gated linear unit).
"""

from __future__ import annotations

import numpy as np

import tinygrad_lite.functional as F
from tinygrad_lite import Module, Tensor, as_generator

from .linear import Linear
from .mlp_function import mlp


class MLP(Module):
    """GPT-2's feed-forward block (Radford et al. 2019): y = c_proj(gelu(c_fc(x))).

    GELU (Hendrycks & Gimpel 2016) in its tanh approximation by default, as GPT-2's "gelu_new"; approximate="none"
    is the exact x Phi(x) (transformers' "gelu", torch's nn.GELU(), which nanoGPT uses). Parameter names follow
    Hugging Face GPT-2: c_fc.weight (dim, hidden), c_proj.weight (hidden, dim). `hidden` defaults to 4 * dim.
    Optional dropout on the output (GPT-2's resid_pdrop). Initialisation: that of Linear.

    The block runs as `layers.mlp_function.mlp`: one fused Function, or three ops (c_fc, gelu, c_proj) under
    `tinygrad_lite.set_fused(False)`.
    """

    def __init__(self, dim: int, hidden: int | None = None, bias: bool = True, dropout: float = 0.0, rng=None,
                 dtype=np.float32, approximate: str = "tanh"):
        if approximate not in ("tanh", "none"):
            raise ValueError(f"MLP: approximate must be 'tanh' or 'none', got {approximate!r}")
        hidden = 4 * dim if hidden is None else hidden
        self.rng = as_generator(rng)
        self.approximate, self.dropout = approximate, dropout
        self.c_fc = Linear(dim, hidden, bias=bias, rng=self.rng, dtype=dtype)
        self.c_proj = Linear(hidden, dim, bias=bias, rng=self.rng, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        y = mlp(x, self.c_fc.weight, self.c_proj.weight, self.c_fc.bias, self.c_proj.bias, self.approximate)
        return F.dropout(y, self.dropout, training=self.training, rng=self.rng)  # (..., dim)


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
