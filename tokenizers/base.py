"""What every BPE tokenizer shares: the state (merges, vocabulary, special tokens), training, encode and decode.

A byte-level BPE tokenizer is fully described by
- `byte_ids`: the id of each of the 256 single-byte tokens (0..255 in order for the ones we train; GPT-2 numbers
  them differently, so this is part of the model rather than an assumption),
- `merges`: {(id1, id2): new_id} in the order the merges were learned (the order is the priority when encoding),
- `special_tokens`: {text: id} for markers such as "<|endoftext|>" that never come out of merging.
Everything else (`vocab`, the ranks) is derived from these three by `_rebuild`.

Subclasses decide how text is cut into chunks before BPE (`_split`): `BasicTokenizer` does not cut at all,
`RegexTokenizer` uses a split pattern so that merges never cross, say, a word and the space before the next one.
Encoding runs `bpe.bpe` on every chunk; while `fast` is True (the default) the same ids come from fast/encoder.py,
which caches chunks and encodes new ones in bulk. Special tokens follow tiktoken's rules.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Iterable

import regex

from .bpe import Pair, bpe
from .fast import FastEncoder, train_auto, train_numpy, train_python
from .reference_trainer import train_reference

# How `train` computes the merges, never which: every trainer learns the same ones, and the tests hold them to it.
TRAINERS: dict[str, Callable] = {
    "auto": train_auto,  # NumPy when the corpus is large enough to repay it, else Python
    "numpy": train_numpy,
    "python": train_python,
    "reference": train_reference,  # recounts every pair each round: seconds where the others take a fraction of one
}


def replace_surrogates(text: str) -> str:
    """Lone surrogates (say from a JSON "\\ud800") have no UTF-8 form: make them U+FFFD, as tiktoken does."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


class DisallowedSpecialTokenError(ValueError):
    """The text contains a special token that `allowed_special` does not allow."""


