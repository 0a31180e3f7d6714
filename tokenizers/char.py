"""The simplest tokenizer: one id per character of the corpus, as in nanoGPT's shakespeare_char.

The vocabulary is the sorted set of characters in the training text (65 for tinyshakespeare): nothing to learn, and
the model sees every letter. Unlike byte-level BPE it cannot encode a character it has never seen.
"""

from __future__ import annotations


class UnknownCharactersError(ValueError):
    """The text holds characters that are not in the vocabulary."""


class CharTokenizer:
    """Characters of the corpus, sorted, as the vocabulary: id i is `chars[i]`."""

    def __init__(self, chars: str) -> None:
        if len(set(chars)) != len(chars):
            raise ValueError(f"the vocabulary {chars!r} lists a character twice")
        self.chars = chars
        self.stoi = {c: i for i, c in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        return cls("".join(sorted(set(text))))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        missing = sorted({c for c in text if c not in self.stoi})
        if missing:
            raise UnknownCharactersError(f"characters not in the training vocabulary: {''.join(missing)!r}")
        return [self.stoi[c] for c in text]

    encode_ordinary = encode  # no special tokens: the same thing, under the BPE tokenizers' name

    def decode(self, ids) -> str:
        ids = [int(i) for i in ids]  # NumPy integers too
        bad = [i for i in ids if not 0 <= i < len(self.chars)]
        if bad:
            raise ValueError(f"token id {bad[0]} is not in the vocabulary (ids in use: {self.vocab_size})")
        return "".join([self.chars[i] for i in ids])
