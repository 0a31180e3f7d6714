"""GPT-2's MLP block, y = gelu(x W1 + b1) W2 + b2 (Radford et al. 2019; GELU: Hendrycks & Gimpel 2016), two ways.

`mlp` reads `tinygrad_lite.is_fused_enabled()` on every call:
- the reference path, `mlp_reference`: F.linear -> F.gelu -> F.linear, three ops (each itself composed from
  primitives under `set_fused(False)`);
- the fused path, `FusedMLP`: one Function for the whole block. Backward, with a = gelu(h), h = x W1 + b1 and
  g = dL/dy:

    da = g W2^T,  dh = gelu'(h) * da,  dx = dh W1^T
    dW2 = a^T g,  db2 = sum(g),  dW1 = x^T dh,  db1 = sum(dh)

  The batch axes of x are folded into rows, so each of these is one matrix product over every token, and GELU's
  kernels (tinygrad_lite.fused.gelu) write into the buffers the products fill, without graph nodes between them.
Tests hold the two to the same values and gradients.
"""

from __future__ import annotations

import tinygrad_lite.functional as F
from tinygrad_lite import Function, Tensor, is_fused_enabled
from tinygrad_lite.fused.gelu import gelu_backward, gelu_forward


class FusedMLP(Function):
    def forward(self, x, w1, w2, *b, approximate="tanh"):
        x2 = x.reshape(-1, x.shape[-1])  # (N, C)
        b1, b2 = b if b else (None, None)
        h = x2 @ w1  # (N, hidden) pre-activation
        if b1 is not None:
            h += b1
        a, saved = gelu_forward(h, approximate)  # (N, hidden) each
        y = a @ w2  # (N, out)
        if b2 is not None:
            y += b2
        self.x2, self.h, self.a, self.saved, self.w1, self.w2 = x2, h, a, saved, w1, w2
        self.x_shape, self.has_bias, self.approximate = x.shape, bool(b), approximate
        return y.reshape(x.shape[:-1] + (w2.shape[1],))

    def backward(self, g):
        need = self.needs_input_grad  # x, w1, w2[, b1, b2]
        g2 = g.reshape(-1, g.shape[-1])  # (N, out)
        dh = gelu_backward(self.h, self.saved, g2 @ self.w2.T, self.approximate)  # (N, hidden)
        grads = [(dh @ self.w1.T).reshape(self.x_shape) if need[0] else None,
                 self.x2.T @ dh if need[1] else None,
                 self.a.T @ g2 if need[2] else None]
        if self.has_bias:
            grads += [dh.sum(axis=0) if need[3] else None, g2.sum(axis=0) if need[4] else None]
        return tuple(grads)


def mlp_reference(x: Tensor, w1: Tensor, w2: Tensor, b1: Tensor | None = None, b2: Tensor | None = None,
                  approximate: str = "tanh") -> Tensor:
    """c_proj(gelu(c_fc(x))) as three ops."""
    h = F.gelu(F.linear(x, w1, b1), approximate)  # (..., hidden)
    return F.linear(h, w2, b2)  # (..., out)


def mlp(x: Tensor, w1: Tensor, w2: Tensor, b1: Tensor | None = None, b2: Tensor | None = None,
        approximate: str = "tanh") -> Tensor:
    """gelu(x @ w1 + b1) @ w2 + b2 for x (..., C), w1 (C, hidden), w2 (hidden, out): -> (..., out). Biases: both or
    neither."""
    if (b1 is None) != (b2 is None):
        raise ValueError("mlp: pass both biases or neither")
    if approximate not in ("tanh", "none"):
        raise ValueError(f"mlp: approximate must be 'tanh' or 'none', got {approximate!r}")
    if x.shape[-1] != w1.shape[0] or w1.shape[1] != w2.shape[0]:
        raise ValueError(f"mlp: input {x.shape}, c_fc weight {w1.shape} and c_proj weight {w2.shape} are not "
                         "aligned")
    if not is_fused_enabled():
        return mlp_reference(x, w1, w2, b1, b2, approximate)
    biases = [] if b1 is None else [b1, b2]
    return FusedMLP.apply(x, w1, w2, *biases, approximate=approximate)
