"""BPE training in NumPy: the same merges as `trainer_python.py`, each round a few dozen array operations.

`trainer_python.py` visits every word that holds the merged pair in Python (58,695 visits for 256 merges on
tinyshakespeare). Here those visits are array operations over all the words at once:

- The distinct chunks ("words") lie in one array `tokens`, a -1 before, between and after them, and `weight`
  holds the count of each position's word. A pair never spans a -1.
- The array is never compacted. A merge of (a, b) at positions i, j writes X at i and a hole (-2) at j, and
  `off[i]` / `back[k]` give the distance from a token to the next / previous live position, so the neighbours of a
  token are one gather away however many holes lie between.
- `positions[t]` lists where token t lives (sorted), so a round looks only at the positions of a and b, never the
  whole array: the matches are the positions i of a whose next token is b.
- Pair counts live in a dense (V, V) matrix, V = 256 + num_merges. NumPy's argmax returns the first maximum, which
  in row-major order is the smallest (a, b): the reference's tie rule for free. Rather than an O(V²) argmax each
  round, `rowmax` keeps an upper bound of every row's maximum, raised when a count grows and left stale when one
  drops; the row with the highest bound is rechecked, and its bound lowered, until the bound is exact (a stale
  bound only ever overrates a row, so the first exact row is the answer, as in `trainer_python.py`'s lazy heap).
- A merge changes only the pairs touching a match: (p, a) -> (p, X) and (b, q) -> (X, q), where p and q are the
  live neighbours, and q is X itself when the next match starts right after this one ("abab" -> (X, X), counted
  once, as the right pair of the first X). Removed and added pairs sit at the same positions, so one `np.add.at`
  with -weight and +weight updates the counts; (a, b) itself drops to 0 (a left-to-right merge leaves none).

Memory: the matrix takes 8 V² bytes (2 MB at V = 512) and the arrays 24-28 bytes per byte of the words. So
`train_auto`, `Tokenizer.train`'s default, uses this trainer up to DENSE_LIMIT ids only, and only on corpora large
enough to repay NumPy's fixed cost per round; `train_python` does the rest. On tinyshakespeare (GPT-4 pattern, 256
merges) it took 0.04-0.08 s where `train_python` took 0.23-0.48 s; on the first 200 KB as one chunk (BasicTokenizer)
0.06-0.12 s against 0.48-0.83 s (docs/tokenizers.md).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping

from ..bpe import Pair
from .trainer_python import train_python

# Largest vocabulary (256 + num_merges) that `train_auto` trains with NumPy; above it `train_python`. At 2048 ids the
# matrix takes 32 MB and NumPy was still 1.3-2x faster on tinyshakespeare; at 4096 (128 MB) the two were even.
DENSE_LIMIT = 2048
# Fewest bytes of distinct chunks for which `train_auto` uses NumPy. Each round costs NumPy about 100 us however few
# the matches, so on small corpora the Python trainer wins: for 256 merges they broke even at about 6,000 bytes.
NUMPY_MIN_BYTES = 8000
HOLE = -2  # a position merged into the token on its left
MAX_IDS = 2**15 - 1  # tokens are int16 (and the matrix would take 8 GB at this size)


def _drop_overlaps(np, hit, k, i, j):
    """Matches of (a, a) overlap in runs ("aaaa" matches at 0, 1, 2); the left-to-right merge takes 0 and 2.

    The matches are candidates k (marked in `hit`), their tokens at positions i and j. A match continues a run when
    it starts at the previous one's j; the second, fourth, ... match of every run is dropped, from `hit` too."""
    start = np.ones(len(k), bool)
    start[1:] = i[1:] != j[:-1]
    rank = np.arange(len(k))
    keep = (rank - np.maximum.accumulate(np.where(start, rank, 0))) % 2 == 0
    hit[k[~keep]] = False
    return i[keep], j[keep]