class Tokenizer:
    """Base class. Use `BasicTokenizer` or `RegexTokenizer`."""

    pattern: str | None = None
    fast = True  # False: encode by the readable path alone (same ids, slower); tests compare the two

    def __init__(self) -> None:
        self.byte_ids: list[int] = list(range(256))
        self.merges: dict[Pair, int] = {}
        self.special_tokens: dict[str, int] = {}
        self._rebuild()

    # ----- state ---------------------------------------------------------------------------------------------------

    def _rebuild(self) -> None:
        """Derive the vocabulary, the merge ranks and the special-token matcher from the primary state."""
        if len(self.byte_ids) != 256 or len(set(self.byte_ids)) != 256:
            raise ValueError("byte_ids must give 256 distinct ids, one per byte value")
        vocab = {i: bytes([b]) for b, i in enumerate(self.byte_ids)}
        for (a, b), new in self.merges.items():
            if a not in vocab or b not in vocab:
                missing = a if a not in vocab else b
                raise ValueError(f"merge ({a}, {b}) -> {new} uses id {missing}, which no earlier merge or byte defines")
            token = vocab[a] + vocab[b]
            if vocab.setdefault(new, token) != token:
                raise ValueError(f"merge ({a}, {b}) -> {new} gives id {new} a second, different meaning")
        for text, i in self.special_tokens.items():
            if i in vocab:
                raise ValueError(f"special token {text!r} has id {i}, which the vocabulary already uses")
            vocab[i] = text.encode("utf-8")
        self.vocab: dict[int, bytes] = vocab
        self._ranks: dict[Pair, int] = {pair: rank for rank, pair in enumerate(self.merges)}
        # Longest first, so that a special token that starts another one never hides it.
        names = sorted(self.special_tokens, key=lambda s: (-len(s), s))
        self._special_re = regex.compile("|".join(regex.escape(s) for s in names)) if names else None
        self._fast = FastEncoder(self.byte_ids, self.merges, self._ranks, vocab, self.special_tokens.values())

    def register_special_tokens(self, special_tokens: dict[str, int]) -> None:
        """Add special tokens {text: id}; their ids must be outside the vocabulary, e.g. {"<|endoftext|>": 50256}."""
        merged = dict(self.special_tokens)
        for text, i in special_tokens.items():
            if not isinstance(text, str) or not text:
                raise ValueError(f"a special token must be a non-empty string, got {text!r}")
            if not isinstance(i, int) or i < 0:
                raise ValueError(f"special token {text!r} needs a non-negative integer id, got {i!r}")
            merged[text] = i
        if len(set(merged.values())) != len(merged):
            raise ValueError(f"two special tokens share an id: {merged}")
        old = self.special_tokens
        self.special_tokens = merged
        try:
            self._rebuild()
        except ValueError:
            self.special_tokens = old
            self._rebuild()
            raise

    @property
    def vocab_size(self) -> int:
        """Number of ids in use (bytes, merges and special tokens)."""
        return len(self.vocab)

    # ----- training ------------------------------------------------------------------------------------------------

    def _split(self, text: str) -> list[str]:
        """Cut text into the chunks that BPE sees; merges never cross a chunk boundary."""
        raise NotImplementedError

    def train(
        self,
        text: str,
        vocab_size: int,
        verbose: bool = False,
        trainer: str = "auto",
        on_merge: Callable[[int, Pair, int, int], None] | None = None,
    ) -> None:
        """Learn `vocab_size - 256` merges from `text` (special tokens come on top, via register_special_tokens).

        `trainer` is a key of TRAINERS: "reference" (reference_trainer.py), "python" or "numpy" (fast/), or "auto"
        (the default); all give identical merges. `on_merge(index, pair, new_id, count)` is called after each merge
        (progress bars). Stops early with a warning when no adjacent pair is left to merge.
        """
        if not isinstance(vocab_size, int) or vocab_size < 256:
            raise ValueError(f"vocab_size must be an integer >= 256 (the 256 byte tokens), got {vocab_size!r}")
        if trainer not in TRAINERS:
            raise ValueError(f"trainer must be one of {sorted(TRAINERS)}, got {trainer!r}")
        clash = {t: i for t, i in self.special_tokens.items() if i < vocab_size}
        if clash:
            raise ValueError(f"special tokens {clash} have ids below vocab_size={vocab_size}, which training will use")
        num_merges = vocab_size - 256
        # Each distinct chunk once, with its count. Counting the str pieces first encodes 15k distinct chunks to
        # bytes instead of 263k (tinyshakespeare); UTF-8 is one-to-one, so the counts carry over.
        chunks = {piece.encode("utf-8"): n for piece, n in Counter(self._split(text)).items()}
        vocab = {i: bytes([i]) for i in range(256)}

        def report(index: int, pair: Pair, new_id: int, count: int) -> None:
            vocab[new_id] = vocab[pair[0]] + vocab[pair[1]]
            if verbose:
                print(f"merge {index + 1}/{num_merges}: {pair} -> {new_id} ({vocab[new_id]!r}) had {count} occurrences")
            if on_merge is not None:
                on_merge(index, pair, new_id, count)

        merges = TRAINERS[trainer](chunks, num_merges, report)
        if len(merges) < num_merges:
            warnings.warn(
                f"training stopped after {len(merges)} of {num_merges} merges: no adjacent pair is left in the text",
                stacklevel=2,
            )
        self.byte_ids = list(range(256))
        self.merges = merges
        self._rebuild()

    # ----- encoding ------------------------------------------------------------------------------------------------

    def _encode_chunk(self, chunk: str) -> list[int]:
        """One chunk: a token per UTF-8 byte, then the merges, lowest rank first."""
        ids = [self.byte_ids[b] for b in chunk.encode("utf-8")]
        if self.fast:
            return self._fast.bpe(ids)  # the same ids; a long chunk in O(n log n) rather than O(n^2)
        return bpe(ids, self._ranks, self.merges)

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode text, treating special-token strings like any other text."""
        try:
            if self.fast:
                return self._fast.encode(self._split(text))
            return [i for chunk in self._split(text) for i in self._encode_chunk(chunk)]
        except UnicodeEncodeError:
            return self.encode_ordinary(replace_surrogates(text))

    def _allowed_and_disallowed(self, allowed_special) -> tuple[set[str], set[str]]:
        known = set(self.special_tokens)
        if allowed_special == "all":
            return known, set()
        if allowed_special == "none":
            return set(), set()
        if allowed_special == "none_raise":
            return set(), known
        if isinstance(allowed_special, (set, frozenset, list, tuple)):
            allowed = set(allowed_special)
            unknown = allowed - known
            if unknown:
                raise ValueError(f"allowed_special names unregistered special tokens: {sorted(unknown)}")
            return allowed, known - allowed
        raise ValueError(f'allowed_special must be "all", "none", "none_raise" or a set, got {allowed_special!r}')

    def encode(self, text: str, allowed_special="none_raise") -> list[int]:
        """Encode text. `allowed_special` (as in tiktoken) says which special tokens the text may contain:

        "all": every registered special token is encoded as its id; a set: those tokens only;
        "none_raise" (default): any special token in the text raises DisallowedSpecialTokenError;
        "none": special-token strings are encoded as ordinary text.
        With a set, special tokens outside it raise as with "none_raise".
        """
        if self._special_re is None:
            return self.encode_ordinary(text)
        allowed, disallowed = self._allowed_and_disallowed(allowed_special)
        if disallowed:
            for match in self._special_re.finditer(text):
                token = match.group()
                if token in disallowed:
                    raise DisallowedSpecialTokenError(
                        f"the text contains the special token {token!r}, which is not allowed. "
                        f"Pass allowed_special={{{token!r}}} or allowed_special='all' to encode it as its id "
                        f"({self.special_tokens[token]}), or allowed_special='none' to encode it as ordinary text."
                    )
        if not allowed:
            return self.encode_ordinary(text)
        out: list[int] = []
        start = 0
        for match in self._special_re.finditer(text):
            token = match.group()
            if token not in allowed:
                continue
            out.extend(self.encode_ordinary(text[start : match.start()]))
            out.append(self.special_tokens[token])
            start = match.end()
        out.extend(self.encode_ordinary(text[start:]))
        return out

    def encode_batch(self, texts: Iterable[str], allowed_special="none_raise") -> list[list[int]]:
        """Encode several texts (one after the other, sharing the chunk cache)."""
        return [self.encode(text, allowed_special=allowed_special) for text in texts]

    # ----- decoding ------------------------------------------------------------------------------------------------

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The bytes that `ids` stand for (special tokens as their UTF-8 text)."""
        vocab = self.vocab
        ids = list(ids)
        try:
            return b"".join([vocab[i] for i in ids])
        except (KeyError, TypeError):
            bad = next(i for i in ids if not isinstance(i, int) or i not in vocab)
            raise ValueError(f"token id {bad!r} is not in the vocabulary (ids in use: {self.vocab_size})") from None

    def decode(self, ids: Iterable[int]) -> str:
        """The text that `ids` stand for. Byte sequences that are not valid UTF-8 come out as U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # ----- files (tools/model_file.py) ----------------------------------------------------------------------------

    def save(self, prefix: str) -> str:
        """Write `prefix.model` (exact, reloadable) and `prefix.vocab` (for people); return the .model path."""
        from .tools.model_file import save

        return save(self, prefix)

    def load(self, path: str):
        """Load a `.model` file written by `save` into this tokenizer (unchanged if the file is bad); returns self."""
        from .tools.model_file import load_into

        return load_into(self, path)

    def _set_pattern(self, pattern: str | None, path: str) -> None:
        """Take the split pattern of a loaded file, or refuse one this class cannot use."""
        raise NotImplementedError
