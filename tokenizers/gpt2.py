"""Reading and writing published byte-level BPE files: OpenAI's GPT-2 release and Hugging Face's format.

Both store tokens as *strings*, not bytes, through GPT-2's byte-to-unicode table: the 188 printable bytes stand
for themselves ("A" is byte 65) and the 68 others (control characters, space, 0x7F-0xA0, 0xAD) are moved up to
U+0100, U+0101, ... in byte order, so that every token is printable and has no spaces (space is "Ġ", U+0120,
and newline "Ċ"). Mapping each character back gives the token's bytes.

OpenAI's `encoder.json` maps token string -> id, and GPT-2's ids are its merge ranks: ids 0..255 are the single
bytes (in the table's order, not byte order), id 256 + k is the token made by the k-th merge, and 50256 is
"<|endoftext|>". `vocab.bpe` lists the merges. Without it the merges can be recovered from the ranks alone: the
k-th token's bytes, encoded with the first k - 1 merges, end up as exactly two tokens, and those are its merge.

Hugging Face's `vocab.json` + `merges.txt` use the same strings; its ids need not follow merge order.
"""

from __future__ import annotations

import json
import os

from .bpe import bpe_simple

EOT = "<|endoftext|>"


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table: byte value -> the printable character that stands for it in vocabulary files."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    shifted = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + shifted)
            shifted += 1
    return table


def _token_bytes(text: str, decoder: dict[str, int], where: str) -> bytes:
    try:
        return bytes(decoder[c] for c in text)
    except KeyError as e:
        raise ValueError(f"{where}: token {text!r} has a character outside GPT-2's byte table: {e.args[0]!r}") from None


def _load_json(path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or not all(isinstance(v, int) for v in data.values()):
        raise ValueError(f"{path}: expected a JSON object mapping token strings to integer ids")
    return data


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


def _byte_ids(encoder: dict[str, int], decoder: dict[str, int], path) -> list[int]:
    missing = [c for c in decoder if c not in encoder]
    if missing:
        raise ValueError(f"{path}: {len(missing)} single-byte tokens are missing, e.g. {missing[0]!r}")
    table = bytes_to_unicode()
    return [encoder[table[b]] for b in range(256)]


def _merges_from_file(encoder: dict[str, int], path) -> dict[tuple[int, int], int]:
    merges = {}
    for number, left, right in _read_merge_lines(path):
        try:
            merges[(encoder[left], encoder[right])] = encoder[left + right]
        except KeyError as e:
            raise ValueError(f"{path}: line {number}: token {e.args[0]!r} is not in the vocabulary") from None
    return merges


def read_gpt2(encoder_json, vocab_bpe=None):
    """OpenAI's GPT-2 files -> (byte_ids, merges, special_tokens)."""
    encoder = _load_json(encoder_json)
    decoder = {c: b for b, c in bytes_to_unicode().items()}
    specials = {EOT: encoder[EOT]} if EOT in encoder else {}
    byte_ids = _byte_ids(encoder, decoder, encoder_json)
    if vocab_bpe is not None:
        return byte_ids, _merges_from_file(encoder, vocab_bpe), specials

    # Recover the merges: walk the tokens in rank (= id) order and let BPE, with the merges found so far, split each
    # token's bytes. Because BPE built the token by one last merge of two earlier tokens, exactly two are left.
    id_of_byte = {b: i for b, i in enumerate(byte_ids)}
    merges: dict[tuple[int, int], int] = {}
    ranks: dict[tuple[int, int], int] = {}
    singles = set(byte_ids)
    for text, i in sorted(encoder.items(), key=lambda item: item[1]):
        if i in singles or text in specials:
            continue
        ids = [id_of_byte[b] for b in _token_bytes(text, decoder, encoder_json)]
        parts = bpe_simple(ids, ranks, merges)
        if len(parts) != 2:
            raise ValueError(
                f"{encoder_json}: token {text!r} (id {i}) is not the merge of two lower-ranked tokens "
                f"(BPE leaves {len(parts)} parts); pass vocab_bpe to give the merges explicitly"
            )
        pair = (parts[0], parts[1])
        ranks[pair] = len(ranks)
        merges[pair] = i
    return byte_ids, merges, specials


def read_hf(vocab_json, merges_txt):
    """Hugging Face byte-level BPE files -> (byte_ids, merges, special_tokens).

    Vocabulary entries that are neither single bytes nor produced by a merge (such as "<|endoftext|>") are taken
    as special tokens, under their own text.
    """
    encoder = _load_json(vocab_json)
    decoder = {c: b for b, c in bytes_to_unicode().items()}
    byte_ids = _byte_ids(encoder, decoder, vocab_json)
    merges = _merges_from_file(encoder, merges_txt)
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
