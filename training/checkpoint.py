"""What a run leaves in its out_dir: the best model as a Hugging Face-style folder, and the state for --resume.

out_dir/
  config.json, model.safetensors      the best model so far (by val loss, or accuracy for tasks):
                                      `GPT2.from_pretrained(out_dir)` (or the preset's model class) opens it
  tokenizer.json | tokenizer.model    the text presets' tokenizer (characters, or the project's BPE)
  training_state.safetensors          weights *at the last save* and the optimizer's moment arrays
  training_state.json                 iteration, RNG states, options, best metric, optimizer scalars
  metrics.jsonl, loss.png             training/metrics.py

Every file is written to a temporary name in the same folder and moved into place with os.replace, which is atomic,
so an interrupted save leaves the previous file whole. The two training_state files carry the same random
checkpoint id; a pair that disagrees (a save interrupted between them) is reported, never silently mixed.
No pickle: arrays go to safetensors, everything else to JSON.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import numpy as np

from models.hf import CheckpointError
from tinygrad_lite.serialization import load_safetensors, save_safetensors
from tokenizers import RegexTokenizer

from . import data as D
from .options import OptionError

STATE_JSON = "training_state.json"
STATE_ARRAYS = "training_state.safetensors"
FORMAT = 1

# Options that fix the model's shape or the data: a checkpoint trained with other values cannot be resumed. The
# rest (learning rate, iterations, --fused, --ranks, --zero, ...) may change between a run and its resumption.
ARCHITECTURE = ("preset", "n_layer", "n_head", "n_kv_head", "n_embd", "block_size", "digits", "vocab_size", "task",
                "n_experts", "top_k", "data", "bias", "activation")


def check_out_dir(out_dir: str) -> Path:
    p = Path(out_dir)
    if p.exists() and not p.is_dir():
        raise OptionError(f"--out_dir {out_dir} is a file, not a directory")
    return p


def write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(obj, indent=1), encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def set_rng_state(gen: np.random.Generator, state: dict) -> None:
    """Put a saved bit-generator state back into `gen` in place (the modules that share it see it at once)."""
    try:
        gen.bit_generator.state = state
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointError(f"--resume: unusable RNG state in the checkpoint ({e})") from None


# ----------------------------------------------------------------------------------------------- training state


def save_training_state(out_dir: Path, model, optimizer_state: dict, meta: dict) -> None:
    """Weights, the optimizer's state_dict() and `meta` (iteration, rngs, options, ...) as one consistent pair of
    files. The optimizer state is that of an unsharded AdamW, also when ZeRO gathered it from several ranks, so a
    run resumes on any number of ranks."""
    ckpt_id = secrets.token_hex(8)
    arrays = {f"model.{name}": p.data for name, p in model.named_parameters()}
    opt = optimizer_state
    scalars = {}
    for idx, entry in opt["state"].items():
        for key, value in entry.items():
            if isinstance(value, np.ndarray):
                arrays[f"optim.{idx}.{key}"] = value
            else:
                scalars.setdefault(str(idx), {})[key] = value
    save_safetensors(out_dir / STATE_ARRAYS, arrays, metadata={"checkpoint_id": ckpt_id})
    doc = dict(meta, format=FORMAT, checkpoint_id=ckpt_id,
               optimizer={"param_groups": opt["param_groups"], "scalars": scalars})
    write_json_atomic(out_dir / STATE_JSON, doc)


def load_training_state(out_dir: Path) -> tuple[dict, dict]:
    """(meta, arrays) of a saved training state, checked for consistency; CheckpointError naming the problem."""
    jpath, apath = out_dir / STATE_JSON, out_dir / STATE_ARRAYS
    if not jpath.is_file() or not apath.is_file():
        raise CheckpointError(f"--resume: no training state in {out_dir} (expected {STATE_JSON} and {STATE_ARRAYS})")
    try:
        meta = json.loads(jpath.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"--resume: {jpath} is corrupt ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"--resume: {jpath} is not a training state of format {FORMAT}")
    try:
        arrays, file_meta = load_safetensors(apath, return_metadata=True)
    except ValueError as e:
        raise CheckpointError(f"--resume: {e}") from None
    if (file_meta or {}).get("checkpoint_id") != meta.get("checkpoint_id"):
        raise CheckpointError(
            f"--resume: {jpath.name} and {apath.name} in {out_dir} come from different saves "
            "(a save was interrupted); remove them or start without --resume"
        )
    return meta, arrays


def check_compatible(meta: dict, opts) -> None:
    saved = meta.get("options", {})
    diff = [f"{k}={saved.get(k)!r} (now {getattr(opts, k)!r})" for k in ARCHITECTURE
            if k in saved and saved[k] != getattr(opts, k)]
    if diff:
        raise CheckpointError("--resume: the checkpoint was trained with other settings: " + ", ".join(diff))


def restore(model, optimizer, meta: dict, arrays: dict) -> None:
    """Put the saved weights and optimizer state back in place (shapes checked by load_state_dict)."""
    weights = {k[len("model."):]: v for k, v in arrays.items() if k.startswith("model.")}
    try:
        model.load_state_dict(weights)
    except ValueError as e:
        raise CheckpointError(f"--resume: checkpoint does not fit this model: {e}") from None
    state: dict = {}
    for key, value in arrays.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    for idx, entry in meta["optimizer"]["scalars"].items():
        state.setdefault(int(idx), {}).update(entry)
    try:
        optimizer.load_state_dict({"state": state, "param_groups": meta["optimizer"]["param_groups"]})
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"--resume: optimizer state does not fit this model: {e}") from None


# ----------------------------------------------------------------------------------------------- tokenizer


def save_tokenizer(out_dir: Path, tok) -> None:
    if isinstance(tok, D.CharTokenizer):
        write_json_atomic(out_dir / "tokenizer.json", {"type": "char", "chars": tok.chars})
    else:
        tok.save(str(out_dir / "tokenizer"))  # tokenizer.model + tokenizer.vocab


def load_tokenizer(out_dir: Path):
    """The tokenizer saved beside a text model: characters (tokenizer.json) or BPE (tokenizer.model); else None."""
    path = out_dir / "tokenizer.json"
    if path.is_file():
        try:
            return D.CharTokenizer(json.loads(path.read_text(encoding="utf-8"))["chars"])
        except (UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"{path}: not a character tokenizer written by train.py ({e})") from None
    if (out_dir / "tokenizer.model").is_file():
        tok = RegexTokenizer()
        tok.load(str(out_dir / "tokenizer.model"))
        return tok
    return None
