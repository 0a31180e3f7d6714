"""Samplers: turn a model's next-token logits into token ids.

Logits processors are pure functions on NumPy logits of shape (..., vocab): they return a new array of the same
dtype and never modify their input. Removed tokens become -inf. They depend on NumPy only.

    apply_repetition_penalty   CTRL's penalty on tokens already generated      (repetition.py)
    apply_temperature          divide by t                                      (temperature.py)
    top_k_filter               keep the k largest logits                        (top_k.py)
    top_p_filter               keep the nucleus of probability mass p           (top_p.py)
    min_p_filter               keep tokens with probability >= p * max          (min_p.py)
    greedy, sample             argmax, or a draw after the processors above     (sampling.py)

The generation loop over a model is not part of this package yet.
"""

from .min_p import min_p_filter
from .repetition import apply_repetition_penalty
from .sampling import greedy, process_logits, sample
from .softmax import softmax
from .temperature import apply_temperature
from .top_k import top_k_filter
from .top_p import top_p_filter

__all__ = [
    "apply_repetition_penalty",
    "apply_temperature",
    "greedy",
    "min_p_filter",
    "process_logits",
    "sample",
    "softmax",
    "top_k_filter",
    "top_p_filter",
]
