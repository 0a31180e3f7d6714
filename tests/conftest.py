"""Shared test helpers.

- `ref` tests compare with torch / transformers / tiktoken / safetensors; they call `pytest.importorskip` so a user's
  plain `pytest` without the `ref` extra skips them cleanly.
- `data_file(name)` returns the path of a data file of training/data_files.py ("tinyshakespeare.txt",
  "gpt2/encoder.json", "gpt2/vocab.bpe") from the data home or ../shared/data, checksum checked, and otherwise skips
  the test with the command that downloads it: that data is never committed to the project.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.data_files import find, how_to_get


@pytest.fixture
def data_file():
    def get(name: str) -> Path:
        path = find(name)
        if path is None:
            pytest.skip(how_to_get(name))
        return path

    return get


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# ----- tokenizers trained on _tokenizer_samples.SAMPLE, shared by the tokenizer test files (module-scoped: a few ms)


@pytest.fixture(scope="module")
def trained():
    from _tokenizer_samples import SAMPLE

    from tokenizers import RegexTokenizer

    tok = RegexTokenizer()
    tok.train(SAMPLE * 3, 256 + 60)
    return tok


@pytest.fixture(scope="module")
def trained_basic():
    from _tokenizer_samples import SAMPLE

    from tokenizers import BasicTokenizer

    tok = BasicTokenizer()
    tok.train(SAMPLE, 256 + 40)
    return tok
