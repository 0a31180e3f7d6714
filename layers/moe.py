"""Sparse Mixture of Experts (Shazeer et al. 2017; Switch Transformer, Fedus et al. 2021; Mixtral, Jiang et al. 2024).

A router (a linear map `gate`, dim -> n_experts) scores every token against every expert; each token is sent to its
top-k experts only, and the layer's output is the weighted sum of those experts' outputs:

    p = softmax(x W_g)                        router probabilities over all E experts
    y = sum_{e in topk(p)} w_e * SwiGLU_e(x)

with the weights w either the top-k probabilities renormalised to sum to 1 ("softmax_topk", Mixtral) or a softmax
over the top-k logits only ("topk_softmax"); the two are the same numbers (p_e / sum_topk p = exp(z_e) / sum_topk
exp(z)) reached in a different order. Only k of the E experts run per token, so the parameter count grows with E
while the compute per token stays that of k feed-forward blocks.

Dispatch is grouped: the (token, expert) assignments are sorted by expert (argsort, bincount), each expert gathers
its tokens, runs one batched SwiGLU on them, and scatter-adds its weighted output back. No expert ever sees a token
that was not routed to it. An optional capacity factor bounds each expert's load, as in the Switch Transformer:
an expert takes at most ceil(capacity_factor * tokens * k / E) assignments in token order; the rest are dropped
(their contribution is 0, so the residual connection carries the token through) and counted.

Auxiliary losses, recomputed by every forward (add them to the training loss with small coefficients):
    aux_loss = E * sum_e f_e P_e   (Switch eq. 4-6: f_e fraction of tokens with e among their top-k, P_e the mean
                                    router probability of e; minimal when the load is uniform)
    z_loss   = mean(logsumexp(x W_g)^2)   (ST-MoE, Zoph et al. 2022: keeps router logits small)
"""

from __future__ import annotations

import math

import numpy as np

from tinygrad_lite import Function, Module, Tensor
from tinygrad_lite.threads import parallel_map, parts_for

from .linear import Linear
from .mlp import SwiGLU

ROUTERS = ("softmax_topk", "topk_softmax")


