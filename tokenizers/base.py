"""What every BPE tokenizer shares: the state (merges, vocabulary, special tokens), encode, decode and training.

A byte-level BPE tokenizer is fully described by
- `byte_ids`: the id of each of the 256 single-byte tokens (0..255 in order for the ones we train; GPT-2 numbers
  them differently, so this is part of the model rather than an assumption),
- `merges`: {(id1, id2): new_id} in the order the merges were learned (the order is the priority when encoding),
- `special_tokens`: {text: id} for markers such as "<|endoftext|>" that never come out of merging.
Everything else (`vocab`, the ranks, the caches) is derived from these three by `_rebuild`.

Subclasses decide how text is cut into chunks before BPE (`_split`): `BasicTokenizer` does not cut at all,
`RegexTokenizer` uses a split pattern so that merges never cross, say, a word and the space before the next one.
Special tokens follow tiktoken's rules; saving and loading are in `model_file.py`.
"""

from __future__ import annotations

import struct
import threading
import warnings
from array import array
from collections import Counter
from collections.abc import Callable, Iterable

import regex

from .bpe import LONG_CHUNK, Pair, bpe, replayable
from .reference_trainer import train_reference
from .trainer_numpy import train_auto

# Past this many distinct chunks the encode cache is dropped and refilled, so memory stays bounded on huge inputs.
CACHE_LIMIT = 200_000
_pack_id = struct.Struct("I").pack  # one id -> its array("I") bytes

# A text of more than COLD_RATIO chunks per entry of the cache (a freshly loaded tokenizer's first long text) is
# likely to bring thousands of new chunks. Then its distinct chunks are found first, at C speed (a set), and
# the new ones encoded and cached before one lookup pass over the text; calling __missing__ for each new chunk during
# the pass costs more. On a warm cache the pass alone is cheaper: most texts bring few new chunks.
COLD_RATIO = 32

# When a text brings at least this many new chunks that need BPE, they are encoded all together (bpe_batch.py).
# With fewer, NumPy's fixed cost per round is more than one-at-a-time BPE costs (about even at 150 on GPT-2).
BATCH_MIN = 150

TRAINERS: dict[str, Callable] = {"fast": train_auto, "reference": train_reference}


