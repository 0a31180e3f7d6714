"""The `.model` file: a small versioned text format whose round trip is exact, and the `.vocab` listing.

    transformers-from-scratch bpe v1
    pattern "'(?i:[sdmt]|ll|ve|re)|..."     (JSON string, or null for BasicTokenizer)
    bytes identity                          (or the 256 ids of the byte tokens, for GPT-2's numbering)
    special_tokens 1
    "<|endoftext|>" 50256                   (JSON string, so spaces, newlines and quotes survive)
    merges 256
    101 32 256                              (id1 id2 new_id, in merge order)
    ...

Strings are JSON-encoded with every non-ASCII character escaped, so each record is one ASCII line whatever the
token contains. Reading is strict: any deviation raises ValueError naming the file, the line and the problem.
"""

from __future__ import annotations

import json
import unicodedata

MAGIC = "transformers-from-scratch bpe v1"
HIDDEN = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def render(token: bytes) -> str:
    """Printable form of a token: bytes that are not UTF-8 as \\xNN; control characters and line separators
    (which would break the one-token-a-line listing) as \\uXXXX."""
    text = token.decode("utf-8", errors="backslashreplace")
    if text.isprintable():  # the common case; isprintable() is False for every HIDDEN category
        return text
    return "".join(f"\\u{ord(c):04x}" if unicodedata.category(c) in HIDDEN else c for c in text)


def save(tok, prefix: str) -> str:
    """Write `prefix.model` and `prefix.vocab`; return the path of the .model file."""
    model_path = f"{prefix}.model"
    identity = tok.byte_ids == list(range(256))
    lines = [
        MAGIC,
        f"pattern {json.dumps(tok.pattern)}",
        "bytes identity" if identity else "bytes " + " ".join(map(str, tok.byte_ids)),
        f"special_tokens {len(tok.special_tokens)}",
        *(f"{json.dumps(text)} {i}" for text, i in tok.special_tokens.items()),
        f"merges {len(tok.merges)}",
        *(f"{a} {b} {new}" for (a, b), new in tok.merges.items()),
    ]
    with open(model_path, "w", encoding="ascii", newline="\n") as f:
        f.write("\n".join(lines) + "\n")

    origin = {new: pair for pair, new in tok.merges.items()}
    special_ids = set(tok.special_tokens.values())
    with open(f"{prefix}.vocab", "w", encoding="utf-8", newline="\n") as f:
        f.write(f"# {model_path}: {len(tok.vocab)} tokens, {len(tok.merges)} merges, {len(special_ids)} special\n")
        f.write("# id [token]  and for merged tokens  <- [left][right]\n")
        for i in sorted(tok.vocab):
            line = f"{i} [{render(tok.vocab[i])}]"
            if i in special_ids:
                line += "  special"
            elif i in origin:
                a, b = origin[i]
                line += f"  <- [{render(tok.vocab[a])}][{render(tok.vocab[b])}]"
            f.write(line + "\n")
    return model_path


def load_into(tok, path: str):
    """Give `tok` the state saved in the .model file `path`; on a bad file, raise and leave `tok` as it was."""
    pattern, byte_ids, merges, specials = read(path)
    old = (tok.pattern, tok.byte_ids, tok.merges, tok.special_tokens)
    try:
        tok._set_pattern(pattern, path)
        tok.byte_ids, tok.merges, tok.special_tokens = byte_ids, merges, specials
        tok._rebuild()
    except ValueError as e:
        tok._set_pattern(old[0], path)
        tok.byte_ids, tok.merges, tok.special_tokens = old[1:]
        tok._rebuild()
        raise ValueError(f"{path}: {e}" if str(path) not in str(e) else str(e)) from None
    return tok


def read(path: str):
    """Parse a .model file into (pattern, byte_ids, merges, special_tokens)."""
    try:
        with open(path, encoding="ascii", newline="\n") as f:
            lines = f.read().split("\n")
    except FileNotFoundError:
        raise ValueError(f"{path}: no such model file") from None
    except (UnicodeDecodeError, IsADirectoryError, PermissionError) as e:
        raise ValueError(f"{path}: not a tokenizer model file ({e})") from None
    if lines and lines[-1] == "":
        lines.pop()
    pos = 0

    def fail(problem: str):
        raise ValueError(f"{path}: line {pos + 1}: {problem}")

    def take(keyword: str) -> str:
        nonlocal pos
        if pos >= len(lines):
            fail(f"file ends where '{keyword}' was expected")
        line = lines[pos]
        if not line.startswith(keyword + " "):
            fail(f"expected '{keyword} ...', found {line[:60]!r}")
        pos += 1
        return line[len(keyword) + 1 :]

    def ints(text: str, count: int) -> list[int]:
        parts = text.split(" ")
        if len(parts) != count or not all(p.isdigit() and p.isascii() for p in parts):
            fail(f"expected {count} non-negative integers, found {text[:60]!r}")
        return [int(p) for p in parts]

    if not lines or lines[0] != MAGIC:
        found = lines[0][:60] if lines else "an empty file"
        raise ValueError(f"{path}: not a tokenizer model file: first line should be {MAGIC!r}, found {found!r}")
    pos = 1
    try:
        pattern = json.loads(take("pattern"))
    except json.JSONDecodeError as e:
        fail(f"pattern is not a JSON string: {e}")
    if pattern is not None and not isinstance(pattern, str):
        fail("pattern must be a JSON string or null")
    byte_text = take("bytes")
    byte_ids = list(range(256)) if byte_text == "identity" else ints(byte_text, 256)

    specials: dict[str, int] = {}
    for _ in range(ints(take("special_tokens"), 1)[0]):
        if pos >= len(lines):
            fail("file ends inside the special tokens")
        text, _, number = lines[pos].rpartition(" ")
        try:
            name = json.loads(text)
        except json.JSONDecodeError:
            name = None
        if not isinstance(name, str):
            fail(f"expected a JSON string and an id, found {lines[pos][:60]!r}")
        specials[name] = ints(number, 1)[0]
        pos += 1

    merges: dict[tuple[int, int], int] = {}
    for _ in range(ints(take("merges"), 1)[0]):
        if pos >= len(lines):
            fail("file ends inside the merges")
        a, b, new = ints(lines[pos], 3)
        if (a, b) in merges:
            fail(f"merge ({a}, {b}) appears twice")
        merges[(a, b)] = new
        pos += 1
    if pos != len(lines):
        fail("unexpected text after the last merge")
    return pattern, byte_ids, merges, specials
