"""GPT-2's and GPT-4's split patterns for ASCII-only text, in the standard library's `re`.

Splitting is most of the cost of encoding, and `re` runs these forms about twice as fast as `regex` runs the
originals. For ASCII text \\p{L} is [A-Za-z], \\p{N} is [0-9] and \\s (in `regex`) is [\\t\\n\\v\\f\\r ]. They are
written out rather than \\s because `re`'s \\s also matches \\x1c-\\x1f. The possessive quantifiers can go: nothing
after them can succeed by backtracking into them. Tests check that both forms split every ASCII text alike.
"""

from __future__ import annotations

import re

from ..regex_tokenizer import GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN

_S = r"\t\n\x0b\x0c\r "
ASCII_FORMS = {
    GPT2_SPLIT_PATTERN: (
        rf"""'(?:[sdmt]|ll|ve|re)| ?[A-Za-z]+| ?[0-9]+| ?[^{_S}A-Za-z0-9]+|[{_S}]+(?![^{_S}])|[{_S}]+"""
    ),
    GPT4_SPLIT_PATTERN: (
        rf"""'(?i:[sdmt]|ll|ve|re)|[^\r\nA-Za-z0-9]?[A-Za-z]+|[0-9]{{1,3}}| ?[^{_S}A-Za-z0-9]+[\r\n]*"""
        rf"""|[{_S}]*[\r\n]|[{_S}]+(?![^{_S}])|[{_S}]+"""
    ),
}


def ascii_split(pattern: str) -> re.Pattern | None:
    """The `re` form of `pattern` for ASCII text, or None for a pattern that has none."""
    form = ASCII_FORMS.get(pattern)
    return re.compile(form) if form else None