def replace_surrogates(text: str) -> str:
    """Lone surrogates (say from a JSON "\\ud800") have no UTF-8 form: make them U+FFFD, as tiktoken does."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


class DisallowedSpecialTokenError(ValueError):
    """The text contains a special token that `allowed_special` does not allow."""


class ChunkCache(dict):
    """chunk -> its ids packed as machine integers (array "I" bytes), and the lookup of all the chunks of a text.

    Text repeats itself: tinyshakespeare has 298,000 GPT-2 chunks but only 15,000 distinct ones. So `packed_ids` maps
    the chunks through this dict, `map(cache.__getitem__, chunks)`, which serves the repeated ones at C speed and
    calls Python (`__missing__`) only for new ones. Packed ids let one `b"".join` concatenate them all, where
    extending a list id by id would cost more than the lookups themselves.

    A new chunk that is a token (a key of `tokens`, text -> id) encodes to that token. The others need BPE. In a long
    text, rather than running it one chunk at a time, `__missing__` gives each of them an empty bytearray for now
    and notes it. After the pass, `encode_many` encodes all the noted chunks at once (a NumPy batch when there are
    many) and each bytearray is filled in place. That completes the list of parts without a second pass over the
    text; the cache then keeps the ids as bytes. A text of fewer than BATCH_MIN chunks cannot have that many new
    ones, so its new chunks are encoded on the spot. A long text on a nearly empty cache (COLD_RATIO) takes a third
    way: its distinct new chunks are found first and encoded all together (`_add`), then one pass looks them all up.

    `tokens` is kept apart rather than copied in, because a smaller dict is faster to look up: a text uses a few
    thousand of GPT-2's 50,000 tokens, and the lookups run about a third faster in a dict of tinyshakespeare's
    15,000 chunks than in one that also holds the whole vocabulary.
    """

    __slots__ = ("tokens", "encode_one", "encode_many", "_waiting", "_lock")  # faster to reach than a __dict__

    def __init__(
        self,
        tokens: dict[str, int],
        encode_one: Callable[[str], bytes],
        encode_many: Callable[[list[str]], list[bytes]],
    ) -> None:
        super().__init__()
        self.tokens = tokens
        self.encode_one = encode_one
        self.encode_many = encode_many
        self._waiting: dict[str, bytearray] | None = None  # during a long lookup: new chunks that need BPE, entries
        self._lock = threading.Lock()  # one lookup at a time, since the waiting entries belong to it

    def __missing__(self, chunk: str) -> bytes | bytearray:
        token = self.tokens.get(chunk)
        if token is not None:
            packed = _pack_id(token)
        elif self._waiting is None:
            packed = self.encode_one(chunk)
        else:
            packed = self._waiting[chunk] = bytearray()
        # The cache keeps copies made now, of the chunk and of its ids, rather than the chunk itself, which lies
        # among the text's 300,000 chunk strings, or the vocabulary's own bytes. Made one after another, the copies
        # lie side by side in memory, and the lookups, which read each key and value, ran 10-20% faster in tests.
        self[chunk.encode().decode()] = packed
        return packed

    def packed_ids(self, chunks: list[str]) -> bytes:
        """The ids of all the chunks, one after the other, packed; new chunks are encoded and cached."""
        with self._lock:
            if len(chunks) < BATCH_MIN:
                return b"".join(map(self.__getitem__, chunks))
            if len(self) * COLD_RATIO < len(chunks):
                new = set(chunks)
                new.difference_update(self)
                self._add(new)
                return b"".join(map(self.__getitem__, chunks))
            waiting = self._waiting = {}
            try:
                parts = list(map(self.__getitem__, chunks))
                if waiting:
                    new = list(waiting)
                    packed = self.encode_many(new)
                    for entry, ids in zip(waiting.values(), packed):
                        entry.extend(ids)  # the entry is still empty
                    self.update(zip(new, packed))
            except BaseException:
                for chunk in waiting:  # an empty entry must not outlive the lookup that made it
                    self.pop(chunk, None)
                raise
            finally:
                self._waiting = None
            return b"".join(parts)

    def _add(self, new: Iterable[str]) -> None:
        """Encode and cache chunks that are not in the cache yet: all or nothing."""
        new = [chunk.encode().decode() for chunk in new]  # copies side by side in memory, as in __missing__
        ids = list(map(self.tokens.get, new))
        need_bpe = [chunk for chunk, token in zip(new, ids) if token is None]
        packed = self.encode_many(need_bpe)
        self.update((chunk, _pack_id(token)) for chunk, token in zip(new, ids) if token is not None)
        self.update(zip(need_bpe, packed))

    def reset(self) -> None:
        """Forget every chunk seen so far (a freshly loaded tokenizer)."""
        self.clear()

    def __reduce__(self):
        # For copy.deepcopy and pickle (worker processes): the entries and a new lock, which cannot be copied.
        return self.__class__, (self.tokens, self.encode_one, self.encode_many), None, None, iter(self.items())


class Tokenizer:
    """Base class. Use `BasicTokenizer` or `RegexTokenizer`."""

    pattern: str | None = None

    def __init__(self) -> None:
        self.byte_ids: list[int] = list(range(256))
        self.merges: dict[Pair, int] = {}
        self.special_tokens: dict[str, int] = {}
        self._rebuild()

    # ----- state ---------------------------------------------------------------------------------------------------

    def _rebuild(self) -> None:
        """Derive the vocabulary, the merge ranks and the special-token matchers from the primary state."""
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
        self._inverse_special = {i: text for text, i in self.special_tokens.items()}
        for i, text in self._inverse_special.items():
            vocab[i] = text.encode("utf-8")
        self.vocab: dict[int, bytes] = vocab
        self._ranks: dict[Pair, int] = {pair: rank for rank, pair in enumerate(self.merges)}
        self._replayable = replayable(self.merges)
        # Longest first, so that a special token that starts another one never hides it.
        names = sorted(self.special_tokens, key=lambda s: (-len(s), s))
        self._special_re = regex.compile("|".join(regex.escape(s) for s in names)) if names else None
        # A chunk that is itself a token encodes to that token: BPE rebuilds every learned token from its own bytes
        # (the merges that made it apply inside its bytes in the same order), and tiktoken takes the same shortcut.
        # So `tokens` (text -> id) holds every token whose bytes are text, for the cache to consult. Spellings shared
        # by two ids (possible in loaded files) are left to BPE.
        tokens: dict[str, int] = {}
        shared = set()
        for i, token in vocab.items():
            if i in self._inverse_special:
                continue
            try:
                text = token.decode("utf-8")
            except UnicodeDecodeError:
                continue  # a piece of a character: never a whole chunk
            if text in tokens:
                shared.add(text)
            tokens[text] = i
        for text in shared:
            del tokens[text]
        self._cache = ChunkCache(tokens, self._encode_packed, self._encode_many)
        self._batch = None  # the BatchBPE for these merges, made when a text first needs it

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
        trainer: str = "fast",
        on_merge: Callable[[int, Pair, int, int], None] | None = None,
    ) -> None:
        """Learn `vocab_size - 256` merges from `text` (special tokens come on top, via register_special_tokens).

        `trainer="reference"` uses the slow recount-every-round trainer; both give identical merges.
        `on_merge(index, pair, new_id, count)` is called after each merge (progress bars).
        Stops early with a warning when no adjacent pair is left to merge.
        """
        if not isinstance(vocab_size, int) or vocab_size < 256:
            raise ValueError(f"vocab_size must be an integer >= 256 (the 256 byte tokens), got {vocab_size!r}")
        if trainer not in TRAINERS:
            raise ValueError(f"trainer must be one of {sorted(TRAINERS)}, got {trainer!r}")
        clash = {t: i for t, i in self.special_tokens.items() if i < vocab_size}
        if clash:
            raise ValueError(f"special tokens {clash} have ids below vocab_size={vocab_size}, which training will use")
        num_merges = vocab_size - 256
        pieces = self._split(text)
        if trainer == "fast":
            # The fast trainer works on distinct chunks with their counts: counting the str pieces first encodes
            # 15k distinct chunks instead of 263k (tinyshakespeare); UTF-8 is one-to-one, so the counts carry over.
            chunks = {piece.encode("utf-8"): n for piece, n in Counter(pieces).items()}
        else:
            chunks = [piece.encode("utf-8") for piece in pieces]
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
        ids = list(map(self.byte_ids.__getitem__, chunk.encode("utf-8")))
        return bpe(ids, self._ranks, self.merges, self._replayable)

    def _encode_packed(self, chunk: str) -> bytes:
        return array("I", self._encode_chunk(chunk)).tobytes()

    def _encode_many(self, chunks: list[str]) -> list[bytes]:
        """New chunks -> their packed ids: all at once by `BatchBPE` when there are many, else one at a time."""
        if len(chunks) < BATCH_MIN or not self._replayable:
            return list(map(self._encode_packed, chunks))
        if self._batch is None:
            from .bpe_batch import BatchBPE  # NumPy is imported only once a text needs it

            self._batch = BatchBPE(self.byte_ids, self.merges)
        # BatchBPE takes as many rounds as the longest chunk has merges: the rare long chunks go one at a time.
        if max(map(len, chunks)) > LONG_CHUNK:
            short = [c for c in chunks if len(c) <= LONG_CHUNK]
            done = dict(zip(short, self._encode_many(short)))
            return [done[c] if c in done else self._encode_packed(c) for c in chunks]
        return self._batch.encode_packed(list(map(str.encode, chunks)))  # UTF-8

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode text, treating special-token strings like any other text."""
        cache = self._cache
        if len(cache) > CACHE_LIMIT:
            cache.reset()
        try:
            packed = array("I", cache.packed_ids(self._split(text)))
        except UnicodeEncodeError:
            return self.encode_ordinary(replace_surrogates(text))
        return packed.tolist()

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

    # ----- files ---------------------------------------------------------------------------------------------------

    def save(self, prefix: str) -> str:
        """Write `prefix.model` (exact, reloadable) and `prefix.vocab` (for people); return the .model path."""
        from .model_file import save

        return save(self, prefix)

    def load(self, path: str):
        """Load a `.model` file written by `save` into this tokenizer; returns self."""
        from .model_file import read

        pattern, byte_ids, merges, specials = read(path)
        old = (self.pattern, self.byte_ids, self.merges, self.special_tokens)
        try:
            self._set_pattern(pattern, path)
            self.byte_ids, self.merges, self.special_tokens = byte_ids, merges, specials
            self._rebuild()
        except ValueError as e:
            self._set_pattern(old[0], path)
            self.byte_ids, self.merges, self.special_tokens = old[1:]
            self._rebuild()
            raise ValueError(f"{path}: {e}" if str(path) not in str(e) else str(e)) from None
        return self

    def _set_pattern(self, pattern: str | None, path: str) -> None:
        raise NotImplementedError
