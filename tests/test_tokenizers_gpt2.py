"""GPT-2's tokenizer from OpenAI's encoder.json, Hugging Face files, and reference checks against tiktoken.

OpenAI's encoder.json and tinyshakespeare come from the data home or ../shared/data (training/data_files.py); tests
that need them skip when they are absent, naming the command that downloads them.
"""

import json
import os
import subprocess
import sys
import tempfile
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenizers import GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN, DisallowedSpecialTokenError, RegexTokenizer, load
from tokenizers.bpe import bpe
from tokenizers.fast.bpe_batch import BatchBPE
from tokenizers.gpt2 import bytes_to_unicode
from training.data_files import find, how_to_get

ENCODER = find("gpt2/encoder.json")  # None when absent
SHAKESPEARE = find("tinyshakespeare.txt")

needs_encoder = pytest.mark.skipif(ENCODER is None, reason=how_to_get("gpt2/encoder.json"))
needs_shakespeare = pytest.mark.skipif(SHAKESPEARE is None, reason=how_to_get("tinyshakespeare.txt"))

MIXED_TEXTS = [
    "hello world",
    " Hello world",
    "0" * 17,
    "def main():\n    print(f'{x!r:>10}')  # comment\r\n\treturn [i ** 2 for i in range(10)]\n",
    "你好，世界！これは日本語のテキストです。한국어도 있습니다.",
    "emoji 🙂🚀👨‍👩‍👧‍👦 flags 🇫🇷🇯🇵 and ZWJ sequences",
    "whitespace   runs\t\t\tand\n\n\n\nnewlines      \n   \r\n\r\n  end   ",
    "I'M SURE THEY'LL SAY WE'VE DONE IT, DON'T YOU? it's, you're, I'd, we'll",
    "Ünïcödé àccents, Ελληνικά, русский текст, العربية, עברית, हिन्दी",
    "numbers 1234567890 3.14159 -42 1e10 0x1F 1,000,000",
    "\u00a0nbsp\u2003em\u3000ideographic\u200bzwsp\u2028line\u0085nel\x1c\x1f\x7f",
    "mixed<|endoftext|>special",
    "      ",
    "'''''' --- *** ### !!! ??? ...",
]


@pytest.fixture(scope="module")
def gpt2():
    if ENCODER is None:
        pytest.skip(how_to_get("gpt2/encoder.json"))
    return RegexTokenizer.from_gpt2(ENCODER)


@pytest.fixture(scope="module")
def gpt2_batch(gpt2):
    return BatchBPE(gpt2.byte_ids, gpt2.merges)


@pytest.fixture(scope="module")
def tiktoken_gpt2():
    """tiktoken's gpt2 encoding, built from encoder.json (get_encoding would download vocab.bpe)."""
    tiktoken = pytest.importorskip("tiktoken")
    if ENCODER is None:
        pytest.skip(how_to_get("gpt2/encoder.json"))
    decoder = {c: b for b, c in bytes_to_unicode().items()}
    encoder = json.loads(ENCODER.read_text(encoding="utf-8"))
    ranks = {bytes(decoder[c] for c in t): i for t, i in encoder.items() if t != "<|endoftext|>"}
    return tiktoken.Encoding(
        name="gpt2-from-encoder-json",
        pat_str=GPT2_SPLIT_PATTERN,
        mergeable_ranks=ranks,
        special_tokens={"<|endoftext|>": 50256},
    )


def test_bytes_to_unicode_table():
    table = bytes_to_unicode()
    assert sorted(table) == list(range(256))
    assert len(set(table.values())) == 256
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ" and table[ord("A")] == "A"
    assert all(c.isprintable() and not c.isspace() for c in table.values())


@needs_encoder
def test_gpt2_vectors(gpt2):
    assert gpt2.encode("hello world") == [31373, 995]
    assert gpt2.encode(" Hello world") == [18435, 995]
    assert gpt2.encode("0" * 17) == [8269, 10535, 830]
    assert gpt2.encode("hello <|endoftext|>", allowed_special="all") == [31373, 220, 50256]
    assert gpt2.decode([31373, 220, 50256]) == "hello <|endoftext|>"
    with pytest.raises(DisallowedSpecialTokenError):
        gpt2.encode("hello <|endoftext|>")
    assert len(gpt2.vocab) == 50257
    assert len(gpt2.merges) == 50000
    assert gpt2.special_tokens == {"<|endoftext|>": 50256}


@needs_encoder
@needs_shakespeare
def test_gpt2_tinyshakespeare_count(gpt2):
    text = SHAKESPEARE.read_text(encoding="utf-8")
    ids = gpt2.encode(text)
    assert len(ids) == 338_025
    assert gpt2.decode(ids) == text


