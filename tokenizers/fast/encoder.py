"""The fast way to encode a text: a cache of the chunks seen, and new chunks encoded thousands at a time.

`Tokenizer.encode_ordinary` runs BPE on every chunk of the text (base.py). This gives the same ids faster, in the
order the costs come: text repeats itself, so a chunk seen before is looked up (`ChunkCache`); a chunk that is a
token's own text is that token; the other new chunks go through BPE together (`bpe_batch.BatchBPE`, NumPy) when
there are many, one at a time (`bpe_long.bpe_auto`) when there are few.
"""

from __future__ import annotations

import struct
import threading
from array import array
from collections.abc import Callable, Iterable

from ..bpe import Pair
from .bpe_long import LONG_CHUNK, bpe_auto, replayable

# Past this many distinct chunks the cache is dropped and refilled, so memory stays bounded on huge inputs.
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
        # lie side by side in memory, and the lookups, which read each key and value, run 10-20% faster.
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


def texts_of_tokens(vocab: dict[int, bytes], special_ids: Iterable[int]) -> dict[str, int]:
    """text -> id for every ordinary token whose bytes are UTF-8 text, leaving out spellings that two ids share.

    A chunk that is itself a token encodes to that token: BPE rebuilds every learned token from its own bytes (the
    merges that made it apply inside its bytes in the same order), and tiktoken takes the same shortcut. Spellings
    shared by two ids (possible in loaded files) are left to BPE.
    """
    skip = set(special_ids)
    tokens: dict[str, int] = {}
    shared = set()
    for i, token in vocab.items():
        if i in skip:
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
    return tokens


class FastEncoder:
    """What a tokenizer encodes with while its `fast` is True: the ids of `bpe.bpe` on each chunk, faster."""

    def __init__(
        self,
        byte_ids: list[int],
        merges: dict[Pair, int],
        ranks: dict[Pair, int],
        vocab: dict[int, bytes],
        special_ids: Iterable[int],
    ) -> None:
        self.byte_ids, self.merges, self.ranks = byte_ids, merges, ranks
        self.replayable = replayable(merges)
        self.cache = ChunkCache(texts_of_tokens(vocab, special_ids), self._encode_packed, self._encode_many)
        self.batch = None  # the BatchBPE for these merges, made when a text first needs it

    def bpe(self, ids: list[int]) -> list[int]:
        """BPE on one chunk's byte ids, the fastest way for its length."""
        return bpe_auto(ids, self.ranks, self.merges, self.replayable)

    def encode(self, chunks: list[str]) -> list[int]:
        """The ids of all the chunks of a text, one after the other."""
        if len(self.cache) > CACHE_LIMIT:
            self.cache.reset()
        return array("I", self.cache.packed_ids(chunks)).tolist()

    def _encode_packed(self, chunk: str) -> bytes:
        return array("I", self.bpe(list(map(self.byte_ids.__getitem__, chunk.encode("utf-8"))))).tobytes()

    def _encode_many(self, chunks: list[str]) -> list[bytes]:
        """New chunks -> their packed ids: all at once by `BatchBPE` when there are many, else one at a time."""
        if len(chunks) < BATCH_MIN or not self.replayable:
            return list(map(self._encode_packed, chunks))
        if self.batch is None:
            from .bpe_batch import BatchBPE  # NumPy is imported only once a text needs it

            self.batch = BatchBPE(self.byte_ids, self.merges)
        # BatchBPE takes as many rounds as the longest chunk has merges: the rare long chunks go one at a time.
        if max(map(len, chunks)) > LONG_CHUNK:
            short = [c for c in chunks if len(c) <= LONG_CHUNK]
            done = dict(zip(short, self._encode_many(short)))
            return [done[c] if c in done else self._encode_packed(c) for c in chunks]
        return self.batch.encode_packed(list(map(str.encode, chunks)))  # UTF-8
