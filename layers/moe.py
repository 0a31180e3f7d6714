"""Sparse Mixture of Experts (Shazeer et al. 2017; Switch Transformer, Fedus et al. 2021; Mixtral, Jiang et al. 2024).

A router (a linear map `gate`, dim -> n_experts) scores every token against every expert; each token is sent to its
top-k experts only, and the layer's output is the weighted sum of those experts' outputs:

    p = softmax(x W_g)                        router probabilities over all E experts
    y = sum_{e in topk(p)} w_e * SwiGLU_e(x)

with the weights w either the top-k probabilities renormalised to sum to 1 ("softmax_topk", Mixtral) or a softmax
over the top-k logits only ("topk_softmax"); the two are the same numbers (p_e / sum_topk p = exp(z_e) / sum_topk
exp(z)) reached in a different order. Only k of the E experts run per token, so the parameter count grows with E
while the compute per token stays that of k feed-forward blocks.

The experts' half, dispatch and combine, is layers/moe_function.py (one fused Function, or its reference twin in
primitive ops): each expert runs one batched SwiGLU on the tokens routed to it, and no other. An optional capacity
factor bounds each expert's load, as in the Switch Transformer: an expert takes at most
ceil(capacity_factor * tokens * k / E) assignments in token order; the rest are dropped (their contribution is 0,
so the residual connection carries the token through) and counted.

Auxiliary losses, recomputed by every forward (add them to the training loss with small coefficients):
    aux_loss = E * sum_e f_e P_e   (Switch eq. 4-6: f_e fraction of tokens with e among their top-k, P_e the mean
                                    router probability of e; minimal when the load is uniform)
    z_loss   = mean(logsumexp(x W_g)^2)   (ST-MoE, Zoph et al. 2022: keeps router logits small)
"""

from __future__ import annotations

import math

import numpy as np

from tinygrad_lite import Module, Tensor, as_generator

from .linear import Linear
from .mlp import SwiGLU
from .moe_function import dispatch_plan, moe_dispatch

ROUTERS = ("softmax_topk", "topk_softmax")


class SparseMoE(Module):
    """Sparse MoE layer with SwiGLU experts: forward(x) for x (B, T, C) or (N, C), same shape out.

    Parameters: gate.weight (dim, n_experts), no bias; experts.{e}.w1.weight, experts.{e}.w3.weight (dim, hidden) and
    experts.{e}.w2.weight (hidden, dim). Initialisation: that of Linear.

    `router`: "softmax_topk" (Mixtral) or "topk_softmax" (see the module docstring). With top_k = 1 and
    "softmax_topk" the single weight is always 1, so the router learns only through aux_loss, as in Mixtral's code.
    `capacity_factor`: None (no limit) or the Switch Transformer's factor. `jitter`: in training mode, multiply the
    router's input by U(1 - jitter, 1 + jitter) noise (Switch Transformer; Hugging Face's Mixtral jitters the
    experts' input as well).

    After each forward: aux_loss, z_loss (scalar Tensors in the graph), router_logits (N, E) Tensor,
    expert_counts (E,) assignments routed per expert, dropped_counts (E,) assignments dropped by capacity,
    n_dropped their total.
    """

    def __init__(self, dim: int, hidden: int, n_experts: int, top_k: int = 2, router: str = "softmax_topk",
                 capacity_factor: float | None = None, jitter: float = 0.0, rng=None, dtype=np.float32):
        if router not in ROUTERS:
            raise ValueError(f"SparseMoE: router must be one of {ROUTERS}, got {router!r}")
        if not 1 <= top_k <= n_experts:
            raise ValueError(f"SparseMoE: top_k must be in [1, {n_experts}], got {top_k}")
        if capacity_factor is not None and capacity_factor <= 0:
            raise ValueError(f"SparseMoE: capacity_factor must be positive, got {capacity_factor}")
        self.dim, self.hidden, self.n_experts, self.top_k = dim, hidden, n_experts, top_k
        self.router, self.capacity_factor, self.jitter = router, capacity_factor, jitter
        self.rng = as_generator(rng)
        self.gate = Linear(dim, n_experts, bias=False, rng=self.rng, dtype=dtype)
        self.experts = [SwiGLU(dim, hidden, rng=self.rng, dtype=dtype) for _ in range(n_experts)]
        self.aux_loss = self.z_loss = self.router_logits = None
        self.expert_counts = self.dropped_counts = None
        self.n_dropped = 0

    def capacity(self, n_tokens: int) -> int | None:
        """Assignments an expert may take: ceil(capacity_factor * tokens * top_k / n_experts), or None."""
        if self.capacity_factor is None:
            return None
        return math.ceil(self.capacity_factor * n_tokens * self.top_k / self.n_experts)

    def route(self, logits: Tensor) -> tuple:
        """logits (N, E) -> (idx (N, k) np.ndarray, weights (N, k) Tensor, probs (N, E) Tensor)."""
        probs = logits.softmax(axis=-1)  # (N, E)
        # Highest probability first; a stable sort breaks ties by the lower expert index, so routing is reproducible.
        idx = np.argsort(-probs.data, axis=-1, kind="stable")[:, : self.top_k]  # (N, k)
        rows = np.arange(len(idx))[:, None]
        if self.router == "softmax_topk":
            top = probs[rows, idx]  # (N, k)
            weights = top / top.sum(axis=-1, keepdims=True)
        else:
            weights = logits[rows, idx].softmax(axis=-1)
        return idx, weights, probs

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.dim or x.ndim not in (2, 3):
            raise ValueError(f"SparseMoE: expected x of shape (B, T, {self.dim}) or (N, {self.dim}), got {x.shape}")
        shape = x.shape
        x2 = x.reshape(-1, self.dim)  # (N, C)
        router_in = x2
        if self.training and self.jitter > 0:
            noise = self.rng.uniform(1.0 - self.jitter, 1.0 + self.jitter, x2.shape).astype(x2.dtype)
            router_in = x2 * Tensor(noise)
        logits = self.gate(router_in)  # (N, E)
        idx, weights, probs = self.route(logits)
        N = x2.shape[0]
        plan, counts, dropped = dispatch_plan(idx, self.n_experts, self.capacity(N))
        out = moe_dispatch(x2, weights, [ex.w1.weight for ex in self.experts], [ex.w3.weight for ex in self.experts],
                           [ex.w2.weight for ex in self.experts], plan)  # (N, C)

        f = Tensor((counts / N).astype(probs.dtype))  # fraction of tokens choosing e (no gradient)
        self.aux_loss = (probs.mean(axis=0) * f).sum() * float(self.n_experts)
        m = Tensor(logits.data.max(axis=-1))  # (N,) constant shift: logsumexp without overflow
        lse = (logits - m.reshape(N, 1)).exp().sum(axis=-1).log() + m  # (N,)
        self.z_loss = (lse * lse).mean()
        self.router_logits = logits
        self.expert_counts, self.dropped_counts = counts, dropped
        self.n_dropped = int(dropped.sum())
        return out.reshape(shape)

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, hidden={self.hidden}, n_experts={self.n_experts}, top_k={self.top_k}, "
                f"router={self.router!r}, capacity_factor={self.capacity_factor}")
