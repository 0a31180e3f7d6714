"""Temperature: divide the logits by t before the softmax.

    p_i(t) = exp(x_i / t) / sum_j exp(x_j / t)

The name comes from the Boltzmann distribution exp(-E_i / kT) (used for networks by Ackley, Hinton & Sejnowski,
"A Learning Algorithm for Boltzmann Machines", 1985). t < 1 sharpens the distribution towards the argmax, t > 1
flattens it towards uniform, t = 1 leaves it alone. The limit t -> 0 is greedy decoding, but dividing by 0 is not:
for that case call `samplers.greedy` instead. Same semantics as transformers' TemperatureLogitsWarper.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ._checks import as_logits


def apply_temperature(logits, t: float) -> np.ndarray:
    """Return logits / t as a new array of the input's dtype. Raises ValueError unless t is finite and > 0."""
    if isinstance(t, bool) or not isinstance(t, numbers.Real) or not math.isfinite(t) or t <= 0:
        hint = " (for t = 0, i.e. always the most likely token, use samplers.greedy)" if t == 0 else ""
        raise ValueError(f"apply_temperature: temperature must be a finite number > 0, got {t!r}{hint}")
    x = as_logits(logits, "apply_temperature")
    # A Python float keeps float32 logits float32 (NumPy 2 treats it as a "weak" scalar, like PyTorch does).
    return x / float(t)
