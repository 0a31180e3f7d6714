"""The experts' half of a sparse Mixture-of-Experts layer: dispatch each token to its top-k experts, combine.

    y_i = sum_{j < k} w_ij * SwiGLU_{e_ij}(x_i)        (Shazeer et al. 2017; top-k routing as in Mixtral)

for token i routed to experts e_i0 .. e_i(k-1) with combine weights w_i (layers/moe.py routes and weighs). Dispatch
is grouped: the (token, expert) assignments are sorted by expert (`dispatch_plan`), so each expert gathers the
tokens routed to it and runs one batched SwiGLU on them; no expert ever sees a token that was not routed to it.
Assignments beyond an expert's capacity are not in the plan: they contribute 0.

`moe_dispatch` reads `tinygrad_lite.is_fused_enabled()` on every call:
- the reference path, `moe_dispatch_reference`: gather, one SwiGLU per expert and the weighted sum above, in
  primitive Tensor ops;
- the fused path, `MoEDispatch`: one Function with a hand-written backward.
Tests hold the two to the same values and gradients.
"""

from __future__ import annotations

import numpy as np

from tinygrad_lite import Function, Tensor, is_fused_enabled


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


def moe_dispatch_reference(x: Tensor, w: Tensor, w1: list, w3: list, w2: list, plan: list) -> Tensor:
    """y_i = sum_j w_ij SwiGLU_{e_ij}(x_i) in Tensor ops: x (N, C), w (N, k), per-expert weights -> (N, C)."""
    N, k = w.shape
    outputs = []  # per expert: its SwiGLU on the tokens routed to it
    row_of_slot = np.full(N * k, sum(len(tokens) for _, tokens, _ in plan))  # unplanned slots: the zero row
    start = 0
    for e, tokens, slots in plan:
        X = x[tokens]  # (n, C) gather
        outputs.append(((X @ w1[e]).silu() * (X @ w3[e])) @ w2[e])  # (n, C) SwiGLU: w2(silu(x w1) * (x w3))
        row_of_slot[slots] = np.arange(start, start + len(tokens))
        start += len(tokens)
    outputs.append(Tensor(np.zeros((1, x.shape[1]), dtype=x.dtype)))  # what a dropped assignment contributes
    per_slot = Tensor.cat(outputs, axis=0)[row_of_slot].reshape(N, k, x.shape[1])  # (N, k, C): E_{e_ij}(x_i)
    return (per_slot * w.reshape(N, k, 1)).sum(axis=1)  # (N, C): the weighted sum over each token's k choices


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
    """

    def forward(self, x, w, *weights, plan):
        self.E, self.weights, self.plan, self.w_shape = len(weights) // 3, weights, plan, w.shape
        wflat = w.reshape(-1)
        out = np.zeros_like(x)
        self.saved = [self._expert_forward(e, tokens, slots, x, wflat, out) for e, tokens, slots in plan]
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
        E, need = self.E, self.needs_input_grad
        dx = np.zeros(g.shape, dtype=g.dtype) if need[0] else None
        dw = np.zeros(self.w_shape[0] * self.w_shape[1], dtype=g.dtype) if need[1] else None
        dW = [None] * (3 * E)
        for (e, tokens, slots), cache in zip(self.plan, self.saved):
            self._expert_backward(e, tokens, slots, cache, g, dx, dw, dW)
        return (dx, None if dw is None else dw.reshape(self.w_shape), *dW)

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


def moe_dispatch(x: Tensor, w: Tensor, w1: list, w3: list, w2: list, plan: list) -> Tensor:
    """The weighted sum of each token's experts' SwiGLU outputs: x (N, C), combine weights w (N, k), the experts'
    w1 (C, H), w3 (C, H) and w2 (H, C) as lists indexed by expert, plan from dispatch_plan -> (N, C)."""
    if not is_fused_enabled():
        return moe_dispatch_reference(x, w, w1, w3, w2, plan)
    return MoEDispatch.apply(x, w, *w1, *w3, *w2, plan=plan)
