"""BPE after a split pattern: the tokenizer design of GPT-2 (Radford et al., 2019) and GPT-4 (cl100k).

The text is first cut into chunks by a regular expression (letters with at most one leading space, digit runs,
punctuation runs, whitespace) and BPE runs inside each chunk, so a token never spans "dog" and "." in "dog.".
GPT-2's paper gives the reason: without it, BPE spends vocabulary on variants like "dog.", "dog!", "dog?".

The two patterns differ in instructive ways: GPT-4's splits digits into groups of at most three (numbers get
consistent tokens), matches contractions case-insensitively ("DON'T"), lets a letter run take one leading
non-letter character of any kind, and keeps newlines apart from other whitespace. `\\s+(?!\\S)` in both leaves the
last space of a whitespace run to begin the next word, so " world" stays one token after many spaces.

GPT-2's exact tokenizer comes from its published files: `RegexTokenizer.from_gpt2("encoder.json")`.
"""

from __future__ import annotations

import regex

from .base import Tokenizer

GPT2_SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
GPT4_SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
)
PATTERNS = {"gpt2": GPT2_SPLIT_PATTERN, "gpt4": GPT4_SPLIT_PATTERN}


class RegexTokenizer(Tokenizer):
    """Byte-level BPE inside the chunks of a split pattern (GPT-4's by default)."""

    def __init__(self, pattern: str = GPT4_SPLIT_PATTERN) -> None:
        self._compile(pattern)
        super().__init__()

    def _compile(self, pattern: str) -> None:
        try:
            self._compiled = regex.compile(pattern)
        except regex.error as e:
            raise ValueError(f"invalid split pattern {pattern!r}: {e}") from None
        self.pattern = pattern
        from .fast.split import ascii_split  # here, not at the top: fast/split.py reads the patterns above

        self._ascii = ascii_split(pattern)

    def _split(self, text: str) -> list[str]:
        if self.fast and self._ascii is not None and text.isascii():
            return self._ascii.findall(text)  # the same chunks, split about twice as fast
        return self._compiled.findall(text)

    def _set_pattern(self, pattern: str | None, path: str) -> None:
        if pattern is None:
            raise ValueError(f"{path}: this model has no split pattern; load it with BasicTokenizer")
        self._compile(pattern)

    # ----- published vocabularies (gpt2.py, tools/bpe_files.py) ----------------------------------------------------

    @classmethod
    def _from_parts(cls, pattern, byte_ids, merges, specials) -> RegexTokenizer:
        tok = cls(pattern)
        tok.byte_ids, tok.merges, tok.special_tokens = byte_ids, merges, specials
        tok._rebuild()
        return tok

    @classmethod
    def from_gpt2(cls, encoder_json, vocab_bpe=None) -> RegexTokenizer:
        """GPT-2's tokenizer from OpenAI's `encoder.json` (and `vocab.bpe`; without it the merges are recovered)."""
        from .gpt2 import read_gpt2

        return cls._from_parts(GPT2_SPLIT_PATTERN, *read_gpt2(encoder_json, vocab_bpe))

    @classmethod
    def from_hf(cls, vocab_json, merges_txt, pattern: str = GPT2_SPLIT_PATTERN) -> RegexTokenizer:
        """A Hugging Face byte-level BPE (`vocab.json` + `merges.txt`); tokens that are neither bytes nor merge
        results (such as "<|endoftext|>") become special tokens."""
        from .tools.bpe_files import read_hf

        return cls._from_parts(pattern, *read_hf(vocab_json, merges_txt))

    def to_hf(self, directory) -> None:
        """Write `vocab.json` and `merges.txt` in Hugging Face's byte-level BPE format into `directory`."""
        from .tools.bpe_files import write_hf

        write_hf(self, directory)
