"""Datasets for train.py: generated tasks that need no download, and text files as token streams.

- `AdditionTask`: minGPT's adder idea. "a + b" with `digits`-digit operands is the token sequence of a's digits,
  b's digits and the digits of the sum *reversed* (so the model produces the low digit, with its carry, first, as
  done by hand). The loss is taken on the answer digits only. A fixed, seeded share of all problems is held out
  and never appears in training.
- `ReverseTask`: a source sequence of digits and its reverse as the target, for the encoder-decoder Transformer.
- `TextDataset`: a corpus as one array of token ids, first 90% for training and last 10% for validation, sampled
  as random windows of block_size + 1 tokens (nanoGPT's get_batch).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tokenizers import CharTokenizer  # noqa: F401 (D.CharTokenizer, for the presets and checkpoints)

from .data_files import DataFileError, data_home, download, find
from .options import OptionError

IGNORE = -100  # F.cross_entropy's ignore_index: positions that carry no loss


class AdditionTask:
    """Sequences [a digits][b digits][reversed sum digits]; input is seq[:-1], target seq[1:] masked to the answer."""

    vocab_size = 10

    def __init__(self, digits: int = 2, seed: int = 1337, holdout: int = 1000):
        self.digits = digits
        self.n = 10**digits
        total = self.n * self.n
        rng = np.random.default_rng(seed)
        n_holdout = min(holdout, total // 10)
        if total <= 10**7:
            perm = rng.permutation(total)
            self.test_ids = np.sort(perm[:n_holdout])
        else:  # too many to enumerate: hold out a random sample and reject it when drawing training problems
            self.test_ids = np.unique(rng.integers(0, total, n_holdout))
        self.block_size = 3 * digits  # the model sees 3d tokens and predicts the next of each

    def encode(self, ids: np.ndarray) -> np.ndarray:
        """Problem ids (a * n + b) -> token sequences (N, 3d + 1)."""
        a, b = np.divmod(np.asarray(ids, dtype=np.int64), self.n)
        c = a + b
        d = self.digits
        cols = [(a // 10 ** (d - 1 - i)) % 10 for i in range(d)]
        cols += [(b // 10 ** (d - 1 - i)) % 10 for i in range(d)]
        cols += [(c // 10**i) % 10 for i in range(d + 1)]  # least significant digit first
        return np.stack(cols, axis=1)

    def _draw_train(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        ids = rng.integers(0, self.n * self.n, batch_size)
        bad = np.isin(ids, self.test_ids)
        while bad.any():  # redraw held-out problems so training never sees them
            ids[bad] = rng.integers(0, self.n * self.n, int(bad.sum()))
            bad = np.isin(ids, self.test_ids)
        return ids

    def get_batch(self, split: str, batch_size: int, rng: np.random.Generator):
        ids = self._draw_train(batch_size, rng) if split == "train" else rng.choice(self.test_ids, batch_size)
        seq = self.encode(ids)
        x, y = seq[:, :-1].copy(), seq[:, 1:].copy()
        y[:, : 2 * self.digits - 1] = IGNORE  # predicting the operands is not the task
        return x, y

    def format(self, prompt_digits: np.ndarray, answer_digits: np.ndarray) -> str:
        d = self.digits
        a = int("".join(map(str, prompt_digits[:d])))
        b = int("".join(map(str, prompt_digits[d:])))
        got = int("".join(map(str, answer_digits[::-1])))
        return f"{a} + {b} = {got}" + ("" if got == a + b else f"   (wrong: {a + b})")


class ReverseTask:
    """src: `length` random digits; tgt: BOS, the digits reversed, EOS. Tokens 0-9, BOS = 10, EOS = 11, and
    PAD = 12, which never occurs here but is the id the model's loss ignores (0 is a digit)."""

    BOS, EOS, PAD = 10, 11, 12
    vocab_size = 13

    def __init__(self, length: int = 8, seed: int = 1337, holdout: int = 1000):
        self.length = length
        rng = np.random.default_rng(seed)
        self.test_src = rng.integers(0, 10, (holdout, length))
        self._test_keys = {row.tobytes() for row in self.test_src}

    def _draw(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        src = rng.integers(0, 10, (batch_size, self.length))
        for i in range(batch_size):
            while src[i].tobytes() in self._test_keys:  # training never sees a held-out sequence
                src[i] = rng.integers(0, 10, self.length)
        return src

    def targets(self, src: np.ndarray):
        """tgt_in = [BOS, reversed], tgt_out = [reversed, EOS]."""
        rev = src[:, ::-1]
        n = len(src)
        tgt_in = np.concatenate([np.full((n, 1), self.BOS), rev], axis=1)
        tgt_out = np.concatenate([rev, np.full((n, 1), self.EOS)], axis=1)
        return tgt_in, tgt_out

    def get_batch(self, split: str, batch_size: int, rng: np.random.Generator):
        if split == "train":
            src = self._draw(batch_size, rng)
        else:
            src = self.test_src[rng.integers(0, len(self.test_src), batch_size)]
        tgt_in, tgt_out = self.targets(src)
        return src, tgt_in, tgt_out


class TextDataset:
    """A token stream split 90/10 into train and val; batches are random windows (nanoGPT's get_batch)."""

    def __init__(self, ids: np.ndarray, block_size: int, vocab_size: int):
        ids = np.asarray(ids, dtype=np.int64)
        n = int(0.9 * len(ids))
        self.train, self.val = ids[:n], ids[n:]
        self.block_size, self.vocab_size = block_size, vocab_size
        for name, part in (("train", self.train), ("val", self.val)):
            if len(part) < block_size + 1:
                raise OptionError(
                    f"the {name} split has {len(part)} tokens, fewer than block_size + 1 = {block_size + 1}; "
                    "use a longer text or a smaller --block_size"
                )

    def get_batch(self, split: str, batch_size: int, rng: np.random.Generator):
        data = self.train if split == "train" else self.val
        starts = rng.integers(0, len(data) - self.block_size, batch_size)
        offsets = starts[:, None] + np.arange(self.block_size + 1)  # (B, T + 1)
        windows = data[offsets]
        return windows[:, :-1], windows[:, 1:]


def cache_dir() -> Path:
    """Where downloaded data goes: the data home of training/data_files.py."""
    return data_home()


def read_text(path: str, preset: str) -> str:
    """The text of `path`, or for shakespeare_char without --data, tinyshakespeare from the data home (downloaded
    there, checksum checked, the first time) or ../shared/data."""
    if not path:
        if preset != "shakespeare_char":
            raise OptionError(f"--preset {preset} needs --data PATH (a text file)")
        found = find("tinyshakespeare.txt")
        if found is None:
            try:
                found = download("tinyshakespeare.txt")
            except DataFileError as e:
                raise OptionError(f"{e}; pass --data PATH to a local copy of the text") from None
        path = str(found)
    p = Path(path)
    if not p.exists():
        raise OptionError(f"data file {path} does not exist")
    if p.is_dir():
        raise OptionError(f"data file {path} is a directory")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise OptionError(f"data file {path} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    if not text:
        raise OptionError(f"data file {path} is empty")
    return text
