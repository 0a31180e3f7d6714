"""Activation functions and clip/sign: forward and local derivative side by side, with torch's choice at each kink.

Where a function has a kink its derivative is undefined there, and a framework must pick one of the one-sided
derivatives. Each docstring states the pick PyTorch 2.13 makes (run and checked in the ref tests). At a NaN input
the gradient is NaN for the formulas, 0 for sign and for the masks of clip and relu6, the slope for leaky_relu.
Torch agrees for clip, sign, leaky_relu, softplus and mish; for elu, relu6 and hardswish its gradient at NaN
depends on where the element falls in its vectorized loop, so there is no torch choice to follow.

Formulas: softplus log(1 + e^(beta x)) / beta; ELU (Clevert et al. 2016); leaky ReLU (Maas et al. 2013); ReLU6
(Krizhevsky 2010); hard swish x relu6(x + 3) / 6 (Howard et al. 2019, MobileNetV3); Mish x tanh(softplus(x))
(Misra 2019). Constants are Python numbers so that float32 stays float32 (see elementwise.py).
"""

from __future__ import annotations

import numpy as np

from ..function import Function
from .elementwise import sigmoid


def softplus(z: np.ndarray) -> np.ndarray:
    """log(1 + e^z) that cannot overflow: np.logaddexp(0, z) is max(z, 0) + log1p(e^-|z|), in z's dtype."""
    with np.errstate(invalid="ignore"):  # NaN in, NaN out, without the warning logaddexp alone gives
        return np.logaddexp(0.0, z)


class Clip(Function):
    """min(max(x, lo), hi), either bound None (unbounded). d/dx is 1 where lo <= x <= hi, bounds included, else 0:
    torch's choice, so NaN gets 0. With lo > hi every output is hi and no entry gets a gradient, as in torch."""

    def forward(self, x, lo, hi):
        if lo is None and hi is None:
            raise ValueError("clip: at least one of min and max must be given (not both None)")
        for b in (lo, hi):
            if b is not None and not isinstance(b, (int, float)):
                raise TypeError(f"clip: min and max must be numbers or None, got {type(b).__name__}")
        self.mask = (x >= lo if lo is not None else True) & (x <= hi if hi is not None else True)
        return np.clip(x, lo, hi)

    def backward(self, g):
        return g * self.mask


class Sign(Function):
    """-1, 0 or 1, computed as torch does, (x > 0) - (x < 0): sign(NaN) is 0 (np.sign would give NaN) and
    sign(-0.0) is +0.0. The derivative is 0 everywhere, the jump at 0 included (torch's choice)."""

    def forward(self, x):
        if x.dtype == np.bool_:
            return x.copy()  # the sign of True is True, as torch
        out = (x > 0).astype(x.dtype)
        out -= x < 0
        return out

    def backward(self, g):
        return np.zeros_like(g)


class Softplus(Function):
    """log(1 + e^(beta x)) / beta, switching to x itself where beta x > threshold (torch's linear tail), where d/dx
    is exactly 1; elsewhere d/dx = sigmoid(beta x). At beta x == threshold the smooth branch is used, as in torch.
    Unlike torch's log1p(exp(.)), the smooth branch cannot overflow, whatever the threshold."""

    def forward(self, x, beta, threshold):
        self.z = x * beta
        self.linear = self.z > threshold
        return np.where(self.linear, x, softplus(self.z) / beta)

    def backward(self, g):
        return g * np.where(self.linear, 1.0, sigmoid(self.z))


class Elu(Function):
    """x for x > 0, alpha (e^x - 1) for x <= 0. d/dx = 1 for x > 0 and alpha e^x for x <= 0: at 0 it is alpha (the
    left derivative, torch's choice)."""

    def forward(self, x, alpha):
        self.x, self.alpha = x, alpha
        return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))  # minimum: no e^x overflow in the unused branch

    def backward(self, g):
        x = self.x
        return np.where(x > 0, g, g * (self.alpha * np.exp(np.minimum(x, 0))))


class LeakyRelu(Function):
    """x for x > 0, negative_slope x otherwise. d/dx = 1 for x > 0 and negative_slope for x <= 0: at 0 it is the
    slope (torch's choice)."""

    def forward(self, x, negative_slope):
        self.pos, self.slope = x > 0, negative_slope
        return np.where(self.pos, x, x * negative_slope)

    def backward(self, g):
        return np.where(self.pos, g, g * self.slope)


class Relu6(Function):
    """min(max(x, 0), 6). d/dx = 1 strictly inside (0, 6) and 0 at both kinks, x = 0 and x = 6: torch computes it as
    hardtanh(x, 0, 6), whose backward passes the gradient only where 0 < x < 6 (unlike clip, bounds excluded)."""

    def forward(self, x):
        self.inside = (x > 0) & (x < 6)
        return np.clip(x, 0, 6)

    def backward(self, g):
        return g * self.inside


class Hardswish(Function):
    """x relu6(x + 3) / 6. d/dx = 0 for x <= -3, x / 3 + 1/2 for -3 < x < 3, and 1 for x >= 3: at -3 it is 0 (the
    left derivative; the right one is -1/2), at 3 it is 1 (the right one; the left is 3/2): torch's choices."""

    def forward(self, x):
        self.x = x
        return x * np.clip(x + 3.0, 0, 6) / 6.0  # torch's order of operations, so float32 rounds the same

    def backward(self, g):
        x = self.x
        return g * np.where(x <= -3.0, 0.0, np.where(x >= 3.0, 1.0, x / 3.0 + 0.5))


class Mish(Function):
    """x tanh(softplus(x)), smooth everywhere. With t = tanh(softplus(x)) and d softplus/dx = sigmoid(x),
    d/dx = t + x sigmoid(x) (1 - t^2). Stable for large |x|: softplus cannot overflow, t saturates at 1 for large x,
    and for very negative x the output is x e^x, tending to -0."""

    def forward(self, x):
        self.x, self.t = x, np.tanh(softplus(x))
        return x * self.t

    def backward(self, g):
        t = self.t
        return g * (t + self.x * sigmoid(self.x) * (1.0 - t * t))
