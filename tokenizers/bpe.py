"""How a trained BPE encodes one chunk of bytes: apply the learned merges, lowest rank first.

A tokenizer is a list of merges, each "(id1, id2) -> new_id", in the order they were learned (the order is the
merge's *rank*). To encode a chunk we start from one token per byte and repeatedly merge the adjacent pair with the
lowest rank, the leftmost one on a tie, until no adjacent pair is a known merge. (Merging all occurrences of the
best pair at once gives the same ids whenever each merge's parts exist before it, as in any trained BPE; one at a
time is also right for odd merge lists, and it is what tiktoken and Hugging Face do.) This is Sennrich et al. (2016),
"Neural Machine Translation of Rare Words with Subword Units", applied to bytes as in GPT-2.

Three implementations of the same rule live here, and tests hold them to identical output:

- `bpe_simple` keeps the rank of every adjacent pair in a list and merges the smallest. It is O(n^2) but short, and
  for the words that a split pattern produces (a few bytes each) it is the fastest thing Python can do.
- `bpe_replay` walks the merge list once, replacing each pair everywhere with str.replace (one character per id).
  When every merge's parts are made before it and no id is made twice (true of anything trained), merging in rank
  order is the same as merging lowest-rank-first: a merge only creates pairs with a later rank. C does the work,
  so this is the way for long chunks (a `BasicTokenizer` sees the whole text as one chunk) and a few thousand merges.
- `bpe_heap` keeps the pairs in a heap and the tokens in a doubly linked list, so each merge costs O(log n): long
  chunks with a large merge list, or merge lists that replaying would get wrong.

`bpe_batch.py` runs the same rule on thousands of chunks at once with NumPy: that is how the new chunks of a large
text are encoded. `merge_pair` (replace every occurrence of one pair, left to right, without overlap) is the step
that training repeats.
"""

from __future__ import annotations

import heapq
import sys

Pair = tuple[int, int]

NONE = sys.maxsize  # the "rank" of a pair that is not a merge

# Above this length `bpe_simple`'s rescans cost more than the other two's bookkeeping.
LONG_CHUNK = 64
# Replaying costs one C scan of the chunk per merge; past a few thousand merges the heap's per-token work is less.
REPLAY_MAX_MERGES = 5000


def merge_pair(ids: list[int], pair: Pair, new_id: int) -> list[int]:
    """Replace each occurrence of `pair` in `ids` by `new_id`, scanning left to right.

    Occurrences do not overlap: merging (a, a) in [a, a, a] gives [aa, a], not [aa, aa].
    """
    a, b = pair
    out = []
    i, n = 0, len(ids)
    while i < n:
        if ids[i] == a and i + 1 < n and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def bpe_simple(ids: list[int], ranks: dict[Pair, int], merges: dict[Pair, int]) -> list[int]:
    """Merge the leftmost lowest-ranked adjacent pair until no adjacent pair is a merge.

    `ranks` and `merges` share their keys: a pair's rank (its position in the merge list) and the id it becomes.
    """
    ids = list(ids)
    get = ranks.get
    # pair_ranks[i] is the rank of (ids[i], ids[i + 1]); NONE marks "not a merge". A merge changes only the entries
    # beside it, so we patch those instead of recomputing the list.
    pair_ranks = [get(p, NONE) for p in zip(ids, ids[1:])]
    while pair_ranks:
        best = min(pair_ranks)
        if best == NONE:
            break
        i = pair_ranks.index(best)  # the leftmost occurrence of the best pair
        new = merges[(ids[i], ids[i + 1])]
        ids[i : i + 2] = [new]
        if i + 1 < len(ids):
            pair_ranks[i : i + 2] = [get((new, ids[i + 1]), NONE)]
        else:
            del pair_ranks[i]
        if i > 0:
            pair_ranks[i - 1] = get((ids[i - 1], new), NONE)
    return ids


def bpe_heap(ids: list[int], ranks: dict[Pair, int], merges: dict[Pair, int]) -> list[int]:
    """Same result as `bpe_simple` in O(n log n): a heap of (rank, position) over a linked list of tokens."""
    n = len(ids)
    if n < 2:
        return list(ids)
    tokens: list[int | None] = list(ids)  # None marks a token swallowed by its left neighbour
    nxt = list(range(1, n + 1))  # nxt[i] == n means "no right neighbour"
    prv = list(range(-1, n - 1))
    # (rank, position): the position breaks ties leftmost-first, exactly like bpe_simple. Positions are the
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


def bpe(ids: list[int], ranks: dict[Pair, int], merges: dict[Pair, int], can_replay: bool = False) -> list[int]:
    """Encode one chunk, already mapped to byte ids (the three ways give the same ids; pick the fastest)."""
    if len(ids) <= LONG_CHUNK:
        return bpe_simple(ids, ranks, merges)
    if can_replay and len(merges) <= REPLAY_MAX_MERGES:
        return bpe_replay(ids, merges)
    return bpe_heap(ids, ranks, merges)
