"""The fast path: the same merges and the same ids as the teaching core, in a fraction of the time.

Nothing here changes a result; tests hold every piece to the readable code it stands in for.

- `trainer_python.py`: training without recounting the corpus, counts updated around each merge, a lazy heap
  (`Tokenizer.train(..., trainer="python")`).
- `trainer_numpy.py`: the same, each round a few dozen array operations (`trainer="numpy"`), and `train_auto`,
  the default (`trainer="auto"`), which picks NumPy or Python by the size of the corpus and the vocabulary.
- `encoder.py`: what `encode` runs while a tokenizer's `fast` is True: a chunk cache, and new chunks encoded
  together by `bpe_batch.py` (the BPE rule on thousands of chunks at once, in NumPy) or one at a time by
  `bpe_long.py` (a heap or a replay of the merges instead of `bpe.bpe`'s O(n^2) loop for long chunks).
- `split.py`: the GPT-2 and GPT-4 patterns for ASCII text in the standard library's faster `re`.

NumPy is imported only when a text or a vocabulary first needs it.
"""

from .encoder import FastEncoder
from .trainer_numpy import train_auto, train_numpy
from .trainer_python import train_python

__all__ = ["FastEncoder", "train_auto", "train_numpy", "train_python"]
