"""The smallest BPE tokenizer: merges run over the raw UTF-8 bytes of the whole text.

Without a split pattern a merge may join the end of one word with the start of the next ("e t" in "the time"), so
tokens mix words and spaces freely. That is why GPT-2 and its successors split text first (`RegexTokenizer`);
this class is the one to read first because there is nothing else in it.

    tok = BasicTokenizer()
    tok.train("aaabdaaabac", 256 + 3)   # Wikipedia's example: aa -> 256, then (256, a) -> 257, (257, b) -> 258
    tok.encode("aaabdaaabac")           # [258, 100, 258, 97, 99]
"""

from __future__ import annotations

from .base import Tokenizer, replace_surrogates


class BasicTokenizer(Tokenizer):
    """Byte-level BPE with no split pattern."""

    pattern = None

    def _split(self, text: str) -> list[str]:
        return [text] if text else []

    def encode_ordinary(self, text: str) -> list[int]:
        # The whole text is one chunk: caching it would only keep a copy of every text ever encoded.
        try:
            return self._encode_chunk(text) if text else []
        except UnicodeEncodeError:
            return self._encode_chunk(replace_surrogates(text))

    def _set_pattern(self, pattern: str | None, path: str) -> None:
        if pattern is not None:
            raise ValueError(f"{path}: this model has a split pattern; load it with RegexTokenizer")
