"""BPE on many chunks at once with NumPy: each round applies every chunk's next merge in a few array operations.

Encoding a large text means running BPE on each distinct chunk that is not already a token. With GPT-2's vocabulary,
tinyshakespeare has about 7,400 such chunks of 2 to 16 bytes. One chunk at a time (`bpe.bpe`), nearly all the cost
is CPython interpreting the loop, 10 to 20 µs per chunk. Here the chunks lie side by side in one array, with a
separator code that no merge uses between them, and each *round* takes one step of the BPE rule in all of them:

1. find each chunk's lowest-ranked pair (`np.minimum.reduceat` over the positions where the chunks start),
2. merge that pair in each chunk: the left token becomes the merged one and the right one is dropped,
3. look up the ranks of the pairs beside each merged token (`PairTable`, a hash table in NumPy arrays).

Step 2 merges *every* occurrence of the chunk's best pair, left to right without overlap, where `bpe.bpe` merges
the leftmost occurrence and then looks again. For a replayable merge list (bpe_long.py: each merge's parts are made
before it, and no id is made twice) the two agree. The new token can only take part in merges ranked after the one that
made it, so after the leftmost merge the lowest rank still belongs to the same pair, at its next occurrence that does
not overlap. Only the two pairs beside a new token change, so only those are looked up again. A chunk of n bytes
needs at most n - 1 rounds (tinyshakespeare's need 14), and a chunk with nothing left to merge leaves the arrays.
All of it costs about 2 µs per chunk.

Tokens are held as *codes*, not ids: byte b is code b, and the k-th merge makes code 256 + k. A pair's rank is then
the code of the token it merges into, minus 256, so comparing codes compares ranks. The first round starts from the
raw UTF-8 bytes and a 257 x 257 table of the byte pairs' codes; `_id_of_code` turns codes back into ids at the end.
"""

from __future__ import annotations

import numpy as np

from ..bpe import Pair


class BatchBPE:
    """Encodes a list of chunks (bytes) to their BPE ids, all chunks advancing together. Only for replayable merge
    lists (`bpe_long.replayable`); the result is the same as `bpe.bpe` on each chunk."""

    def __init__(self, byte_ids: list[int], merges: dict[Pair, int]) -> None:
        code = {i: b for b, i in enumerate(byte_ids)}  # id -> code
        lefts, rights = [], []
        for k, ((a, b), new) in enumerate(merges.items()):
            lefts.append(code[a])
            rights.append(code[b])
            code[new] = 256 + k
        num_codes = 256 + len(merges)
        self._sep = num_codes  # stands between chunks: part of no merge
        self._none = num_codes + 1  # the code of a pair that is not a merge: above every real one
        self._width = num_codes + 1  # pair key = left * width + right, one key per pair of codes up to _sep
        lefts, rights = np.array(lefts, np.int64), np.array(rights, np.int64)
        codes = np.arange(256, num_codes, dtype=np.int32)
        self._table = PairTable(lefts * self._width + rights, codes, missing=self._none)
        # The first round sees only bytes and separators, so a 257 x 257 table answers it (separators as 256).
        self._byte_pairs = np.full((257, 257), self._none, np.int32)
        of_bytes = (lefts < 256) & (rights < 256)
        self._byte_pairs[lefts[of_bytes], rights[of_bytes]] = codes[of_bytes]
        # np.uintc is C's unsigned int, the item of array("I"), the form of the chunk cache's entries.
        self._id_of_code = np.array([*byte_ids, *merges.values(), 0], np.uintc)

    def _ranks(self, tokens: np.ndarray, at: np.ndarray) -> np.ndarray:
        """The code made by merging (tokens[i], tokens[i + 1]) for each i in `at`, or `_none` if that is no merge."""
        return self._table.get(tokens[at].astype(np.int64) * self._width + tokens[at + 1])

    def encode_packed(self, chunks: list[bytes]) -> list[bytes]:
        """Each chunk's ids packed as array("I") bytes, in the order of `chunks` (which must not be empty bytes)."""
        if not chunks:
            return []
        # tokens: chunk 0's bytes, sep, chunk 1's bytes, sep, ...   starts[c]: where chunk c begins.
        lengths = np.fromiter(map(len, chunks), np.int64, len(chunks))
        seps = np.cumsum(lengths + 1) - 1
        starts = seps - lengths
        tokens = np.full(seps[-1] + 1, self._sep, np.int32)
        is_byte = np.ones(len(tokens), bool)
        is_byte[seps] = False
        tokens[is_byte] = np.frombuffer(b"".join(chunks), np.uint8)
        # ranks[i]: the code of the pair (tokens[i], tokens[i + 1]); `_none` beside a separator and at the end. So
        # ranks[starts[c]:starts[c + 1]] holds chunk c's pairs and two `_none`s, and a pair goes with its left token.
        clipped = np.minimum(tokens, 256)
        ranks = np.append(self._byte_pairs[clipped[:-1], clipped[1:]], self._none)
        active = np.arange(len(chunks))  # the chunk that each entry of `starts` belongs to
        finished = []  # (chunk numbers, their tokens and separators) of the chunks done in each round
        while len(active):
            best = np.minimum.reduceat(ranks, starts)
            done = best == self._none
            best[done] = -1  # matches no pair: chunks with nothing left to merge sit out the round...
            sizes = np.subtract(np.append(starts[1:], len(tokens)), starts)  # each chunk's tokens and separator
            at = _without_overlaps(np.flatnonzero(ranks == np.repeat(best, sizes)))
            tokens[at] = ranks[at]  # the left token of each merged pair becomes the merged one...
            keep = np.ones(len(tokens), bool)
            keep[at + 1] = False  # ...and swallows its right neighbour
            if done.any():  # ...and leave the arrays, so that later rounds do not carry them along
                leaving = np.repeat(done, sizes)
                finished.append((active[done], tokens[leaving]))
                keep &= ~leaving
                active = active[~done]
            dropped = np.concatenate(([0], np.cumsum(~keep)))  # dropped[i]: tokens dropped before position i
            starts = (starts - dropped[starts])[~done]
            merged = at - dropped[at]  # where the merged tokens are now
            tokens, ranks = tokens[keep], ranks[keep]
            # Only the pairs on either side of a merged token have changed.
            redo = np.concatenate((merged[merged > 0] - 1, merged))
            ranks[redo] = self._ranks(tokens, redo)
        return self._pack(finished)

    def _pack(self, finished: list[tuple[np.ndarray, np.ndarray]]) -> list[bytes]:
        """Cut the finished tokens into one packed entry per chunk, back in the chunks' order."""
        tokens = np.concatenate([t for _, t in finished])
        ends = np.flatnonzero(tokens == self._sep)  # each chunk is followed by its separator
        starts = np.append(0, ends[:-1] + 1)
        order = np.argsort(np.concatenate([n for n, _ in finished]))  # chunk numbers, in the order they finished
        size = np.dtype(np.uintc).itemsize
        packed = self._id_of_code[tokens].tobytes()
        return [packed[s:e] for s, e in zip((starts[order] * size).tolist(), (ends[order] * size).tolist())]


