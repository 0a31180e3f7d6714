"""Tokenizers: the training rule, the trainers against each other, encode/decode, special tokens, files."""

import random
import warnings

import pytest
import regex
from _tokenizer_samples import SAMPLE
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenizers import (
    GPT2_SPLIT_PATTERN,
    GPT4_SPLIT_PATTERN,
    BasicTokenizer,
    DisallowedSpecialTokenError,
    RegexTokenizer,
    load,
)
from tokenizers.base import TRAINERS
from tokenizers.bpe import bpe, merge_pair
from tokenizers.fast import train_python
from tokenizers.fast.bpe_long import bpe_auto, bpe_heap, bpe_replay
from tokenizers.reference_trainer import train_reference

# ----- the training rule ---------------------------------------------------------------------------------------------


def test_wikipedia_example():
    tok = BasicTokenizer()
    tok.train("aaabdaaabac", 256 + 3)
    assert tok.encode("aaabdaaabac") == [258, 100, 258, 97, 99]
    assert tok.merges == {(97, 97): 256, (97, 98): 257, (256, 257): 258}
    assert tok.decode([258, 100, 258, 97, 99]) == "aaabdaaabac"
    assert tok.vocab[258] == b"aaab"


def test_counts_overlap_and_merges_do_not():
    # "aaa" holds (a, a) twice, so it beats (b, c) which occurs once... and merging gives [aa, a].
    assert train_reference([b"aaa", b"bc"], 1) == {(97, 97): 256}
    assert train_python([b"aaa", b"bc"], 1) == {(97, 97): 256}
    assert merge_pair([1, 1, 1], (1, 1), 9) == [9, 1]
    assert merge_pair([1, 1, 1, 1], (1, 1), 9) == [9, 9]


def test_ties_go_to_the_smallest_pair():
    # (b, a), (a, b), (c, d) each occur once: (97, 98) is the smallest.
    for train in (train_reference, train_python):
        assert list(train([b"ab", b"ba", b"cd"], 1)) == [(97, 98)]


def test_merges_never_cross_chunks():
    tok = RegexTokenizer(GPT2_SPLIT_PATTERN)
    tok.train("ab ab ab ab", 256 + 2)  # chunks "ab", " ab", " ab", " ab"
    assert [tok.vocab[i] for i in tok.merges.values()] == [b"ab", b" ab"]
    basic = BasicTokenizer()
    basic.train("ab ab ab ab", 256 + 2)  # without a pattern "b " is as frequent as " a"
    assert [basic.vocab[i] for i in basic.merges.values()] == [b"ab", b" ab"]
    basic.train("ab ab ab ab", 256 + 3)
    assert basic.vocab[258] == b" ab ab"  # a token spanning two words


def test_stops_early_with_a_warning():
    tok = BasicTokenizer()
    with pytest.warns(UserWarning, match="stopped after 1 of 10 merges"):
        tok.train("ab", 256 + 10)
    assert tok.merges == {(97, 98): 256}


def test_train_rejects_small_vocab_and_unknown_trainer():
    with pytest.raises(ValueError, match="vocab_size"):
        BasicTokenizer().train("abc", 100)
    valid = r"trainer must be one of \['auto', 'numpy', 'python', 'reference'\], got 'turbo'"
    with pytest.raises(ValueError, match=valid):
        BasicTokenizer().train("abc", 300, trainer="turbo")
    with pytest.raises(ValueError, match="trainer"):
        BasicTokenizer().train("abc", 300, trainer="fast")  # no such name: each says what runs


def test_verbose_prints_merges(capsys):
    BasicTokenizer().train("aaabdaaabac", 257, verbose=True)
    assert "merge 1/1: (97, 97) -> 256 (b'aa') had 4 occurrences" in capsys.readouterr().out


def corpora_pieces():
    small = st.text(alphabet="ab ", max_size=30)
    unicode = st.text(alphabet=st.sampled_from("aé😀 \n'1x你"), max_size=30)
    anything = st.text(max_size=30)
    return st.lists(st.one_of(small, unicode, anything), min_size=1, max_size=6)


@settings(max_examples=60, deadline=None)
@given(pieces=corpora_pieces(), num_merges=st.integers(1, 25), which=st.sampled_from(["gpt2", "gpt4", "none"]))
def test_python_and_reference_trainers_agree(pieces, num_merges, which):
    text = "".join(pieces)
    if which == "none":
        chunks = [text.encode("utf-8")]
    else:
        pattern = GPT2_SPLIT_PATTERN if which == "gpt2" else GPT4_SPLIT_PATTERN
        chunks = [c.encode("utf-8") for c in regex.findall(pattern, text)]
    fast = train_python(chunks, num_merges)
    assert list(fast.items()) == list(train_reference(chunks, num_merges).items())


