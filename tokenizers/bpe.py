"""How a trained BPE encodes one chunk of bytes: apply the learned merges, lowest rank first.

A tokenizer is a list of merges, each "(id1, id2) -> new_id", in the order they were learned (the order is the
merge's *rank*). To encode a chunk we start from one token per byte and repeatedly merge the adjacent pair with the
lowest rank, the leftmost one on a tie, until no adjacent pair is a known merge. (Merging all occurrences of the
best pair at once gives the same ids whenever each merge's parts exist before it, as in any trained BPE; one at a
time is also right for odd merge lists, and it is what tiktoken and Hugging Face do.) This is Sennrich et al. (2016),
"Neural Machine Translation of Rare Words with Subword Units", applied to bytes as in GPT-2.

`bpe` is the rule as stated; `merge_pair` (replace every occurrence of one pair, left to right, without overlap) is
the step that training repeats. The fast path (fast/bpe_long.py, fast/bpe_batch.py) gives the same ids faster for
long chunks and for thousands of chunks at once.
"""

from __future__ import annotations

import sys

Pair = tuple[int, int]

NONE = sys.maxsize  # the "rank" of a pair that is not a merge


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


def bpe(ids: list[int], ranks: dict[Pair, int], merges: dict[Pair, int]) -> list[int]:
    """Merge the leftmost lowest-ranked adjacent pair until no adjacent pair is a merge.

    `ranks` and `merges` share their keys: a pair's rank (its position in the merge list) and the id it becomes.
    O(n^2) in the chunk's length, and for the few bytes of a word the fastest thing Python can do.
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