def _without_overlaps(at: np.ndarray) -> np.ndarray:
    """Positions of a pair to merge, dropping those that overlap the previous one, left to right.

    Two merge positions are adjacent only in a run of one repeated token, "a a a" with the pair (a, a): merging
    left to right without overlap takes the 1st, 3rd, 5th... position of each run, as str.replace does.
    """
    if len(at) < 2:
        return at
    follows = at[1:] - at[:-1] == 1
    if not follows.any():
        return at
    follows = np.concatenate(([False], follows))  # follows[i]: at[i] is at[i - 1] + 1
    run_start = np.maximum.accumulate(np.where(follows, 0, at))  # the first position of each one's run
    return at[(at - run_start) % 2 == 0]


class PairTable:
    """A hash table in NumPy arrays, int64 key -> int32 value, that looks up a whole array of keys at once.

    Open addressing with linear probing: a key sits in the first free slot at or after its home slot. A lookup
    probes slot after slot, all keys in step, until each one meets its key or an empty slot (not in the table).
    At most a quarter of the slots are used, so nearly every key is settled by its first probe. (A binary search in
    the sorted keys, np.searchsorted, gives the same answers, but the whole batch took half as long again with it.)
    """

    EMPTY = -1  # keys are >= 0

    def __init__(self, keys: np.ndarray, values: np.ndarray, missing: int) -> None:
        bits = max(4, (4 * len(keys)).bit_length())
        self._shift = np.uint64(64 - bits)
        self._mask = (1 << bits) - 1
        self._keys = np.full(1 << bits, self.EMPTY, np.int64)
        self._values = np.full(1 << bits, missing, np.int32)  # an empty slot answers "missing"
        slots = self._home(keys)
        todo = np.arange(len(keys))
        while len(todo):
            free = self._keys[slots[todo]] == self.EMPTY
            # Of the keys that want the same free slot, the first one takes it; the others move on, as do the keys
            # whose slot is taken.
            taken, first = np.unique(slots[todo[free]], return_index=True)
            placed = todo[free][first]
            self._keys[taken] = keys[placed]
            self._values[taken] = values[placed]
            todo = np.setdiff1d(todo, placed, assume_unique=True)
            slots[todo] = (slots[todo] + 1) & self._mask

    def _home(self, keys: np.ndarray) -> np.ndarray:
        """Fibonacci hashing: the top bits of key * (2**64 / golden ratio), mod 2**64 (NumPy arrays wrap around)."""
        return ((keys.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> self._shift).astype(np.int64)

    def get(self, keys: np.ndarray) -> np.ndarray:
        slots = self._home(keys)
        found = self._keys[slots]
        values = self._values[slots]  # right wherever the slot holds the key or is empty
        todo = np.flatnonzero((found != keys) & (found != self.EMPTY))
        while len(todo):  # the others probe the next slot
            slots[todo] = (slots[todo] + 1) & self._mask
            found = self._keys[slots[todo]]
            values[todo] = self._values[slots[todo]]
            todo = todo[(found != keys[todo]) & (found != self.EMPTY)]
        return values
