"""Neural-network ops, each written twice: as the formula in primitive ops, and as one fused Function.

    import tinygrad_lite.functional as F

Each public function (cross_entropy, layer_norm, rms_norm, gelu, linear, embedding, dropout) checks its arguments
and then asks `tinygrad_lite.is_fused_enabled()` which path to run:
- fused (the default): one Function from tinygrad_lite/fused/ with a hand-written backward, fast;
- reference (`tinygrad_lite.set_fused(False)`): the `*_reference` function beside it, built from the primitive ops
  of tinygrad_lite/ops/ line by line as the paper writes the formula, so that every step of it is a graph node a
  learner can print and step into. Tests hold the two paths to the same values and gradients.
"""

from __future__ import annotations

import math

import numpy as np

from .function import _implementations, is_fused_enabled
from .fused.gelu import Gelu
from .fused.linear import Embedding, Linear
from .fused.loss import CrossEntropy
from .fused.norm import LayerNorm, RMSNorm
from .ops.elementwise import Erf
from .tensor import Tensor, as_generator

# --------------------------------------------------------------------------------------------- cross-entropy


def cross_entropy(logits: Tensor, targets, ignore_index: int = -100, label_smoothing: float = 0.0,
                  reduction: str = "mean") -> Tensor:
    """Cross-entropy of logits (..., C) against integer targets (...), PyTorch's semantics."""
    targets = targets if isinstance(targets, Tensor) else Tensor(np.asarray(targets))
    if not np.issubdtype(targets.dtype, np.integer):
        raise TypeError(f"cross_entropy: targets must be integers (class indices), got dtype {targets.dtype}")
    if logits.shape[:-1] != targets.shape:
        raise ValueError(f"cross_entropy: logits of shape {logits.shape} need targets of shape {logits.shape[:-1]}, "
                         f"got {targets.shape}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    t = targets.data
    bad = (t != ignore_index) & ((t < 0) | (t >= logits.shape[-1]))
    if bad.any():
        raise IndexError(f"cross_entropy: target {int(t[bad][0])} is out of range for {logits.shape[-1]} classes")
    # float(): a NumPy float64 smoothing factor would upcast a float32 loss
    args = dict(ignore_index=ignore_index, label_smoothing=float(label_smoothing), reduction=reduction)
    if (override := _implementations.get("cross_entropy")) is not None:
        return override(logits, targets, **args)
    if is_fused_enabled():
        return CrossEntropy.apply(logits, targets, **args)
    return cross_entropy_reference(logits, targets, **args)


def cross_entropy_reference(logits: Tensor, targets: Tensor, ignore_index: int = -100, label_smoothing: float = 0.0,
                            reduction: str = "mean") -> Tensor:
    """loss = -sum_c q_c log p_c with p = softmax(z), q = (1 - e) onehot(t) + e / C (Szegedy et al. 2016).

    log p = z - m - log sum_c exp(z_c - m) for the row maximum m: exp never overflows, and m needs no gradient
    because log p does not depend on it (the two m terms cancel).
    """
    C = logits.shape[-1]
    z = logits.reshape(-1, C)  # (N, C)
    t = targets.data.reshape(-1)  # (N,)
    valid = t != ignore_index
    shifted = z - Tensor(z.data.max(axis=-1, keepdims=True))  # a constant shift
    logp = shifted - shifted.exp().sum(axis=-1, keepdims=True).log()  # (N, C) log-probabilities
    nll = -logp[np.arange(len(t)), np.where(valid, t, 0)]  # (N,) -log p of each target
    loss = (1.0 - label_smoothing) * nll - label_smoothing * logp.mean(axis=-1) if label_smoothing else nll
    loss = loss.masked_fill(~valid, 0.0)  # ignored targets add nothing
    if reduction == "none":
        return loss.reshape(targets.shape)
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / float(valid.sum()) if valid.any() else loss.sum() * math.nan  # no target: nan, as torch


# --------------------------------------------------------------------------------------------- normalisation


def layer_norm(x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Layer normalisation over the last axis (Ba, Kiros & Hinton 2016), with optional gain and bias."""
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and p.shape != x.shape[-1:]:
            raise ValueError(f"layer_norm: {name} of shape {p.shape} for input of shape {x.shape}")
    if (override := _implementations.get("layer_norm")) is not None:
        return override(x, weight, bias, eps)
    if not is_fused_enabled():
        return layer_norm_reference(x, weight, bias, eps)
    params = [p for p in (weight, bias) if p is not None]
    return LayerNorm.apply(x, *params, eps=eps, has_weight=weight is not None, has_bias=bias is not None)


def layer_norm_reference(x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None,
                         eps: float = 1e-5) -> Tensor:
    """y = (x - mu) / sqrt(sigma^2 + eps) * w + b, mu and sigma^2 the mean and (biased) variance of the last axis."""
    mu = x.mean(axis=-1, keepdims=True)  # (..., 1)
    centred = x - mu
    var = (centred * centred).mean(axis=-1, keepdims=True)  # (..., 1)
    y = centred / (var + eps).sqrt()
    if weight is not None:
        y = y * weight
    return y + bias if bias is not None else y


def rms_norm(x: Tensor, weight: Tensor | None = None, eps: float = 1e-6) -> Tensor:
    """Root-mean-square normalisation over the last axis (Zhang & Sennrich 2019), with an optional gain."""
    if weight is not None and weight.shape != x.shape[-1:]:
        raise ValueError(f"rms_norm: weight of shape {weight.shape} for input of shape {x.shape}")
    if not is_fused_enabled():
        return rms_norm_reference(x, weight, eps)
    return RMSNorm.apply(x, *([weight] if weight is not None else []), eps=eps)


def rms_norm_reference(x: Tensor, weight: Tensor | None = None, eps: float = 1e-6) -> Tensor:
    """y = x / sqrt(mean(x^2) + eps) * w over the last axis."""
    y = x / ((x * x).mean(axis=-1, keepdims=True) + eps).sqrt()
    return y * weight if weight is not None else y


# --------------------------------------------------------------------------------------------- activations


def gelu(x: Tensor, approximate: str = "tanh") -> Tensor:
    """GELU (Hendrycks & Gimpel 2016): exact x Phi(x) with approximate="none", GPT-2's tanh form with "tanh"."""
    if approximate not in ("tanh", "none"):
        raise ValueError(f"gelu: approximate must be 'tanh' or 'none', got {approximate!r}")
    if (override := _implementations.get("gelu")) is not None:
        return override(x, approximate)
    if is_fused_enabled():
        return Gelu.apply(x, approximate=approximate)
    return gelu_reference(x, approximate)


def gelu_reference(x: Tensor, approximate: str = "tanh") -> Tensor:
    """x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)), or 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    if approximate == "tanh":
        return 0.5 * x * (1.0 + (math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)).tanh())
    return 0.5 * x * (1.0 + Erf.apply(x * (1.0 / math.sqrt(2.0))))


# --------------------------------------------------------------------------------------------- layers' kernels


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = x @ W + b, W stored (in, out) as GPT-2's Conv1D."""
    if x.shape[-1] != weight.shape[0]:
        raise ValueError(f"linear: input of shape {x.shape} and weight of shape {weight.shape} are not aligned "
                         f"({x.shape[-1]} != {weight.shape[0]})")
    if not is_fused_enabled():
        return linear_reference(x, weight, bias)
    return Linear.apply(x, weight, *([bias] if bias is not None else []))


def linear_reference(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    y = x @ weight
    return y + bias if bias is not None else y


def embedding(weight: Tensor, ids) -> Tensor:
    """Rows of weight (V, C) picked by integer ids (...) -> (..., C)."""
    ids = ids if isinstance(ids, Tensor) else Tensor(np.asarray(ids))
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"embedding: ids must be integers, got dtype {ids.dtype}")
    if ids.size and (ids.data.min() < 0 or ids.data.max() >= weight.shape[0]):
        bad = ids.data[(ids.data < 0) | (ids.data >= weight.shape[0])][0]
        raise IndexError(f"embedding: id {int(bad)} is out of range for a table of {weight.shape[0]} rows")
    if not is_fused_enabled():
        return weight[ids.data]  # the reference path: indexing, whose backward adds repeated rows (np.add.at)
    return Embedding.apply(weight, ids)


def dropout(x: Tensor, p: float = 0.5, training: bool = True, rng: np.random.Generator | None = None) -> Tensor:
    """Inverted dropout (Srivastava et al. 2014): zero with probability p, scale the survivors by 1 / (1 - p).

    One path for both settings: a product with a constant mask is already a single graph node.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    keep = as_generator(rng).random(x.shape, dtype=np.float32) >= p
    return x * Tensor._wrap(keep * x.dtype.type(1.0 / (1.0 - p)), False)  # (mask / (1 - p)) in x's dtype


# --------------------------------------------------------------------------------------------- the rest


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    return x.softmax(axis)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    return x.log_softmax(axis)


def relu(x: Tensor) -> Tensor:
    return x.relu()


def silu(x: Tensor) -> Tensor:
    return x.silu()


# --------------------------------------------------------------------------------------------- activations
# torch.nn.functional's names and defaults (clip, clamp and sign are torch.* functions); primitives in ops/activation.py


def clip(x: Tensor, min=None, max=None) -> Tensor: return x.clip(min, max)
def sign(x: Tensor) -> Tensor: return x.sign()
def softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor: return x.softplus(beta, threshold)
def elu(x: Tensor, alpha: float = 1.0) -> Tensor: return x.elu(alpha)
def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor: return x.leaky_relu(negative_slope)
def relu6(x: Tensor) -> Tensor: return x.relu6()
def hardswish(x: Tensor) -> Tensor: return x.hardswish()
def mish(x: Tensor) -> Tensor: return x.mish()


clamp = clip
