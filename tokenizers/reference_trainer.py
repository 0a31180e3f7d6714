"""BPE training as the definition reads: count every adjacent pair, merge the most frequent, repeat.

This is the readable trainer. It recounts every pair after every merge, so a 512-token vocabulary for 1 MB of text
takes seconds (and far longer for a BasicTokenizer, whose one chunk is the whole text); the fast trainers
(fast/trainer_python.py, fast/trainer_numpy.py) compute exactly the same merges in a fraction of a second. Tests run
them on the same corpora and require identical merges, which is possible only because the rule is fully specified:

- pairs are counted within chunks (a split pattern's pieces, or the whole text), overlapping: "aaa" holds the pair
  (a, a) twice;
- the pair with the highest count wins, ties going to the smallest (id1, id2);
- a merge replaces occurrences left to right, without overlap ("aaa" -> [aa, a]);
- new ids are 256, 257, ... in the order of the merges.

A text repeats its words, so each distinct chunk is kept once with the number of times it occurs, and its pairs
count that many times: the counts are those of the whole text.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping

from .bpe import Pair, merge_pair


def train_reference(
    chunks: Iterable[bytes] | Mapping[bytes, int],
    num_merges: int,
    on_merge: Callable[[int, Pair, int, int], None] | None = None,
) -> dict[Pair, int]:
    """Learn up to `num_merges` merges from byte chunks (an iterable, or a mapping chunk -> count); fewer if no
    adjacent pair is left. `on_merge(index, pair, new_id, count)` is called after each merge (progress, verbose)."""
    word_counts = chunks if isinstance(chunks, Mapping) else Counter(chunks)
    words = [list(chunk) for chunk in word_counts]  # one token per byte, id = byte value
    weights = list(word_counts.values())
    merges: dict[Pair, int] = {}
    for index in range(num_merges):
        counts: Counter[Pair] = Counter()
        for word, weight in zip(words, weights):
            for pair in zip(word, word[1:]):
                counts[pair] += weight
        if not counts:
            break  # every chunk is a single token: nothing left to merge
        # Highest count first; on a tie the smallest pair, so the result never depends on dict order.
        pair = min(counts, key=lambda p: (-counts[p], p))
        new_id = 256 + index
        words = [merge_pair(word, pair, new_id) for word in words]
        merges[pair] = new_id
        if on_merge is not None:
            on_merge(index, pair, new_id, counts[pair])
    return merges
