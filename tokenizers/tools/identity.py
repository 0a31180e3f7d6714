"""Whose `tokenizers` is this? Hugging Face's package has the same name, and the two cannot share an environment.

Installed with `pip install .` (not editable), this package is site-packages/tokenizers/, the folder into which
`pip install tokenizers` (or transformers, which needs it) writes Hugging Face's files, __init__.py included,
without a word. So the package says whose it is (`__project__`), the project's commands check that first
(`exit_unless_ours`), and asking it for a name only Hugging Face's package has explains the mix-up.
"""

from __future__ import annotations

import os
import sys

PROJECT = "transformers-from-scratch"
ADVICE = (
    "give transformers-from-scratch a virtual environment of its own, and run code that needs Hugging Face's "
    "tokenizers (transformers does) in another one, started outside the repository"
)
# Hugging Face's top-level names; `Tokenizer` is both packages', so it is not among them.
HUGGING_FACE_NAMES = frozenset(
    "AddedToken BertWordPieceTokenizer ByteLevelBPETokenizer CharBPETokenizer EncodeInput Encoding InputSequence "
    "NormalizedString OffsetReferential OffsetType Offsets PreTokenizedEncodeInput PreTokenizedInputSequence "
    "PreTokenizedString Regex SentencePieceBPETokenizer SentencePieceUnigramTokenizer SplitDelimiterBehavior "
    "TextEncodeInput TextInputSequence Token decoders implementations models normalizers pre_tokenizers processors "
    "tokenizers trainers".split()
)


def not_hugging_face(name: str) -> ImportError:
    """The error for a name of Hugging Face's package asked of this one (an ImportError, so that
    `from tokenizers import AddedToken` shows this message rather than Python's own)."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the package, above tools/
    return ImportError(
        f"{name!r} is Hugging Face's: the `tokenizers` package in {here} is {PROJECT}'s, not Hugging Face's; {ADVICE}",
        name=name,
    )


def exit_unless_ours() -> None:
    """Print one line and exit with status 2 unless `import tokenizers` gives this project's package."""
    import tokenizers

    if getattr(tokenizers, "__project__", None) != PROJECT:
        where = os.path.dirname(getattr(tokenizers, "__file__", None) or "?")
        print(
            f"error: the `tokenizers` package in {where} is not this project's (most likely Hugging Face's, installed "
            f"over it): {ADVICE}.",
            file=sys.stderr,
        )
        sys.exit(2)
