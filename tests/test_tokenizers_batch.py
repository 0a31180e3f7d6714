"""The fast encoder against the readable path: BatchBPE and its PairTable against one-at-a-time BPE, the chunk cache
(warm, cold, under threads and copies), and `fast = False` against `fast = True` on whole texts."""

import copy
import pickle
import random
import sys
import threading
from array import array

import numpy as np
import pytest
import regex
from _tokenizer_samples import SAMPLE
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenizers import GPT2_SPLIT_PATTERN, BasicTokenizer, RegexTokenizer
from tokenizers.bpe import bpe
from tokenizers.fast import encoder
from tokenizers.fast.bpe_batch import BatchBPE, PairTable

# ----- many chunks at once (bpe_batch.py) ----------------------------------------------------------------------------

SAMPLE_BYTES = SAMPLE.encode("utf-8")


def one_at_a_time(tok, chunks: list[bytes]) -> list[list[int]]:
    return [bpe([tok.byte_ids[b] for b in chunk], tok._ranks, tok.merges) for chunk in chunks]


def readable_ids(tok, text: str) -> list[int]:
    """The teaching path written out: the pattern's chunks, each through `bpe.bpe`; no cache, no batch."""
    chunks = regex.findall(tok.pattern, text) if tok.pattern else [text]
    return [i for ids in one_at_a_time(tok, [chunk.encode("utf-8") for chunk in chunks if chunk]) for i in ids]


def batch_ids(tok, chunks: list[bytes]) -> list[list[int]]:
    return [array("I", packed).tolist() for packed in BatchBPE(tok.byte_ids, tok.merges).encode_packed(chunks)]


def relabelled(tok, seed: int) -> RegexTokenizer:
    """The same tokenizer with its ids shuffled (bytes and merges alike), as in GPT-2 where ids are not byte values."""
    ids = list(tok.vocab)
    shuffled = list(ids)
    random.Random(seed).shuffle(shuffled)
    new = dict(zip(ids, shuffled))
    out = RegexTokenizer()
    out.byte_ids = [new[i] for i in tok.byte_ids]
    out.merges = {(new[a], new[b]): new[m] for (a, b), m in tok.merges.items()}
    out._rebuild()
    return out


# Pieces of the training text (so that merges apply), runs of one byte (overlapping pairs), random bytes.
chunk_strategy = (
    st.builds(lambda i, n: SAMPLE_BYTES[i : i + n], st.integers(0, len(SAMPLE_BYTES) - 1), st.integers(1, 40))
    | st.builds(lambda b, n: bytes([b]) * n, st.sampled_from(b"a b"), st.integers(1, 20))
    | st.binary(min_size=1, max_size=20)
)


@settings(max_examples=80, deadline=None)
@given(chunks=st.lists(chunk_strategy, min_size=1, max_size=40))
def test_batch_bpe_agrees_with_one_at_a_time(trained, trained_basic, chunks):
    for tok in (trained, trained_basic, relabelled(trained, 3)):
        assert batch_ids(tok, chunks) == one_at_a_time(tok, chunks)


def test_batch_bpe_repeated_pairs_merge_left_to_right():
    tok = RegexTokenizer()
    tok.merges = {(97, 97): 256, (256, 97): 257, (256, 256): 258, (258, 97): 259}
    tok._rebuild()
    chunks = [b"a" * n for n in range(1, 14)] + [b"baaab", b"aaaa aaa", b"a"]
    assert batch_ids(tok, chunks) == one_at_a_time(tok, chunks)
    assert batch_ids(tok, [b"aaa", b"aaaa", b"aaaaa"]) == [[257], [258], [256, 257]]


def test_batch_bpe_with_no_merges_and_no_chunks():
    assert batch_ids(RegexTokenizer(), [b"ab", b"\xff"]) == [[97, 98], [255]]
    assert BatchBPE(list(range(256)), {}).encode_packed([]) == []


def test_pair_table_answers_like_a_dict():
    rng = random.Random(0)
    keys = rng.sample(range(10**12), 3000)
    table = PairTable(np.array(keys, np.int64), np.arange(3000, dtype=np.int32), missing=-7)
    queries = keys[::3] + [rng.randrange(10**12) for _ in range(3000)]
    expected = {k: v for v, k in enumerate(keys)}
    assert table.get(np.array(queries, np.int64)).tolist() == [expected.get(q, -7) for q in queries]


def many_new_chunks(seed: int, count: int) -> str:
    """A text of `count` words cut at random from SAMPLE, most of them new to a tokenizer, and a long one."""
    rng = random.Random(seed)
    words = []
    for _ in range(count):
        i = rng.randrange(len(SAMPLE))
        words.append(SAMPLE[i : i + rng.randrange(2, 12)])
    return " ".join(words) + " " + "x" * 100


