"""The NumPy trainer gives exactly the merges of the reference and the Python trainers; `train_auto` picks one."""

import inspect
import random
from collections import Counter

import pytest
import regex
from _tokenizer_samples import SAMPLE
from hypothesis import given, settings
from hypothesis import strategies as st

import tokenizers.fast.trainer_numpy as trainer_numpy
from tokenizers import GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN, BasicTokenizer, RegexTokenizer, Tokenizer
from tokenizers.base import TRAINERS
from tokenizers.fast.trainer_numpy import DENSE_LIMIT, NUMPY_MIN_BYTES, train_auto, train_numpy
from tokenizers.fast.trainer_python import train_python
from tokenizers.reference_trainer import train_reference


def expand(counts):
    """A mapping chunk -> count as the list of chunks the reference trainer takes."""
    return [chunk for chunk, n in counts.items() for _ in range(n)]


def all_three(chunks, num_merges):
    """Merges and on_merge calls of the three trainers, the reference also on `chunks` as a list; asserts they agree."""
    results = []
    runs = [(train_reference, chunks), (train_python, chunks), (train_numpy, chunks)]
    if isinstance(chunks, dict):
        runs.append((train_reference, expand(chunks)))
    for train, given_chunks in runs:
        calls = []
        merges = train(given_chunks, num_merges, lambda *args, calls=calls: calls.append(args))
        results.append((list(merges.items()), calls))
    assert all(result == results[0] for result in results)
    assert [(pair, new_id) for _, pair, new_id, _ in results[0][1]] == results[0][0]
    return dict(results[0][0]), results[0][1]


# ----- the rule, on cases small enough to check by hand --------------------------------------------------------------


def test_wikipedia_example(monkeypatch):
    merges, calls = all_three([b"aaabdaaabac"], 3)
    assert merges == {(97, 97): 256, (97, 98): 257, (256, 257): 258}
    assert calls == [(0, (97, 97), 256, 4), (1, (97, 98), 257, 2), (2, (256, 257), 258, 2)]
    monkeypatch.setattr(trainer_numpy, "NUMPY_MIN_BYTES", 0)  # so that Tokenizer.train runs train_numpy
    tok = BasicTokenizer()
    tok.train("aaabdaaabac", 256 + 3)
    assert tok.merges == merges
    assert tok.encode("aaabdaaabac") == [258, 100, 258, 97, 99]


@pytest.mark.parametrize(
    "chunks, expected",
    [
        ([b"aaa"], {(97, 97): 256}),  # (a, a) counted twice, merged once: [aa, a], no pair left of (aa, aa)
        ([b"aaaa"], {(97, 97): 256, (256, 256): 257}),  # [aa, aa] -> [aaaa]
        # [aa, aa, a]: (aa, aa) and (aa, a) tie, the smaller (256, 97) wins -> [aa, aaa] -> [aaaaa]
        ([b"aaaaa"], {(97, 97): 256, (256, 97): 257, (256, 257): 258}),
        ([b"abababab"], {(97, 98): 256, (256, 256): 257, (257, 257): 258}),  # (X, X) counted once per pair of X
        ([b"ab", b"ba", b"cd"], {(97, 98): 256}),  # a tie: the smallest pair wins
    ],
)
def test_runs_overlaps_and_ties(chunks, expected):
    merges, _ = all_three(chunks, len(expected))
    assert merges == expected


@pytest.mark.parametrize(
    "text", ["aaaa", "aaaaa", "aaaaaaa", "abababab", "ababa", "aabbaabb", "aaabaaab", "abaabaaab", "bbbbabbbb"]
)
def test_runs_agree_to_the_end(text):
    # As many merges as the text allows, in one chunk, in two copies, and beside a shorter run.
    for chunks in ([text.encode()], [text.encode()] * 2, [text.encode(), b"aaa", b"ab"]):
        merges, _ = all_three(chunks, 12)
        assert len(merges) < 12  # every run ends as one token per chunk, well before 12 merges


def test_chunk_counts_weigh_pairs():
    # "ba" x3 gives (b, a) 3; "aab" x2 gives (a, a) 2 and (a, b) 2, a tie that (a, a) wins; then (aa, b) 2.
    counts = {b"ba": 3, b"aab": 2, b"c": 7, b"": 1}
    merges, calls = all_three(counts, 5)
    assert calls == [(0, (98, 97), 256, 3), (1, (97, 97), 257, 2), (2, (257, 98), 258, 2)]


def test_stops_early_when_no_pair_is_left():
    assert train_numpy([b"ab", b"c"], 10) == {(97, 98): 256}
    assert train_numpy([b"aaaa"], 10) == {(97, 97): 256, (256, 256): 257}
    for chunks in ([], [b""], [b"a", b"b"], {b"x": 5}):
        assert train_numpy(chunks, 5) == {}
    assert train_numpy([b"abc"], 0) == {}


