"""Command line: train a tokenizer on a text file, encode stdin to ids, decode ids back to text.

    python -m tokenizers train --vocab-size 512 --pattern gpt4 input.txt -o shakespeare
    echo "Hello world" | python -m tokenizers encode --model shakespeare.model
    echo "72 101 108" | python -m tokenizers decode --model shakespeare.model
    echo "Hello world" | python -m tokenizers encode --gpt2 encoder.json

A user's mistake (a missing or empty file, a bad model, an id that does not exist) is reported on one line of
stderr with exit status 2; tracebacks are for bugs.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time

from .. import BasicTokenizer, DisallowedSpecialTokenError, RegexTokenizer, load
from ..regex_tokenizer import PATTERNS


class UserError(Exception):
    """A problem with the user's input, reported as one line."""


def _read_text_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, not a text file") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None
    if not text:
        raise UserError(f"{path}: the file is empty, there is nothing to train on")
    return text


def _read_stdin_text() -> str:
    try:
        return sys.stdin.buffer.read().decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"standard input is not UTF-8 text ({e.reason} at byte {e.start})") from None


def _tokenizer(args):
    try:
        if args.gpt2:
            return RegexTokenizer.from_gpt2(args.gpt2)
        return load(args.model)
    except ValueError as e:
        raise UserError(str(e)) from None


def cmd_train(args) -> None:
    folder = os.path.dirname(args.output) or "."
    if not os.path.isdir(folder):
        raise UserError(f"cannot write {args.output}.model: the folder {folder} does not exist")
    text = _read_text_file(args.input)
    tok = BasicTokenizer() if args.pattern == "none" else RegexTokenizer(PATTERNS[args.pattern])
    num_merges = args.vocab_size - 256
    start = time.perf_counter()

    def progress(index, pair, new_id, count):
        done = index + 1
        if done == num_merges or done % 16 == 0:
            elapsed = time.perf_counter() - start
            print(f"\rtraining: {done}/{num_merges} merges, {elapsed:.1f} s", end="", file=sys.stderr, flush=True)

    try:
        tok.train(text, args.vocab_size, on_merge=progress)
    except ValueError as e:
        raise UserError(str(e)) from None
    print(file=sys.stderr)
    try:
        path = tok.save(args.output)
    except OSError as e:
        raise UserError(f"cannot write {args.output}.model: {e.strerror}") from None
    elapsed = time.perf_counter() - start
    print(
        f"trained {tok.vocab_size} tokens on {len(text):,} characters in {elapsed:.2f} s; "
        f"wrote {path} and {args.output}.vocab",
        file=sys.stderr,
    )


def cmd_encode(args) -> None:
    tok = _tokenizer(args)
    text = _read_stdin_text()
    try:
        ids = tok.encode(text, allowed_special=args.allowed_special)
    except DisallowedSpecialTokenError:
        found = [t for t in tok.special_tokens if t in text]
        raise UserError(
            f"the text contains the special token {found[0]!r}: pass --allowed-special all to encode it as its id, "
            "or --allowed-special none to encode it as ordinary text"
        ) from None
    except ValueError as e:
        raise UserError(str(e)) from None
    sys.stdout.write(" ".join(map(str, ids)) + "\n")


def cmd_decode(args) -> None:
    tok = _tokenizer(args)
    ids = []
    # Accept "1 2 3", "1,2,3" and "[1, 2, 3]": whatever a user pastes from Python or from `encode`.
    for word in re.findall(r"[^\s,\[\]]+", _read_stdin_text()):
        if not word.isdigit() or not word.isascii():
            raise UserError(f"standard input should hold token ids (integers), found {word[:40]!r}")
        ids.append(int(word))
    try:
        text = tok.decode(ids)
    except ValueError as e:
        raise UserError(str(e)) from None
    sys.stdout.buffer.write(text.encode("utf-8"))
    sys.stdout.flush()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tokenizers", description="Byte-level BPE tokenizers.")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a tokenizer on a UTF-8 text file")
    train.add_argument("input", help="the training text (UTF-8)")
    train.add_argument("-o", "--output", required=True, help="writes OUTPUT.model and OUTPUT.vocab")
    train.add_argument("--vocab-size", type=int, default=512, help="256 byte tokens + merges (default 512)")
    train.add_argument(
        "--pattern", choices=[*PATTERNS, "none"], default="gpt4", help="split pattern; none = BasicTokenizer"
    )
    train.set_defaults(run=cmd_train)

    for name, run, what in (("encode", cmd_encode, "text on stdin -> ids"), ("decode", cmd_decode, "ids -> text")):
        p = sub.add_parser(name, help=what)
        source = p.add_mutually_exclusive_group(required=True)
        source.add_argument("--model", help="a .model file written by train")
        source.add_argument("--gpt2", metavar="ENCODER_JSON", help="GPT-2's tokenizer from OpenAI's encoder.json")
        if name == "encode":
            p.add_argument(
                "--allowed-special",
                choices=["all", "none", "none_raise"],
                default="none_raise",
                help="special tokens in the text: encode them (all), treat as text (none), or refuse (default)",
            )
        p.set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "train" and args.vocab_size < 256:
        parser.error(f"--vocab-size must be at least 256 (the byte tokens), got {args.vocab_size}")
    try:
        args.run(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    return 0