@pytest.mark.parametrize("which", ["trained", "relabelled", "basic merges"])
def test_encoding_many_new_chunks_together_is_exact(trained, trained_basic, which):
    source = {"trained": trained, "relabelled": relabelled(trained, 5), "basic merges": trained_basic}[which]
    tok = RegexTokenizer(GPT2_SPLIT_PATTERN)
    tok.byte_ids, tok.merges = source.byte_ids, source.merges
    tok._rebuild()
    text = many_new_chunks(0, 2000)
    chunks = tok._split(text)
    assert len(set(chunks)) > 2 * encoder.BATCH_MIN
    expected = readable_ids(tok, text)
    assert tok.encode_ordinary(text) == expected  # fresh: the new chunks go through BatchBPE
    assert tok._fast.batch is not None
    assert tok.encode_ordinary(text) == expected  # cached
    assert all(type(packed) is bytes for packed in tok._fast.cache.values())


def test_merge_lists_that_do_not_replay_go_one_at_a_time():
    tok = RegexTokenizer(GPT2_SPLIT_PATTERN)
    # "abc" is made twice under one id: merging all at once is not BPE for such lists (bpe_long.replayable).
    tok.merges = {(97, 98): 256, (98, 99): 257, (256, 99): 258, (97, 257): 258, (258, 258): 259}
    tok._rebuild()
    assert not tok._fast.replayable
    text = " ".join(f"abc{n}x abcabc{n}" for n in range(400))
    assert tok.encode_ordinary(text) == readable_ids(tok, text)
    assert tok._fast.batch is None


def test_a_failed_lookup_leaves_no_empty_entries(trained):
    tok = RegexTokenizer()
    tok.merges = dict(trained.merges)
    tok._rebuild()
    text = many_new_chunks(1, 1000) + " \ud800 end"  # a lone surrogate: encoding it to UTF-8 fails
    clean = text.replace("\ud800", "\ufffd")
    assert tok.encode(text) == tok.encode(clean)
    assert all(type(packed) is bytes for packed in tok._fast.cache.values())
    tok._fast.cache.reset()
    assert tok.encode(clean) == readable_ids(tok, clean)


def test_threads_sharing_a_tokenizer_get_the_right_ids(trained):
    tok = RegexTokenizer()
    tok.merges = dict(trained.merges)
    tok._rebuild()
    texts = [many_new_chunks(seed, 1500) for seed in range(6)]
    expected = [readable_ids(tok, t) for t in texts]
    results = [None] * len(texts)

    def work(k):
        results[k] = tok.encode_ordinary(texts[k])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(texts))]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible, in the middle of lookups
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert results == expected


def test_copies_encode_alike(trained):
    tok = RegexTokenizer()
    tok.merges = dict(trained.merges)
    tok._rebuild()
    text = many_new_chunks(2, 500)
    expected = tok.encode(text)
    for copied in (copy.deepcopy(tok), pickle.loads(pickle.dumps(tok))):
        assert len(copied._fast.cache) == len(tok._fast.cache)  # the cache comes along
        assert copied.encode(text) == expected
        assert copied._fast.cache.encode_many.__self__ is copied._fast


def test_a_warm_cache_and_a_cold_one_encode_new_chunks_alike(trained):
    """A fresh tokenizer finds a long text's distinct chunks first (encoder.COLD_RATIO); a warm one meets the new chunks
    during the lookup pass. Both must give each chunk's own BPE ids."""
    tok = RegexTokenizer()
    tok.merges = dict(trained.merges)
    tok._rebuild()
    rng = random.Random(4)
    first = many_new_chunks(2, 1500)
    second = " ".join("".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randrange(3, 9))) for _ in range(1000))
    assert len(tok._fast.cache) == 0
    assert tok.encode(first) == readable_ids(tok, first)
    warm = len(tok._fast.cache)
    chunks = tok._split(second)
    assert warm * encoder.COLD_RATIO >= len(chunks)  # so the second text takes the warm path
    assert len(set(chunks) - set(tok._fast.cache)) > encoder.BATCH_MIN  # with enough new chunks for a batch
    assert tok.encode(second) == readable_ids(tok, second)
    assert all(type(packed) is bytes for packed in tok._fast.cache.values())


# ----- the switch: fast = False encodes by the readable path alone ---------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(text=st.text(max_size=300) | st.builds(many_new_chunks, st.integers(0, 10**6), st.integers(150, 600)))
def test_fast_and_readable_paths_give_the_same_ids(trained, trained_basic, text):
    for tok in (trained, trained_basic):
        slow = copy.deepcopy(tok)
        slow.fast = False
        slow._fast.cache.reset()
        assert slow.encode(text) == tok.encode(text)
        assert len(slow._fast.cache) == 0  # nothing of the fast path ran


def test_readable_path_is_the_written_out_rule(trained):
    tok = RegexTokenizer()
    tok.merges = dict(trained.merges)
    tok._rebuild()
    tok.fast = False
    text = many_new_chunks(7, 300) + " plain ASCII and Ünïcödé"
    assert tok._split(text) == regex.findall(tok.pattern, text)  # the `regex` split, not fast/split.py's
    assert tok.encode(text) == readable_ids(tok, text)
    basic = BasicTokenizer()
    basic.merges = dict(trained.merges)
    basic._rebuild()
    basic.fast = False
    assert basic.encode(text) == readable_ids(basic, text)
