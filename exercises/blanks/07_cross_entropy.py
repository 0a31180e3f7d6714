"""Exercise 07: softmax and cross-entropy, stable for large logits, forward and backward.

Where it runs: the loss of every training step. The model's last layer gives logits z (B, T, V) for the next token
at each position, flattened to (N, C) rows; the loss is the mean over rows of -log p[target], with p = softmax(z).

    log_softmax(z) = z - m - log(sum_c exp(z_c - m))     m = max_c z_c, per row (keepdims)
    loss           = mean over the N rows of -log_softmax(z)[row, target[row]]
    dloss/dz       = (softmax(z) - onehot(target)) / N

Subtracting the row maximum m changes nothing mathematically (it cancels) but keeps exp from overflowing: logits of
1000 give exp(1000) = inf in float64 (exp(89) already in float32), and inf / inf = nan. After the shift the largest
term is exp(0) = 1.

Task: write
    log_softmax(z)                 z (N, C) -> (N, C), stable for large logits
    CrossEntropy.forward(z, t)     z (N, C) float, t (N,) integer class indices -> the mean loss, a 0-d array
    CrossEntropy.backward(grad)    grad, a 0-d array (dLoss/dloss) -> (dz (N, C), None); None for the targets
Keep float32 for float32 logits (np.asarray(x, dtype=z.dtype) makes a 0-d array of the right dtype).

The grader compares log_softmax, the loss and dz with the library's F.cross_entropy (tinygrad_lite/functional.py)
on (4, 5), a batch of one (1, 3), two classes, float32 (8, 10), and logits near +-1000 (where a formula without the
max subtraction gives nan); an upstream gradient other than 1; gradcheck in float64; and the library's
F.cross_entropy on (B, T, C) logits with your class plugged in. With `train.py --exercises`, the training loss is
yours (label smoothing and ignore_index, if a preset uses them, stay the library's).

    python -m exercises check cross_entropy        python -m exercises hint cross_entropy
"""

import numpy as np

from tinygrad_lite import Function


def log_softmax(z: np.ndarray) -> np.ndarray:
    """z (N, C) -> log softmax over the last axis, (N, C)."""
    raise NotImplementedError  # TODO


class CrossEntropy(Function):
    def forward(self, z, t):
        """z (N, C), t (N,) integers -> mean loss, a 0-d array of z's dtype."""
        raise NotImplementedError  # TODO

    def backward(self, grad):
        """grad () -> (dz (N, C), None)."""
        raise NotImplementedError  # TODO: return dz, None
