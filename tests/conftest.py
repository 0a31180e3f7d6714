"""Shared test helpers.

- `ref` tests compare with torch / transformers / tiktoken / safetensors; they call `pytest.importorskip` so a user's
  plain `pytest` without the `ref` extra skips them cleanly.
- `shared_data(name)` returns a path in ../shared/data beside the repository (tinyshakespeare, GPT-2's
  encoder.json), skipping the test when the file is absent: that data is never committed to the project.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def shared_data():
    def get(name: str) -> Path:
        path = SHARED_DATA / name
        if not path.is_file():
            pytest.skip(f"{path} is not available")
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
