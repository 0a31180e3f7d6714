"""`python train.py sample`: generate from a saved checkpoint with the KV cache, streaming text as it comes."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .options import OptionError


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit status 2, like every other user mistake
        raise OptionError(message)


def parse(argv: list[str]) -> argparse.Namespace:
    p = _Parser(prog="train.py sample", description="Generate text from a checkpoint folder.")
    p.add_argument("--out_dir", required=True, help="folder written by train.py (config.json, model.safetensors)")
    p.add_argument("--prompt", default="\n", help="text to continue (default: a newline)")
    p.add_argument("--max_new_tokens", type=int, default=200)
    p.add_argument("--temperature", type=float, default=0.8, help="0 decodes greedily")
    p.add_argument("--top_k", type=int, default=None)
    p.add_argument("--top_p", type=float, default=None)
    p.add_argument("--seed", type=int, default=1337)
    return p.parse_args(argv)


def load_model(out_dir: Path):
    from models.hf import read_config

    cfg_path = out_dir / "config.json"
    if not cfg_path.is_file():
        raise OptionError(f"{out_dir} has no config.json: not a checkpoint folder written by train.py")
    kind = read_config(out_dir).get("model_type")
    if kind == "gpt2":
        from models.gpt2 import GPT2 as cls
    elif kind == "mixtral":
        from models.moe import MoEGPT as cls
    elif kind == "vaswani_transformer":
        from models.transformer import Transformer as cls
    else:
        raise OptionError(f"{cfg_path}: model_type {kind!r} cannot be sampled by train.py")
    try:
        return cls.from_pretrained(out_dir)
    except ValueError as e:
        raise OptionError(str(e)) from None


def sample_main(argv: list[str], out=sys.stdout) -> int:
    from samplers.generate import iter_generate

    from .checkpoint import load_tokenizer

    args = parse(argv)
    out_dir = Path(args.out_dir)
    if not out_dir.is_dir():
        raise OptionError(f"--out_dir {out_dir} is not a directory")
    if args.max_new_tokens < 0 or args.temperature < 0:
        raise OptionError("--max_new_tokens and --temperature must be >= 0")
    model = load_model(out_dir)
    tok = load_tokenizer(out_dir)
    state = out_dir / "training_state.json"
    options = json.loads(state.read_text()).get("options", {}) if state.is_file() else {}
    is_addition = options.get("preset") == "addition" or (options.get("preset") == "moe"
                                                           and options.get("task") == "addition")
    rng = np.random.default_rng(args.seed)
    kwargs = dict(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, rng=rng)

    if options.get("preset") == "reverse":
        return _reverse(model, args.prompt, out)
    if tok is None and is_addition:
        return _addition(model, options["digits"], args.prompt, out)
    if tok is None:
        raise OptionError(f"{out_dir} has no tokenizer (tokenizer.json or tokenizer.model)")
    try:
        ids = tok.encode_ordinary(args.prompt)
    except ValueError as e:  # a character the model's vocabulary lacks
        raise OptionError(f"--prompt: {e}") from None
    if not ids:
        raise OptionError("--prompt encodes to no tokens")
    out.write(args.prompt)
    generated: list[int] = []
    shown = ""
    try:
        for nxt in iter_generate(model, np.array([ids]), args.max_new_tokens, **kwargs):
            generated.append(int(nxt[0]))
            text = tok.decode(generated)
            if not text.endswith("\ufffd"):  # wait for the rest of a multi-byte character
                out.write(text[len(shown):])
                out.flush()
                shown = text
    except ValueError as e:
        raise OptionError(str(e)) from None
    out.write(tok.decode(generated)[len(shown):] + "\n")
    return 0


def _addition(model, d: int, prompt: str, out) -> int:
    """Answer 'a+b' with a model trained by --preset addition (digits reversed on output, as trained)."""
    parts = prompt.replace(" ", "").split("+")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise OptionError("--prompt for an addition model looks like 12+34")
    if any(len(p) > d for p in parts):
        raise OptionError(f"this model adds numbers of at most {d} digits")
    from .presets import greedy_digits

    prompt_digits = np.array([[int(c) for p in parts for c in p.zfill(d)]])
    answer = int("".join(map(str, greedy_digits(model, prompt_digits, d + 1)[0, ::-1])))
    out.write(f"{int(parts[0])} + {int(parts[1])} = {answer}\n")
    return 0


def _reverse(model, prompt: str, out) -> int:
    """Reverse a digit string with a model trained by --preset reverse (greedy decoding)."""
    from .data import ReverseTask

    if not prompt.strip().isdigit():
        raise OptionError("--prompt for a reverse model is a string of digits, e.g. 12345678")
    src = np.array([[int(c) for c in prompt.strip()]])
    got = model.greedy_decode(src, src.shape[1] + 1, ReverseTask.BOS, ReverseTask.EOS)[0]
    out.write("".join(str(t) for t in got if t < 10) + "\n")
    return 0