def train_numpy(
    chunks: Iterable[bytes] | Mapping[bytes, int],
    num_merges: int,
    on_merge: Callable[[int, Pair, int, int], None] | None = None,
) -> dict[Pair, int]:
    """Learn up to `num_merges` merges from byte chunks (an iterable, or a mapping chunk -> positive count);
    identical output to `train_reference` and `train_python` on the same chunks, `on_merge` calls included."""
    import numpy as np  # imported when a vocabulary is first trained, as bpe_batch.py is when a text needs it

    word_counts = chunks if isinstance(chunks, Mapping) else Counter(chunks)
    V = 256 + num_merges
    if V > MAX_IDS:
        raise ValueError(f"train_numpy takes at most {MAX_IDS} ids (256 + num_merges); use train_python")
    n_words = len(word_counts)
    lengths = np.fromiter(map(len, word_counts), np.int64, n_words)
    weights = np.fromiter(word_counts.values(), np.int64, n_words)
    if n_words and weights.min() < 1:
        raise ValueError("chunk counts must be positive integers")
    if float(weights @ lengths.astype(np.float64)) >= 2.0**62:
        raise ValueError("chunk counts too large: pair counts could overflow int64")
    data = np.frombuffer(b"".join(word_counts), np.uint8)
    # Word k starts after k + 1 separators: its bytes go to their offsets in the join plus k + 1.
    # Per byte of the words the arrays take 16-20 bytes, plus 8 for `positions`: the narrowest types that fit.
    n = len(data) + n_words + 1
    tokens = np.full(n, -1, np.int16)
    weight = np.zeros(n, np.int32 if n_words == 0 or weights.max() < 2**31 else np.int64)
    live = np.arange(len(data)) + np.repeat(np.arange(1, n_words + 1), lengths)
    tokens[live] = data
    weight[live] = np.repeat(weights, lengths)
    following = np.append(tokens[1:], -1)  # the next live token after each position
    span = np.int32 if n < 2**31 else np.int64  # a distance between two positions
    off = np.ones(n, span)
    back = np.ones(n, span)
    # positions[t]: the sorted positions of token t. A stable sort of the byte positions by value gives them all.
    order = live[np.argsort(data, kind="stable")]
    ends = np.cumsum(np.bincount(data, minlength=256))
    positions = np.split(order, ends[:-1]) + [order[:0]] * num_merges

    left, right = tokens[:-1], tokens[1:]
    pair_at = np.flatnonzero((left >= 0) & (right >= 0))
    counts = np.zeros(V * V, np.int64)
    np.add.at(counts, left[pair_at].astype(np.int64) * V + right[pair_at], weight[pair_at].astype(np.int64))
    grid = counts.reshape(V, V)
    rowmax = grid.max(axis=1)  # upper bounds of each row's maximum (exact for now)

    merges: dict[Pair, int] = {}
    for index in range(num_merges):
        while True:  # until the best row's bound is exact
            a = int(rowmax.argmax())
            b = int(grid[a].argmax())
            if grid[a, b] == rowmax[a]:
                break
            rowmax[a] = grid[a, b]
        count = int(grid[a, b])
        if count <= 0:
            break  # no pair left anywhere
        new_id = 256 + index
        candidates = positions[a]
        hit = following[candidates] == b
        k = np.flatnonzero(hit)
        i = candidates[k]
        j = i + off[i]
        if a == b:
            i, j = _drop_overlaps(np, hit, k, i, j)
        q_at = j + off[j]  # where q, the token after the match, lives (perhaps a separator)
        p_at = i - back[i]  # where p, the token before the match, lives (perhaps a separator)
        p = tokens[p_at].astype(np.int64)
        q = following[j].astype(np.int64)
        w = weight[i].astype(np.int64)  # np.add.at takes its fast path only when no cast is needed
        adjacent = i[1:] == q_at[:-1]  # the next match starts at q
        has_p = p >= 0
        has_p[1:] &= ~adjacent  # that match's (p, a) is this one's (b, q): counted once, below
        has_q = q >= 0
        new_q = q.copy()
        new_q[:-1][adjacent] = new_id
        wp, wq = w[has_p], w[has_q]
        added = np.concatenate([p[has_p] * V + new_id, new_id * V + new_q[has_q]])
        removed = np.concatenate([p[has_p] * V + a, b * V + q[has_q]])
        np.add.at(counts, np.concatenate([removed, added]), np.concatenate([-wp, -wq, wp, wq]))
        grid[a, b] = 0
        np.maximum.at(rowmax, added // V, counts[added])  # grown counts raise their rows' bounds now

        tokens[i] = new_id
        tokens[j] = HOLE
        following[i] = new_q
        following[p_at] = new_id  # harmless where p_at is a separator or, for adjacent matches, a hole
        off[i] = q_at - i
        back[q_at] = q_at - i
        positions[new_id] = i
        positions[a] = candidates[~hit]
        rest = positions[b]  # with a == b, the j are among the positions just kept
        stay = np.ones(len(rest), bool)
        stay[np.searchsorted(rest, j)] = False
        positions[b] = rest[stay]

        merges[(a, b)] = new_id
        if on_merge is not None:
            on_merge(index, (a, b), new_id, count)
    return merges


def train_auto(
    chunks: Iterable[bytes] | Mapping[bytes, int],
    num_merges: int,
    on_merge: Callable[[int, Pair, int, int], None] | None = None,
) -> dict[Pair, int]:
    """`train_numpy` when the vocabulary is small enough for the dense matrix (256 + num_merges <= DENSE_LIMIT)
    and the words are long enough to repay NumPy's fixed cost per round (NUMPY_MIN_BYTES), else `train_python`.
    The same merges either way: only the time differs."""
    word_counts = chunks if isinstance(chunks, Mapping) else Counter(chunks)
    if 256 + num_merges <= DENSE_LIMIT and sum(map(len, word_counts)) >= NUMPY_MIN_BYTES:
        return train_numpy(word_counts, num_merges, on_merge)
    return train_python(word_counts, num_merges, on_merge)
