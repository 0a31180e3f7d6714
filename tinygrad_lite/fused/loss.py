"""Softmax cross-entropy as one Function: the loss of every language model here (Szegedy et al. 2016 for smoothing).

The reference path (`tinygrad_lite.functional`, set_fused(False)) builds the same loss from log_softmax, indexing
and a mean; this Function does it in a few NumPy passes, and its backward is the classic one-liner p - q.
"""

from __future__ import annotations

import numpy as np

from ..function import Function


class CrossEntropy(Function):
    """Softmax cross-entropy with label smoothing, PyTorch's semantics.

    With p = softmax(z) over C classes and smoothing e, the target distribution is q = (1 - e) onehot(t) + e / C and
    loss = -sum_c q_c log p_c. Its gradient with respect to the logits is simply p - q. Targets equal to
    ignore_index contribute no loss and no gradient; "mean" divides by the number of targets that are not ignored.
    """

    def forward(self, logits, targets, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
        C = logits.shape[-1]
        z = logits.reshape(-1, C)  # (N, C)
        t = targets.reshape(-1)  # (N,)
        valid = t != ignore_index
        safe_t = np.where(valid, t, 0)
        shifted = z - z.max(axis=1, keepdims=True)  # exp of the largest logit is exp(0): no overflow
        logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))  # (N, C) log-probabilities
        nll = -logp[np.arange(len(t)), safe_t]
        loss = (1.0 - label_smoothing) * nll - label_smoothing * logp.mean(axis=1) if label_smoothing else nll
        loss = np.where(valid, loss, 0).astype(logits.dtype, copy=False)
        self.logp, self.t, self.valid, self.eps, self.reduction = logp, safe_t, valid, label_smoothing, reduction
        self.in_shape, self.n_valid = logits.shape, int(valid.sum())
        if reduction == "none":
            return loss.reshape(targets.shape)
        if reduction == "sum":
            return np.asarray(loss.sum(), dtype=logits.dtype)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(loss.sum() / logits.dtype.type(self.n_valid), dtype=logits.dtype)  # 0/0 = nan as torch

    def backward(self, g):
        grad = np.exp(self.logp)  # p
        N, C = grad.shape
        if self.eps:
            grad -= self.eps / C
        grad[np.arange(N), self.t] -= 1.0 - self.eps  # p - q
        if self.reduction == "none":
            scale = g.reshape(-1, 1) * self.valid[:, None]
        else:
            w = 1.0 / self.n_valid if self.reduction == "mean" and self.n_valid else 1.0
            scale = self.valid.astype(grad.dtype)[:, None] * (float(g) * w)  # bool -> float32 first: no float64
        grad *= scale
        return grad.reshape(self.in_shape), None
