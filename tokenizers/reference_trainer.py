"""BPE training as the definition reads: count every adjacent pair, merge the most frequent, repeat.

This is the slow, readable trainer. It recounts the whole corpus after every merge, so training a 512-token
vocabulary on 1 MB of text takes minutes; `trainer.py` computes exactly the same merges in seconds and is what
`Tokenizer.train` uses. Tests run both on the same corpora and require identical merges, which is possible only
because the rule is fully specified:

- pairs are counted within chunks (a split pattern's pieces, or the whole text), overlapping: "aaa" holds the pair
  (a, a) twice;
- the pair with the highest count wins, ties going to the smallest (id1, id2);
- a merge replaces occurrences left to right, without overlap ("aaa" -> [aa, a]);
- new ids are 256, 257, ... in the order of the merges.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from .bpe import Pair, merge_pair


def train_reference(
    chunks: Iterable[bytes],
    num_merges: int,
    on_merge: Callable[[int, Pair, int, int], None] | None = None,
) -> dict[Pair, int]:
    """Learn up to `num_merges` merges from byte chunks; fewer if no adjacent pair is left.

    `on_merge(index, pair, new_id, count)` is called after each merge (for progress and verbose output).
    """
    sequences = [list(chunk) for chunk in chunks]  # one token per byte, id = byte value
    merges: dict[Pair, int] = {}
    for index in range(num_merges):
        counts = Counter()
        for seq in sequences:
            counts.update(zip(seq, seq[1:]))
        if not counts:
            break  # every chunk is a single token: nothing left to merge
        # Highest count first; on a tie the smallest pair, so the result never depends on dict order.
        pair = min(counts, key=lambda p: (-counts[p], p))
        new_id = 256 + index
        sequences = [merge_pair(seq, pair, new_id) for seq in sequences]
        merges[pair] = new_id
        if on_merge is not None:
            on_merge(index, pair, new_id, counts[pair])
    return merges