def test_trainers_agree_on_a_random_unicode_corpus():
    rng = random.Random(0)
    alphabet = list("aab  b\n\n\t'sSdDtT1234567890éÀßΩжЖ你好こん🙂🚀—.,!?") + ["\r\n"]
    text = "".join(rng.choice(alphabet) for _ in range(3000)) + SAMPLE
    for pattern in (GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN):
        fast, ref = RegexTokenizer(pattern), RegexTokenizer(pattern)
        fast.train(text, 256 + 80)
        ref.train(text, 256 + 80, trainer="reference")
        assert list(fast.merges.items()) == list(ref.merges.items())
    fast, ref = BasicTokenizer(), BasicTokenizer()
    fast.train(text[:1500], 256 + 40)
    ref.train(text[:1500], 256 + 40, trainer="reference")
    assert list(fast.merges.items()) == list(ref.merges.items())


@pytest.mark.parametrize("trainer", sorted(TRAINERS))
def test_every_trainer_name_learns_the_same_merges(trainer):
    # "auto" runs NumPy on this corpus (over 8,000 bytes of distinct chunks) and Python on the shorter one.
    rng = random.Random(3)
    text = " ".join("".join(rng.choices("abcdeé ", k=rng.randrange(2, 9))) for _ in range(2500)) + SAMPLE
    for corpus in (text, SAMPLE):
        expected = RegexTokenizer()
        expected.train(corpus, 256 + 50, trainer="reference")
        tok = RegexTokenizer()
        tok.train(corpus, 256 + 50, trainer=trainer)
        assert list(tok.merges.items()) == list(expected.merges.items())


# ----- encoding and decoding -----------------------------------------------------------------------------------------


def test_empty_input():
    for tok in (BasicTokenizer(), RegexTokenizer()):
        assert tok.encode("") == []
        assert tok.encode_ordinary("") == []
        assert tok.decode([]) == ""
        assert tok.decode_bytes([]) == b""


def test_untrained_tokenizer_is_bytes():
    assert RegexTokenizer().encode("hé") == [104, 195, 169]
    assert BasicTokenizer().encode("hé") == [104, 195, 169]


@settings(max_examples=80, deadline=None)
@given(text=st.text(max_size=200))
def test_round_trip_any_text(trained, trained_basic, text):
    for tok in (trained, trained_basic):
        ids = tok.encode(text)
        assert tok.decode(ids) == text
        assert all(i in tok.vocab for i in ids)


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=100))
def test_round_trip_random_bytes(trained, data):
    # Any byte string is some concatenation of tokens: single bytes at worst.
    ids = [trained.byte_ids[b] for b in data]
    assert trained.decode_bytes(ids) == data
    assert trained.decode(ids) == data.decode("utf-8", errors="replace")


def test_lone_surrogates_encode_as_replacement_character(trained, trained_basic):
    for tok in (trained, trained_basic):
        assert tok.encode("a\ud800b") == tok.encode("a\ufffdb")
        assert tok.encode("\udfff", allowed_special="all") == tok.encode("\ufffd")
        assert tok.decode(tok.encode("x\ud83d\ude00")) == "x\U0001f600"  # a surrogate *pair* is one character


def test_invalid_utf8_decodes_to_replacement_character(trained):
    assert trained.decode([0xFF]) == "\ufffd"
    assert trained.decode([104, 0xE2, 0x82]) == "h\ufffd"


def test_unknown_id_raises_naming_it(trained):
    with pytest.raises(ValueError, match="token id 99999"):
        trained.decode([104, 99999])
    with pytest.raises(ValueError, match="-1"):
        trained.decode_bytes([-1])


def test_encode_batch(trained):
    texts = ["hello", "", SAMPLE]
    assert trained.encode_batch(texts) == [trained.encode(t) for t in texts]


def test_training_compresses(trained):
    assert len(trained.encode(SAMPLE)) < 0.75 * len(SAMPLE.encode("utf-8"))


@settings(max_examples=60, deadline=None)
@given(data=st.binary(min_size=0, max_size=300))
def test_three_bpe_implementations_agree(trained_basic, data):
    tok = trained_basic
    ids = list(data)
    expected = bpe(ids, tok._ranks, tok.merges)
    assert bpe_heap(ids, tok._ranks, tok.merges) == expected
    assert bpe_replay(ids, tok.merges) == expected
    assert bpe_auto(ids, tok._ranks, tok.merges, can_replay=True) == expected