def test_rejects_counts_below_one():
    with pytest.raises(ValueError, match="positive"):
        train_numpy({b"ab": 0}, 3)


# ----- random and real corpora ---------------------------------------------------------------------------------------

tie_heavy = st.lists(st.sampled_from(b"ab\x00\xff"), max_size=12).map(bytes)


@settings(max_examples=80, deadline=None)
@given(chunks=st.lists(st.one_of(tie_heavy, st.binary(max_size=12)), max_size=10), num_merges=st.integers(0, 20))
def test_random_byte_corpora(chunks, num_merges):
    all_three(chunks, num_merges)


@settings(max_examples=40, deadline=None)
@given(
    counts=st.dictionaries(st.one_of(tie_heavy, st.binary(max_size=8)), st.integers(1, 5), max_size=8),
    num_merges=st.integers(1, 15),
)
def test_random_chunk_counts(counts, num_merges):
    all_three(counts, num_merges)


@settings(max_examples=30, deadline=None)
@given(text=st.text(alphabet=st.sampled_from("aé😀 \n'1x你ab"), max_size=60), num_merges=st.integers(1, 30))
def test_random_unicode_text(text, num_merges):
    for chunks in ([text.encode()], [c.encode() for c in regex.findall(GPT4_SPLIT_PATTERN, text)]):
        all_three(chunks, num_merges)


def test_unicode_heavy_corpus():
    rng = random.Random(0)
    alphabet = list("aab  b\n\n\t'sSdDtT1234567890éÀßΩжЖ你好こん🙂🚀—.,!?") + ["\r\n"]
    text = "".join(rng.choice(alphabet) for _ in range(3000)) + SAMPLE
    for pattern in (GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN):
        counts = Counter(c.encode() for c in regex.findall(pattern, text))
        all_three(counts, 80)
    all_three([text[:1500].encode()], 40)


def test_tinyshakespeare_prefix(data_file):
    # Deep into training on real text: 256 merges, the vocabulary the benchmark trains (reference too slow here).
    text = data_file("tinyshakespeare.txt").read_text(encoding="utf-8")[:100_000]
    counts = Counter(c.encode() for c in regex.findall(GPT4_SPLIT_PATTERN, text))
    calls_python, calls_numpy = [], []
    assert list(train_python(counts, 256, lambda *a: calls_python.append(a)).items()) == list(
        train_numpy(counts, 256, lambda *a: calls_numpy.append(a)).items()
    )
    assert calls_python == calls_numpy
    tok = RegexTokenizer(GPT4_SPLIT_PATTERN)
    tok.train(text, 512)  # the words are long enough for train_auto to pick NumPy
    assert list(tok.merges.items()) == [(pair, new_id) for _, pair, new_id, _ in calls_python]
    whole = {text[:20_000].encode(): 1}  # BasicTokenizer: the text is one chunk
    assert list(train_python(whole, 256).items()) == list(train_numpy(whole, 256).items())


# ----- the dispatcher ------------------------------------------------------------------------------------------------


def test_trainer_names_say_what_runs():
    assert TRAINERS == {"auto": train_auto, "numpy": train_numpy, "python": train_python, "reference": train_reference}
    assert inspect.signature(Tokenizer.train).parameters["trainer"].default == "auto"


LONG = b"abcab" * (NUMPY_MIN_BYTES // 5)  # exactly NUMPY_MIN_BYTES bytes


@pytest.mark.parametrize(
    "chunks, num_merges, expected",
    [
        ({LONG: 1}, 10, "numpy"),
        ([LONG[:-1], LONG[-1:]], DENSE_LIMIT - 256, "numpy"),  # still NUMPY_MIN_BYTES in all
        ([LONG], DENSE_LIMIT - 255, "python"),  # the dense matrix would be too big
        ([LONG[:-1]], 10, "python"),  # too few bytes: NumPy's fixed cost per round would dominate
        ({b"ab": 10_000}, 10, "python"),  # many chunks, but only two distinct bytes
    ],
)
def test_dispatcher_choice(monkeypatch, chunks, num_merges, expected):
    chosen = []

    def spy(name, real):
        def train(chunks, num_merges, on_merge=None):
            chosen.append(name)
            return real(chunks, num_merges, on_merge)

        return train

    monkeypatch.setattr(trainer_numpy, "train_numpy", spy("numpy", train_numpy))
    monkeypatch.setattr(trainer_numpy, "train_python", spy("python", train_python))
    merges = train_auto(chunks, num_merges)
    assert chosen == [expected]
    assert list(merges.items()) == list(train_python(chunks, num_merges).items())