@needs_encoder
def test_every_gpt2_token_encodes_to_itself(gpt2):
    # Justifies the chunk cache's shortcut: a chunk that is a token's own text is that token (tiktoken's too).
    for i in range(0, 50256, 7):
        token = gpt2.vocab[i]
        assert bpe([gpt2.byte_ids[b] for b in token], gpt2._ranks, gpt2.merges) == [i]


@needs_encoder
@settings(max_examples=15, deadline=None)
@given(chunks=st.lists(st.text(min_size=1, max_size=16), min_size=1, max_size=60))
def test_gpt2_batch_bpe_agrees_with_one_at_a_time(gpt2, gpt2_batch, chunks):
    data = [c.encode("utf-8", "replace") for c in chunks]
    got = [array("I", packed).tolist() for packed in gpt2_batch.encode_packed(data)]
    assert got == [bpe([gpt2.byte_ids[b] for b in d], gpt2._ranks, gpt2.merges) for d in data]


@needs_encoder
def test_vocab_bpe_gives_the_same_tokenizer(gpt2, tmp_path):
    # OpenAI's vocab.bpe lists the merges as "left right" in rank order; write one from the recovered merges.
    table = bytes_to_unicode()

    def spell(i):
        return "".join(table[b] for b in gpt2.vocab[i])

    vocab_bpe = tmp_path / "vocab.bpe"
    lines = ["#version: 0.2"] + [f"{spell(a)} {spell(b)}" for a, b in gpt2.merges]
    vocab_bpe.write_text("\n".join(lines) + "\n", encoding="utf-8")
    explicit = RegexTokenizer.from_gpt2(ENCODER, vocab_bpe)
    assert list(explicit.merges.items()) == list(gpt2.merges.items())
    assert explicit.byte_ids == gpt2.byte_ids


@needs_encoder
def test_hf_files_round_trip(gpt2, tmp_path):
    gpt2.to_hf(tmp_path)
    vocab = json.loads((tmp_path / "vocab.json").read_text(encoding="utf-8"))
    assert vocab == json.loads(ENCODER.read_text(encoding="utf-8"))
    again = RegexTokenizer.from_hf(tmp_path / "vocab.json", tmp_path / "merges.txt")
    assert list(again.merges.items()) == list(gpt2.merges.items())
    assert again.special_tokens == {"<|endoftext|>": 50256}
    for text in MIXED_TEXTS:
        assert again.encode(text, allowed_special="all") == gpt2.encode(text, allowed_special="all")


@needs_encoder
def test_gpt2_save_load(gpt2, tmp_path):
    again = load(gpt2.save(str(tmp_path / "gpt2")))
    assert again.byte_ids == gpt2.byte_ids
    assert list(again.merges.items()) == list(gpt2.merges.items())
    assert again.encode(MIXED_TEXTS[3]) == gpt2.encode(MIXED_TEXTS[3])