def test_every_token_encodes_to_itself(trained):
    # The chunk cache takes a chunk that is a token's own text to be that token: this is what makes that exact.
    for i, token in trained.vocab.items():
        assert bpe(list(token), trained._ranks, trained.merges) == [i]


def test_bpe_merges_leftmost_first():
    merges = {(97, 97): 256}
    ranks = {(97, 97): 0}
    for encode in (bpe, bpe_heap):
        assert encode([97, 97, 97], ranks, merges) == [256, 97]
    assert bpe_replay([97, 97, 97], merges) == [256, 97]


ASCII_ALPHABET = "aZ09 '\t\n\r\x0b\x0c\x1c\x1f\x7f!._sStTdDlLvVmMrRe"


@settings(max_examples=150, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(ASCII_ALPHABET), max_size=40))
def test_ascii_fast_split_matches_the_pattern(text):
    for pattern in (GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN):
        assert RegexTokenizer(pattern)._split(text) == regex.findall(pattern, text)


def test_ascii_fast_split_on_every_ascii_pair():
    chars = [chr(i) for i in range(128)]
    text = "".join(a + b + a + a + b + b for a in chars for b in "a Z0'\n\r\t.")
    for pattern in (GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN):
        assert RegexTokenizer(pattern)._split(text) == regex.findall(pattern, text)


def test_gpt4_pattern_splits():
    tok = RegexTokenizer(GPT4_SPLIT_PATTERN)
    assert tok._split("HE'LL 1234567 x\r\n\n  y") == ["HE", "'LL", " ", "123", "456", "7", " x", "\r\n\n", " ", " y"]
    assert RegexTokenizer(GPT2_SPLIT_PATTERN)._split("HE'LL   you're") == ["HE", "'", "LL", "  ", " you", "'re"]


def test_invalid_pattern():
    with pytest.raises(ValueError, match="invalid split pattern"):
        RegexTokenizer("(unclosed")


# ----- special tokens ------------------------------------------------------------------------------------------------

SPECIALS = {"<|endoftext|>": 1000, "<|fim middle|>": 1001, "<|end|>": 1002}


@pytest.fixture()
def special(trained):
    tok = RegexTokenizer()
    tok.merges = dict(trained.merges)
    tok._rebuild()
    tok.register_special_tokens(SPECIALS)
    return tok


def test_special_tokens_all(special):
    text = "hi<|endoftext|> there <|fim middle|>\n<|end|>"
    ids = special.encode(text, allowed_special="all")
    assert [i for i in ids if i >= 1000] == [1000, 1001, 1002]
    assert special.decode(ids) == text
    assert ids[:-1] == special.encode("hi") + [1000] + special.encode(" there ") + [1001] + special.encode("\n")


def test_special_tokens_default_raises_naming_the_token(special):
    with pytest.raises(DisallowedSpecialTokenError, match=r"'<\|endoftext\|>'.*allowed_special") as info:
        special.encode("a <|endoftext|> b")
    assert isinstance(info.value, ValueError)
    assert special.encode("no specials here") == special.encode_ordinary("no specials here")


def test_special_tokens_none_is_ordinary_text(special):
    text = "a <|endoftext|> b"
    ids = special.encode(text, allowed_special="none")
    assert ids == special.encode_ordinary(text)
    assert not set(ids) & set(SPECIALS.values())
    assert special.decode(ids) == text


def test_special_tokens_set(special):
    text = "x<|end|>y<|endoftext|>"
    assert special.encode(text, allowed_special={"<|end|>", "<|endoftext|>"})[-1] == 1000
    with pytest.raises(DisallowedSpecialTokenError, match="fim middle"):
        special.encode("<|end|> <|fim middle|>", allowed_special={"<|end|>"})
    ids = special.encode("<|end|>y", allowed_special={"<|end|>"})
    assert ids[0] == 1002
    with pytest.raises(ValueError, match="unregistered"):
        special.encode("x", allowed_special={"<|nope|>"})
    with pytest.raises(ValueError, match="allowed_special"):
        special.encode("x", allowed_special="some")


def test_special_token_registration_errors(trained):
    tok = RegexTokenizer()
    tok.merges = dict(trained.merges)
    tok._rebuild()
    with pytest.raises(ValueError, match="already uses"):
        tok.register_special_tokens({"<|x|>": 300})
    with pytest.raises(ValueError, match="share an id"):
        tok.register_special_tokens({"<|x|>": 900, "<|y|>": 900})
    with pytest.raises(ValueError, match="non-empty"):
        tok.register_special_tokens({"": 900})
    assert tok.special_tokens == {}  # a failed registration changes nothing
    tok.register_special_tokens({"<|x|>": 900})
    with pytest.raises(ValueError, match="below vocab_size"):
        tok.train("abc", 1000)


