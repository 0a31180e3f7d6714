"""Byte-level BPE tokenizers in Python: how text becomes ids, trained in a fraction of a second, GPT-2-exact.

Read in this order: `bpe.py` (encoding a chunk with merges), `reference_trainer.py` (training as defined),
`trainer.py` (the same merges, fast), `trainer_numpy.py` (the same again, each round a few array operations),
`base.py` (encode/decode/special tokens), `bpe_batch.py` (many chunks at once, with NumPy), `basic.py`,
`regex_tokenizer.py` (split patterns), `gpt2.py` (published vocabularies), `model_file.py` (saving), `cli.py`
(command line).
"""

from .base import DisallowedSpecialTokenError, Tokenizer
from .basic import BasicTokenizer
from .regex_tokenizer import GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN, PATTERNS, RegexTokenizer

__all__ = [
    "BasicTokenizer",
    "RegexTokenizer",
    "Tokenizer",
    "DisallowedSpecialTokenError",
    "GPT2_SPLIT_PATTERN",
    "GPT4_SPLIT_PATTERN",
    "PATTERNS",
    "load",
]


def load(path: str) -> Tokenizer:
    """Load a `.model` file as the right class: RegexTokenizer if it has a split pattern, else BasicTokenizer."""
    from .model_file import read

    pattern = read(path)[0]
    return (BasicTokenizer() if pattern is None else RegexTokenizer()).load(path)