def test_from_gpt2_errors(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        RegexTokenizer.from_gpt2(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        RegexTokenizer.from_gpt2(bad)
    table = bytes_to_unicode()
    few = tmp_path / "few.json"
    few.write_text(json.dumps({table[b]: b for b in range(200)}))
    with pytest.raises(ValueError, match="single-byte tokens are missing"):
        RegexTokenizer.from_gpt2(few)
    odd = tmp_path / "odd.json"
    tokens = {table[b]: b for b in range(256)}
    tokens["abc"] = 256  # no earlier "ab" or "bc": not the merge of two tokens
    odd.write_text(json.dumps(tokens))
    with pytest.raises(ValueError, match="'abc'.*3 parts"):
        RegexTokenizer.from_gpt2(odd)


def test_to_hf_refuses_duplicate_spellings(tmp_path):
    tok = RegexTokenizer()
    tok.merges = {(98, 99): 256, (97, 256): 257, (97, 98): 258, (258, 99): 259}  # "abc" made twice
    tok._rebuild()
    with pytest.raises(ValueError, match="same bytes"):
        tok.to_hf(tmp_path)


# ----- reference checks against tiktoken ---------------------------------------------------------------------------


@pytest.mark.ref
def test_matches_tiktoken_on_mixed_texts(gpt2, tiktoken_gpt2):
    for text in MIXED_TEXTS:
        assert gpt2.encode(text, allowed_special="all") == tiktoken_gpt2.encode(text, allowed_special="all"), text
        assert gpt2.encode_ordinary(text) == tiktoken_gpt2.encode_ordinary(text), text


@pytest.mark.ref
def test_readable_path_matches_tiktoken(gpt2, tiktoken_gpt2):
    # `fast = False`: the regex split and `bpe.bpe` on every chunk, nothing from fast/.
    readable = RegexTokenizer._from_parts(GPT2_SPLIT_PATTERN, gpt2.byte_ids, gpt2.merges, gpt2.special_tokens)
    readable.fast = False
    for text in MIXED_TEXTS:
        assert readable.encode(text, allowed_special="all") == tiktoken_gpt2.encode(text, allowed_special="all"), text
    assert len(readable._fast.cache) == 0


@pytest.mark.ref
@settings(max_examples=80, deadline=None)
@given(text=st.text(max_size=120) | st.text(alphabet=st.sampled_from("aA1 \t\n\r'sSé你🙂.-_ \u00a0"), max_size=60))
def test_matches_tiktoken_on_random_text(gpt2, tiktoken_gpt2, text):
    assert gpt2.encode_ordinary(text) == tiktoken_gpt2.encode_ordinary(text)


@pytest.mark.ref
def test_lone_surrogates_like_tiktoken(gpt2, tiktoken_gpt2):
    for text in ("a\ud800b", "\udfff  x", "ok \ud83d\ude00 pair"):
        assert gpt2.encode(text) == tiktoken_gpt2.encode(text)


@pytest.mark.ref
@needs_shakespeare
def test_matches_tiktoken_on_tinyshakespeare(gpt2, tiktoken_gpt2):
    text = SHAKESPEARE.read_text(encoding="utf-8")
    expected = tiktoken_gpt2.encode_ordinary(text)
    gpt2._fast.cache.reset()
    assert gpt2.encode_ordinary(text) == expected  # fresh: 7,400 new chunks encoded together (bpe_batch.py)
    assert gpt2.encode_ordinary(text) == expected  # cached


@pytest.mark.ref
@settings(max_examples=10, deadline=None)
@given(words=st.lists(st.text(min_size=1, max_size=12), min_size=200, max_size=400))
def test_many_new_random_chunks_match_tiktoken(gpt2, tiktoken_gpt2, words):
    # Enough new chunks that they are encoded together: random Unicode, not only Shakespeare's English.
    text = " ".join(words)
    assert gpt2.encode_ordinary(text) == tiktoken_gpt2.encode_ordinary(text)


@pytest.mark.ref
def test_gpt4_pattern_splits_like_tiktoken(gpt2, tiktoken_gpt2):
    # Same merges, GPT-4's split pattern on both sides: checks our reading of cl100k's pattern against tiktoken's.
    import tiktoken

    ours = RegexTokenizer(GPT4_SPLIT_PATTERN)
    ours.byte_ids, ours.merges = gpt2.byte_ids, gpt2.merges
    ours._rebuild()
    theirs = tiktoken.Encoding(
        name="gpt2-ranks-gpt4-pattern",
        pat_str=GPT4_SPLIT_PATTERN,
        mergeable_ranks=tiktoken_gpt2._mergeable_ranks,
        special_tokens={},
    )
    for text in MIXED_TEXTS:
        assert ours.encode_ordinary(text) == theirs.encode_ordinary(text), text


@pytest.mark.ref
def test_special_token_semantics_match_tiktoken(gpt2, tiktoken_gpt2):
    text = "a <|endoftext|> b"
    with pytest.raises(ValueError):
        tiktoken_gpt2.encode(text)
    with pytest.raises(ValueError):
        gpt2.encode(text)
    for allowed in ("all", {"<|endoftext|>"}):
        assert gpt2.encode(text, allowed_special=allowed) == tiktoken_gpt2.encode(text, allowed_special=allowed)
    assert gpt2.encode(text, allowed_special="none") == tiktoken_gpt2.encode(text, disallowed_special=())


# ----- reference check against Hugging Face tokenizers (separate process: our package shadows theirs) ----------

HF_SCRIPT = """
import json, sys
try:
    from tokenizers import ByteLevelBPETokenizer
except ImportError:
    print("SKIP"); sys.exit(0)
folder, texts = sys.argv[1], json.loads(sys.stdin.read())
tok = ByteLevelBPETokenizer(folder + "/vocab.json", folder + "/merges.txt")
print(json.dumps([tok.encode(t).ids for t in texts]))
"""


@pytest.mark.ref
def test_to_hf_files_load_in_hugging_face(tmp_path):
    corpus = "\n".join(MIXED_TEXTS) * 3
    tok = RegexTokenizer(GPT2_SPLIT_PATTERN)
    tok.train(corpus, 256 + 100)
    tok.to_hf(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", HF_SCRIPT, str(tmp_path)],
        input=json.dumps(MIXED_TEXTS),
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    if result.stdout.strip() == "SKIP":
        pytest.skip("Hugging Face tokenizers is not installed")
    assert json.loads(result.stdout) == [tok.encode_ordinary(t) for t in MIXED_TEXTS]


@pytest.mark.slow
@needs_shakespeare
def test_trainers_agree_on_tinyshakespeare():
    text = SHAKESPEARE.read_text(encoding="utf-8")[:200_000]
    fast, ref = RegexTokenizer(), RegexTokenizer()
    fast.train(text, 512)
    ref.train(text, 512, trainer="reference")
    assert list(fast.merges.items()) == list(ref.merges.items())