# ----- files ---------------------------------------------------------------------------------------------------------


def assert_same(a, b):
    assert type(a) is type(b)
    assert a.pattern == b.pattern
    assert a.byte_ids == b.byte_ids
    assert list(a.merges.items()) == list(b.merges.items())
    assert a.special_tokens == b.special_tokens
    assert a.vocab == b.vocab


def test_save_load_round_trip(tmp_path, special, trained_basic):
    weird = RegexTokenizer(r"\s+|\S+")
    weird.merges = dict(special.merges)
    weird._rebuild()
    weird.register_special_tokens({'a "quoted"\nnew line ': 2000, "тест 🙂\\": 2001, "\u2028": 2002})
    for tok in (special, trained_basic, weird):
        path = tok.save(str(tmp_path / "m"))
        assert path.endswith("m.model")
        again = load(path)
        assert_same(tok, again)
        text = SAMPLE + "".join(tok.special_tokens)
        assert again.encode(text, allowed_special="all") == tok.encode(text, allowed_special="all")
        into = (BasicTokenizer() if tok.pattern is None else RegexTokenizer()).load(path)
        assert_same(tok, into)
    vocab = (tmp_path / "m.vocab").read_text(encoding="utf-8")
    assert "[\\u2028]  special" in vocab
    assert "<- [" in vocab


def test_save_load_permuted_bytes(tmp_path, trained):
    tok = RegexTokenizer()
    order = list(range(256))
    random.Random(1).shuffle(order)
    tok.byte_ids = order
    tok._rebuild()
    again = load(tok.save(str(tmp_path / "p")))
    assert_same(tok, again)
    assert again.encode("hé") == [order[104], order[195], order[169]]


BAD_FILES = {
    "empty": ("", "not a tokenizer model file"),
    "magic": ("minbpe v1\n", "first line"),
    "truncated": (
        "transformers-from-scratch bpe v1\npattern null\nbytes identity\nspecial_tokens 0\nmerges 2\n97 97 256\n",
        "file ends inside the merges",
    ),
    "bad int": (
        "transformers-from-scratch bpe v1\npattern null\nbytes identity\nspecial_tokens 0\nmerges 1\n97 x 256\n",
        "line 6",
    ),
    "undefined id": (
        "transformers-from-scratch bpe v1\npattern null\nbytes identity\nspecial_tokens 0\nmerges 1\n97 400 256\n",
        "uses id 400",
    ),
    "trailing": (
        "transformers-from-scratch bpe v1\npattern null\nbytes identity\nspecial_tokens 0\nmerges 0\nx\n",
        "unexpected text",
    ),
    "bad special": (
        "transformers-from-scratch bpe v1\npattern null\nbytes identity\nspecial_tokens 1\n<|x|> 300\nmerges 0\n",
        "JSON string",
    ),
    "bad pattern": (
        'transformers-from-scratch bpe v1\npattern "("\nbytes identity\nspecial_tokens 0\nmerges 0\n',
        "invalid split pattern",
    ),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_load_rejects_malformed_files_naming_them(tmp_path, name):
    content, problem = BAD_FILES[name]
    path = tmp_path / "bad.model"
    path.write_text(content)
    with pytest.raises(ValueError, match=problem) as info:
        load(str(path))
    assert "bad.model" in str(info.value)


def test_load_wrong_class_and_missing_file(tmp_path, trained, trained_basic):
    with pytest.raises(ValueError, match="RegexTokenizer"):
        BasicTokenizer().load(trained.save(str(tmp_path / "r")))
    with pytest.raises(ValueError, match="BasicTokenizer"):
        RegexTokenizer().load(trained_basic.save(str(tmp_path / "b")))
    with pytest.raises(ValueError, match="no such model file"):
        load(str(tmp_path / "missing.model"))


def test_failed_load_leaves_tokenizer_unchanged(tmp_path, trained):
    tok = RegexTokenizer(GPT2_SPLIT_PATTERN)
    tok.merges = dict(trained.merges)
    tok._rebuild()
    path = tmp_path / "bad.model"
    path.write_text(BAD_FILES["undefined id"][0])
    with pytest.raises(ValueError):
        tok.load(str(path))
    assert tok.pattern == GPT2_SPLIT_PATTERN
    assert tok.merges == trained.merges


def test_no_warnings_in_normal_use(trained):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        RegexTokenizer().train(SAMPLE, 300)
        trained.decode(trained.encode(SAMPLE))
