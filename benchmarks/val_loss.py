"""The loss of a trained character-level GPT over the whole val split: ours (a train.py out_dir) or nanoGPT's.

train.py and nanoGPT both report val loss as the mean over eval_iters random batches: with 20 batches of 12 x 64
that is 15,360 characters, and two draws of the same model differ by about 0.01. This script averages the
cross-entropy over every non-overlapping block_size window of the val split instead (the last 10% of the text:
1,742 windows of 64 characters for tinyshakespeare; training/evaluate.py), the same windows for both sides, so two
trained models compare without evaluation noise.

    python benchmarks/val_loss.py OUT_DIR                                 # train.py --preset shakespeare_char
    python benchmarks/val_loss.py --nanogpt NANOGPT_ROOT NANOGPT_OUT_DIR  # nanoGPT's ckpt.pt (needs torch)

Both sides use the vocabulary of shakespeare_char: the sorted characters of the whole text (--data, default
tinyshakespeare from the data home or ../shared/data: `python train.py download tinyshakespeare`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import _common  # noqa: F401  (puts the repository on sys.path)
import numpy as np
from _common import TEXT, TEXT_MISSING

# Run by nanoGPT's interpreter in its own folder (its model.py): argv = ckpt folder, windows .npz.
NANOGPT_EVAL = """
import json, sys
import numpy as np, torch
from model import GPT, GPTConfig
ckpt = torch.load(sys.argv[1] + "/ckpt.pt", map_location="cpu")
model = GPT(GPTConfig(**ckpt["model_args"]))
model.load_state_dict({k.removeprefix("_orig_mod."): v for k, v in ckpt["model"].items()})
model.eval()
w = np.load(sys.argv[2])
total = 0.0
with torch.no_grad():
    for i in range(0, len(w["x"]), 64):
        x, y = torch.from_numpy(w["x"][i:i + 64]), torch.from_numpy(w["y"][i:i + 64])
        total += float(model(x, y)[1]) * len(x)
print(json.dumps({"loss": total / len(w["x"]), "iter": int(ckpt["iter_num"])}))
"""


def char_ids(text_path: Path) -> np.ndarray:
    """The text as shakespeare_char's ids: each character's rank among the sorted characters of the whole text."""
    text = text_path.read_text(encoding="utf-8")
    stoi = {c: i for i, c in enumerate(sorted(set(text)))}
    return np.array([stoi[c] for c in text], np.int64)


def ours(out_dir: Path, text_path: Path) -> dict:
    from models.gpt2 import GPT2
    from training.evaluate import val_split_loss

    loss, windows = val_split_loss(GPT2.from_pretrained(out_dir), char_ids(text_path))
    return {"loss": loss, "windows": windows}


def nanogpt(root: Path, out_dir: Path, text_path: Path) -> dict:
    """nanoGPT's checkpoint, evaluated by its own model.py in a subprocess (torch is not imported here)."""
    meta = subprocess.run([sys.executable, "-c", "import json, sys, torch; c = torch.load(sys.argv[1], "
                           "map_location='cpu'); print(json.dumps(c['model_args']))", str(out_dir / "ckpt.pt")],
                          capture_output=True, text=True, cwd=root)
    if meta.returncode != 0:
        raise RuntimeError(f"cannot read {out_dir / 'ckpt.pt'}: {meta.stderr.strip().splitlines()[-1:]}")
    from training.evaluate import val_windows

    x, y = val_windows(char_ids(text_path), json.loads(meta.stdout.splitlines()[-1])["block_size"])
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "w.npz", x=x, y=y)
        run = subprocess.run([sys.executable, "-c", NANOGPT_EVAL, str(out_dir.resolve()), str(Path(tmp) / "w.npz")],
                             capture_output=True, text=True, cwd=root)
    if run.returncode != 0:
        raise RuntimeError(f"nanoGPT evaluation failed: {run.stderr.strip().splitlines()[-1:]}")
    return {**json.loads(run.stdout.splitlines()[-1]), "windows": len(x)}  # model.py prints a line first


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", type=Path, help="train.py's --out_dir, or nanoGPT's with --nanogpt")
    parser.add_argument("--nanogpt", type=Path, help="nanoGPT's checkout: out_dir holds its ckpt.pt")
    parser.add_argument("--data", type=Path, default=TEXT, help="the text trained on")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = parser.parse_args(argv)
    if args.data is None:
        sys.exit(f"error: val_loss.py {TEXT_MISSING}, or pass --data FILE")
    if not args.data.is_file():
        sys.exit(f"error: {args.data} not found (pass --data)")
    try:
        res = nanogpt(args.nanogpt, args.out_dir, args.data) if args.nanogpt else ours(args.out_dir, args.data)
    except (OSError, RuntimeError, ValueError) as e:
        sys.exit(f"error: {e}")
    if args.json:
        print(json.dumps(res))
    else:
        print(f"{args.out_dir}: val loss {res['loss']:.4f} over all {res['windows']:,} windows of the val split")


if __name__ == "__main__":
    main()
