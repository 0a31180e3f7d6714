"""CharTokenizer: a vocabulary of the corpus's characters (nanoGPT's shakespeare_char)."""

import numpy as np
import pytest

import tokenizers
from tokenizers import CharTokenizer, UnknownCharactersError

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n"


def test_vocabulary_is_the_sorted_characters():
    tok = CharTokenizer.from_text(TEXT)
    assert tok.chars == "\n ,.:BCFacdefhikmnoprstuwyz" and tok.vocab_size == 27
    assert tok.encode("Fire") == [tok.chars.index(c) for c in "Fire"]


def test_round_trip():
    tok = CharTokenizer.from_text(TEXT)
    ids = tok.encode(TEXT)
    assert len(ids) == len(TEXT) and max(ids) == tok.vocab_size - 1
    assert tok.decode(ids) == TEXT
    assert tok.decode(np.array(ids, dtype=np.int64)) == TEXT  # a model's output
    assert tok.encode_ordinary(TEXT) == ids
    assert tok.encode("") == [] and tok.decode([]) == ""


def test_unknown_characters_raise_naming_them():
    tok = CharTokenizer.from_text("abc")
    with pytest.raises(UnknownCharactersError, match=r"characters not in the training vocabulary: 'XZ'") as info:
        tok.encode("aZbXZ")
    assert isinstance(info.value, ValueError)


def test_bad_ids_and_vocabularies():
    tok = CharTokenizer("abc")
    for bad in (3, -1):
        with pytest.raises(ValueError, match=f"token id {bad} is not in the vocabulary"):
            tok.decode([0, bad])
    with pytest.raises(ValueError, match="twice"):
        CharTokenizer("abca")


def test_training_uses_this_class():
    data = pytest.importorskip("training.data")
    assert data.CharTokenizer is tokenizers.CharTokenizer
