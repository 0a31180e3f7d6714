"""Merges files (OpenAI's `vocab.bpe`, Hugging Face's `merges.txt`) and Hugging Face's `vocab.json`.

A merges file lists one merge a line, "left right", in rank order, each token spelled through GPT-2's
byte-to-unicode table (gpt2.py). Hugging Face's `vocab.json` is OpenAI's `encoder.json` again, except that its ids
need not follow merge order, and tokens that are neither bytes nor merge results are special tokens.
"""

from __future__ import annotations

import json
import os

from ..gpt2 import byte_ids_of, bytes_to_unicode, load_json


def _read_merge_lines(path) -> list[tuple[int, str, str]]:
    """(line number, left, right) for each merge line of a vocab.bpe / merges.txt file."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    out = []
    for number, line in enumerate(lines, 1):
        if not line or (number == 1 and line.startswith("#version")):
            continue
        parts = line.split(" ")
        if len(parts) != 2 or not all(parts):
            raise ValueError(f"{path}: line {number}: expected two tokens separated by one space, found {line!r}")
        out.append((number, parts[0], parts[1]))
    return out


def read_merges(encoder: dict[str, int], path) -> dict[tuple[int, int], int]:
    """The merges of a merges file, as ids of `encoder` (token string -> id)."""
    merges = {}
    for number, left, right in _read_merge_lines(path):
        try:
            merges[(encoder[left], encoder[right])] = encoder[left + right]
        except KeyError as e:
            raise ValueError(f"{path}: line {number}: token {e.args[0]!r} is not in the vocabulary") from None
    return merges


def read_hf(vocab_json, merges_txt):
    """Hugging Face byte-level BPE files -> (byte_ids, merges, special_tokens).

    Vocabulary entries that are neither single bytes nor produced by a merge (such as "<|endoftext|>") are taken
    as special tokens, under their own text.
    """
    encoder = load_json(vocab_json)
    decoder = {c: b for b, c in bytes_to_unicode().items()}
    byte_ids = byte_ids_of(encoder, decoder, vocab_json)
    merges = read_merges(encoder, merges_txt)
    produced = set(byte_ids) | set(merges.values())
    specials = {text: i for text, i in encoder.items() if i not in produced}
    return byte_ids, merges, specials


def write_hf(tok, directory) -> None:
    """Write `vocab.json` and `merges.txt` for a tokenizer (Hugging Face's byte-level BPE files)."""
    table = bytes_to_unicode()
    special_ids = set(tok.special_tokens.values())
    encoder: dict[str, int] = {}
    for i in sorted(tok.vocab):
        if i in special_ids:
            continue
        text = "".join(table[b] for b in tok.vocab[i])
        if text in encoder:
            raise ValueError(
                f"ids {encoder[text]} and {i} are the same bytes {tok.vocab[i]!r}; "
                "Hugging Face's vocab.json cannot hold two tokens with one spelling"
            )
        encoder[text] = i
    for text, i in tok.special_tokens.items():
        encoder[text] = i
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(encoder, f, ensure_ascii=False)
    spell = {i: text for text, i in encoder.items()}
    with open(os.path.join(directory, "merges.txt"), "w", encoding="utf-8", newline="\n") as f:
        f.write("#version: 0.2\n")
        for a, b in tok.merges:
            f.write(f"{spell[a]} {spell[b]}\n")