def dispatch_plan(idx: np.ndarray, n_experts: int, capacity: int | None = None) -> tuple:
    """Group the (token, expert) assignments by expert.

    idx (N, k) holds each token's experts. Slot s = token * k + j is token's j-th choice. Returns
    (plan, counts, dropped): plan a list of (expert, tokens, slots) for experts with work, tokens in increasing
    order; counts (E,) assignments routed to each expert; dropped (E,) assignments beyond capacity.
    """
    N, k = idx.shape
    flat = idx.reshape(-1)  # (N*k,) expert of each slot
    order = np.argsort(flat, kind="stable")  # slots grouped by expert, within an expert in token order
    counts = np.bincount(flat, minlength=n_experts)  # (E,)
    kept = counts if capacity is None else np.minimum(counts, capacity)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    plan = []
    for e in np.flatnonzero(kept):
        slots = order[starts[e] : starts[e] + kept[e]]
        plan.append((int(e), slots // k, slots))
    return plan, counts, counts - kept


class MoEDispatch(Function):
    """The experts' part of the layer as one Function: gather, SwiGLU per expert, weight, scatter-add.

    Inputs: x (N, C), combine weights w (N, k), then the E w1 (C, H), the E w3 (C, H) and the E w2 (H, C). For expert
    e on its rows X = x[tokens] and their weights c:

        A = X W1, B = X W3, Hd = silu(A) * B, Y = Hd W2, out[tokens] += c * Y

    backward, with G = dout[tokens]:
        dc = rowsum(G * Y),  dY = c * G,  dW2 = Hd^T dY,  dHd = dY W2^T
        dA = dHd * B * silu'(A),  dB = dHd * silu(A),  silu'(a) = s (1 + a (1 - s)), s = sigmoid(a)
        dW1 = X^T dA,  dW3 = X^T dB,  dx[tokens] += dA W1^T + dB W3^T

    W1 and W3 are applied as one (C, 2H) matrix [W1 | W3], so A and B come from one product, and dW1, dW3 and the
    two terms of dx from one each. A token appears at most once among one expert's rows (its k choices are
    distinct experts), so the scatter-add `out[tokens] += ...` never sees a repeated index and needs no np.add.at.
    Large calls split the experts between threads (tinygrad_lite.threads), each group adding into its own buffer.
    """

    def forward(self, x, w, *weights, plan):
        self.E, self.weights, self.shapes = len(weights) // 3, weights, (x.shape, w.shape)
        wflat = w.reshape(-1)
        n_assigned = sum(len(tokens) for _, tokens, _ in plan)
        work = n_assigned * x.shape[1] * weights[0].shape[1]  # multiply-adds per product, about
        self.groups = expert_groups(plan, parts_for(work, PARALLEL_MIN_WORK))

        def run(group):  # experts of one group, on one thread, into their own output buffer
            out = np.zeros_like(x)
            return out, [self._expert_forward(e, tokens, slots, x, wflat, out) for e, tokens, slots in group]

        results = parallel_map(run, self.groups)
        self.saved = [saved for _, saved in results]
        out = results[0][0]
        for other, _ in results[1:]:
            out += other
        return out

    def _expert_forward(self, e, tokens, slots, x, wflat, out):
        E, weights = self.E, self.weights
        H = weights[e].shape[1]
        W13 = np.concatenate([weights[e], weights[E + e]], axis=1)  # (C, 2H) = [W1 | W3]
        X = x[tokens]  # (n, C) gather
        AB = X @ W13  # (n, 2H)
        A, B = AB[:, :H], AB[:, H:]
        s = np.tanh(A * 0.5)  # sigmoid(a) = (1 + tanh(a / 2)) / 2: one transcendental, never overflows
        s *= 0.5
        s += 0.5
        silu = A * s
        Hd = silu * B  # (n, H)
        Y = Hd @ weights[2 * E + e]  # (n, C)
        c = wflat[slots][:, None]  # (n, 1) combine weights
        out[tokens] += Y * c  # scatter-add, each token once per expert
        return W13, X, A, B, s, silu, Hd, Y, c

    def backward(self, g):
        (x_shape, w_shape), E = self.shapes, self.E
        need = self.needs_input_grad
        dw = np.zeros(w_shape[0] * w_shape[1], dtype=g.dtype) if need[1] else None
        dW = [None] * (3 * E)

        def run(args):  # each group writes its own experts' dW and slots of dw, and its own dx buffer
            group, saved = args
            dx = np.zeros(x_shape, dtype=g.dtype) if need[0] else None
            for (e, tokens, slots), cache in zip(group, saved):
                self._expert_backward(e, tokens, slots, cache, g, dx, dw, dW)
            return dx

        dxs = parallel_map(run, list(zip(self.groups, self.saved)))
        dx = dxs[0]
        if dx is not None:
            for other in dxs[1:]:
                dx += other
        return (dx, None if dw is None else dw.reshape(w_shape), *dW)

    def _expert_backward(self, e, tokens, slots, cache, g, dx, dw, dW):
        E, need = self.E, self.needs_input_grad
        W13, X, A, B, s, silu, Hd, Y, c = cache
        H = A.shape[1]
        G = g[tokens]  # (n, C)
        if dw is not None:
            dw[slots] = np.einsum("ij,ij->i", G, Y)  # dc = rowsum(G * Y)
        dY = G * c
        if need[2 + 2 * E + e]:
            dW[2 * E + e] = Hd.T @ dY  # (H, C)
        dHd = dY @ self.weights[2 * E + e].T  # (n, H)
        dAB = np.empty((len(tokens), 2 * H), dtype=g.dtype)
        np.multiply(dHd, silu, out=dAB[:, H:])  # dB
        t = 1.0 - s  # silu'(A) * B = s (1 + A (1 - s)) * B, built in place
        t *= A
        t += 1.0
        t *= s
        t *= B
        np.multiply(dHd, t, out=dAB[:, :H])  # dA
        if need[2 + e] or need[2 + E + e]:
            dW13 = X.T @ dAB  # (C, 2H) = [dW1 | dW3]
            dW[e], dW[E + e] = dW13[:, :H], dW13[:, H:]
        if dx is not None:
            dx[tokens] += dAB @ W13.T  # dA W1^T + dB W3^T


# Below this many multiply-adds per product the experts run on one thread: splitting would cost more than it saves.
PARALLEL_MIN_WORK = 1 << 22


def expert_groups(plan: list, n_groups: int) -> list:
    """Split the plan's experts into n_groups groups of about equal token counts (largest first, each to the
    lightest group), one group per thread."""
    if n_groups <= 1 or len(plan) <= 1:
        return [plan]
    groups, loads = [[] for _ in range(n_groups)], [0] * n_groups
    for entry in sorted(plan, key=lambda entry: -len(entry[1])):
        i = loads.index(min(loads))
        groups[i].append(entry)
        loads[i] += len(entry[1])
    return [group for group in groups if group]


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
        self.rng = np.random.default_rng() if rng is None else rng
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
        params = ([ex.w1.weight for ex in self.experts] + [ex.w3.weight for ex in self.experts]
                  + [ex.w2.weight for ex in self.experts])
        out = MoEDispatch.apply(x2, weights, *params, plan=plan)  # (N, C)

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
