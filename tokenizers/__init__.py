"""Byte-level BPE tokenizers in Python: how text becomes ids, GPT-2-exact, trained in a fraction of a second.

Read in this order: `bpe.py` (encoding a chunk with merges), `reference_trainer.py` (training as defined),
`base.py` (the state, training, encode/decode, special tokens), `basic.py`, `regex_tokenizer.py` (split patterns),
`gpt2.py` (GPT-2's published vocabulary), `char.py` (a vocabulary of characters). `fast/` gives the same merges
and ids faster behind the same methods; `tools/` holds the file formats and the command line.

This is transformers-from-scratch's package, not Hugging Face's `tokenizers`, which has the same name
(tools/identity.py).
"""

from .base import DisallowedSpecialTokenError, Tokenizer
from .basic import BasicTokenizer
from .char import CharTokenizer, UnknownCharactersError
from .regex_tokenizer import GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN, PATTERNS, RegexTokenizer
from .tools.identity import HUGGING_FACE_NAMES, PROJECT, not_hugging_face

__project__ = PROJECT

__all__ = [
    "BasicTokenizer",
    "RegexTokenizer",
    "CharTokenizer",
    "Tokenizer",
    "DisallowedSpecialTokenError",
    "UnknownCharactersError",
    "GPT2_SPLIT_PATTERN",
    "GPT4_SPLIT_PATTERN",
    "PATTERNS",
    "load",
]


def load(path: str) -> Tokenizer:
    """Load a `.model` file as the right class: RegexTokenizer if it has a split pattern, else BasicTokenizer."""
    from .tools.model_file import read

    pattern = read(path)[0]
    return (BasicTokenizer() if pattern is None else RegexTokenizer()).load(path)


def __getattr__(name: str):
    # Reached only for names the module does not have.
    if name in HUGGING_FACE_NAMES:
        raise not_hugging_face(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
