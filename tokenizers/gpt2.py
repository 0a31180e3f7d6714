"""Loading GPT-2's tokenizer from OpenAI's published files, `encoder.json` and (if at hand) `vocab.bpe`.

Both store tokens as *strings*, not bytes, through GPT-2's byte-to-unicode table: the 188 printable bytes stand
for themselves ("A" is byte 65) and the 68 others (control characters, space, 0x7F-0xA0, 0xAD) are moved up to
U+0100, U+0101, ... in byte order, so that every token is printable and has no spaces (space is "Ġ", U+0120,
and newline "Ċ"). Mapping each character back gives the token's bytes.

OpenAI's `encoder.json` maps token string -> id, and GPT-2's ids are its merge ranks: ids 0..255 are the single
bytes (in the table's order, not byte order), id 256 + k is the token made by the k-th merge, and 50256 is
"<|endoftext|>". `vocab.bpe` lists the merges. Without it the merges can be recovered from the ranks alone: the
k-th token's bytes, encoded with the first k - 1 merges, end up as exactly two tokens, and those are its merge.

Hugging Face's `vocab.json` + `merges.txt` use the same strings; tools/bpe_files.py reads them, and `vocab.bpe`.
"""

from __future__ import annotations

import json

from .bpe import bpe

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


def load_json(path) -> dict:
    """An encoder.json or vocab.json: token string -> id."""
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


def byte_ids_of(encoder: dict[str, int], decoder: dict[str, int], path) -> list[int]:
    """The ids of the 256 single-byte tokens, in byte order."""
    missing = [c for c in decoder if c not in encoder]
    if missing:
        raise ValueError(f"{path}: {len(missing)} single-byte tokens are missing, e.g. {missing[0]!r}")
    table = bytes_to_unicode()
    return [encoder[table[b]] for b in range(256)]


def read_gpt2(encoder_json, vocab_bpe=None):
    """OpenAI's GPT-2 files -> (byte_ids, merges, special_tokens)."""
    encoder = load_json(encoder_json)
    decoder = {c: b for b, c in bytes_to_unicode().items()}
    specials = {EOT: encoder[EOT]} if EOT in encoder else {}
    byte_ids = byte_ids_of(encoder, decoder, encoder_json)
    if vocab_bpe is not None:
        from .tools.bpe_files import read_merges  # vocab.bpe has the format of Hugging Face's merges.txt

        return byte_ids, read_merges(encoder, vocab_bpe), specials

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
        parts = bpe(ids, ranks, merges)
        if len(parts) != 2:
            raise ValueError(
                f"{encoder_json}: token {text!r} (id {i}) is not the merge of two lower-ranked tokens "
                f"(BPE leaves {len(parts)} parts); pass vocab_bpe to give the merges explicitly"
            )
        pair = (parts[0], parts[1])
        ranks[pair] = len(ranks)
        merges[pair] = i
    return byte_ids, merges, specials
