"""One long chunk, the same ids as `bpe.bpe`, faster: a heap over a linked list, or a replay of the merge list.

`bpe.bpe` rescans the chunk's pair ranks after every merge, O(n^2): right for the few bytes of a word, slow for a
`BasicTokenizer`, which sees the whole text as one chunk. Two exact alternatives:

- `bpe_replay` walks the merge list once, replacing each pair everywhere with str.replace (one character per id).
  When every merge's parts are made before it and no id is made twice (true of anything trained), merging in rank
  order is the same as merging lowest-rank-first: a merge only creates pairs with a later rank. C does the work,
  so this is the way for long chunks and a few thousand merges.
- `bpe_heap` keeps the pairs in a heap and the tokens in a doubly linked list, so each merge costs O(log n): long
  chunks with a large merge list, or merge lists that replaying would get wrong.

`bpe_auto` picks among the three by the chunk's length and the number of merges; tests hold all three to one answer.
"""

from __future__ import annotations

import heapq

from ..bpe import Pair, bpe

# Above this length `bpe`'s rescans cost more than the other two's bookkeeping.
LONG_CHUNK = 64
# Replaying costs one C scan of the chunk per merge; past a few thousand merges the heap's per-token work is less.
REPLAY_MAX_MERGES = 5000


def bpe_heap(ids: list[int], ranks: dict[Pair, int], merges: dict[Pair, int]) -> list[int]:
    """Same result as `bpe.bpe` in O(n log n): a heap of (rank, position) over a linked list of tokens."""
    n = len(ids)
    if n < 2:
        return list(ids)
    tokens: list[int | None] = list(ids)  # None marks a token swallowed by its left neighbour
    nxt = list(range(1, n + 1))  # nxt[i] == n means "no right neighbour"
    prv = list(range(-1, n - 1))
    # (rank, position): the position breaks ties leftmost-first, exactly like bpe.bpe. Positions are the
    # original indices, which keep their left-to-right order as tokens merge.
    heap = [(ranks[p], i) for i, p in enumerate(zip(ids, ids[1:])) if p in ranks]
    heapq.heapify(heap)
    while heap:
        rank, i = heapq.heappop(heap)
        left = tokens[i]
        j = nxt[i]
        if left is None or j >= n:
            continue  # stale: position i was merged away or lost its right neighbour
        pair = (left, tokens[j])
        if ranks.get(pair) != rank:
            continue  # stale: one side changed since this entry was pushed (a rank names a single pair)
        new = merges[pair]
        tokens[i] = new
        tokens[j] = None
        k = nxt[j]
        nxt[i] = k
        if k < n:
            prv[k] = i
        # Only the two pairs touching the new token are new; push them if they are merges.
        p = prv[i]
        if p >= 0:
            r = ranks.get((tokens[p], new))
            if r is not None:
                heapq.heappush(heap, (r, p))
        if k < n:
            r = ranks.get((new, tokens[k]))
            if r is not None:
                heapq.heappush(heap, (r, i))
    return [t for t in tokens if t is not None]


def bpe_replay(ids: list[int], merges: dict[Pair, int]) -> list[int]:
    """Apply every merge in order to the whole chunk; only for replayable merge lists (see the module docstring)."""
    word = "".join(map(chr, ids))
    for (a, b), new in merges.items():
        pair = chr(a) + chr(b)
        if pair in word:
            word = word.replace(pair, chr(new))  # left to right, no overlap: the merge rule exactly
    return [ord(c) for c in word]


def replayable(merges: dict[Pair, int]) -> bool:
    """True if `bpe_replay` gives the BPE result: no id made by two merges, ids small enough to be characters.
    (That each merge's parts are made before it is checked when the vocabulary is built.)"""
    made = set(merges.values())
    return len(made) == len(merges) and max(made, default=0) < 0x110000


def bpe_auto(ids: list[int], ranks: dict[Pair, int], merges: dict[Pair, int], can_replay: bool) -> list[int]:
    """Encode one chunk, already mapped to byte ids, the fastest of the three ways (they give the same ids)."""
    if len(ids) <= LONG_CHUNK:
        return bpe(ids, ranks, merges)
    if can_replay and len(merges) <= REPLAY_MAX_MERGES:
        return bpe_replay(ids, merges)
    return bpe_heap(ids, ranks, merges)
