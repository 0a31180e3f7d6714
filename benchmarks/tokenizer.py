"""Tokenizer speed, side by side with Hugging Face `tokenizers` and tiktoken when they are installed.

    python benchmarks/tokenizer.py [--data DIR] [--repeat 3] [--reference]

The data: tinyshakespeare and GPT-2's encoder.json from the data home or ../shared/data (`python train.py download`
fetches them), or DIR/tinyshakespeare.txt and DIR/gpt2_encoder.json.

1. Train a 512-token vocabulary (GPT-4 split pattern) on tinyshakespeare with the default trainer ("auto"), and
   with "python" and "numpy" by name; Hugging Face's byte-level BPE trainer does the same in a separate process
   (our `tokenizers` package shadows theirs in this one).
2. Encode the file with GPT-2's tokenizer from encoder.json: once right after loading, then a fresh tokenizer
   (every chunk new to the cache), again (chunks cached) and tiktoken's gpt2 encoding, built from the same
   encoder.json, single thread, taking turns round after round. The ids must be identical.

Each figure is the best of --repeat runs (the machines are shared and noisy); compare the ratios.
--reference also times the recount-every-merge trainer and the readable encoding path (`fast = False`), once each.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tokenizers import GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN, RegexTokenizer  # noqa: E402
from tokenizers.gpt2 import bytes_to_unicode  # noqa: E402
from training.data_files import find, how_to_get  # noqa: E402

HF_TRAIN = """
import json, sys, time
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
path, vocab_size, repeat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
best = float("inf")
for _ in range(repeat):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False, special_tokens=[])
    start = time.perf_counter()
    tok.train([path], trainer)
    best = min(best, time.perf_counter() - start)
print(json.dumps({"seconds": best, "vocab": tok.get_vocab_size()}))
"""


def best_of(repeat: int, fn, setup=None):
    best, result = float("inf"), None
    for _ in range(repeat):
        if setup is not None:
            setup()
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def hf_train(path: Path, vocab_size: int, repeat: int, threads: str | None):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if threads:
        env["RAYON_NUM_THREADS"] = threads
    result = subprocess.run(
        [sys.executable, "-c", HF_TRAIN, str(path), str(vocab_size), str(repeat)],
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),  # away from the repository, so `import tokenizers` is Hugging Face's
        env=env,
        timeout=600,
    )
    if result.returncode != 0:
        return None, result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "failed"
    return json.loads(result.stdout)["seconds"], None


def tiktoken_gpt2(encoder_path: Path):
    try:
        import tiktoken
    except ImportError:
        return None
    decoder = {c: b for b, c in bytes_to_unicode().items()}
    encoder = json.loads(encoder_path.read_text(encoding="utf-8"))
    ranks = {bytes(decoder[c] for c in t): i for t, i in encoder.items() if t != "<|endoftext|>"}
    return tiktoken.Encoding(
        name="gpt2", pat_str=GPT2_SPLIT_PATTERN, mergeable_ranks=ranks, special_tokens={"<|endoftext|>": 50256}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, help="a folder with tinyshakespeare.txt and gpt2_encoder.json")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--vocab-size", type=int, default=512)
    parser.add_argument("--reference", action="store_true", help="also the reference trainer, fast = False")
    args = parser.parse_args()

    if args.data:
        text_path, encoder_path = args.data / "tinyshakespeare.txt", args.data / "gpt2_encoder.json"
    else:
        text_path, encoder_path = find("tinyshakespeare.txt"), find("gpt2/encoder.json")
    if text_path is None:
        sys.exit(f"error: this benchmark {how_to_get('tinyshakespeare.txt')}, or pass --data DIR")
    if not text_path.exists():
        sys.exit(f"error: {text_path} not found (pass --data DIR)")
    text = text_path.read_text(encoding="utf-8")
    mb = len(text.encode("utf-8")) / 1e6
    print(f"{text_path.name}: {mb:.2f} MB, {len(text):,} characters; best of {args.repeat} runs\n")

    print(f"train {args.vocab_size} tokens")
    seconds, tok = best_of(args.repeat, lambda: _train(text, args.vocab_size, "auto"))
    print(f"  ours (default trainer, GPT-4 pattern)   {seconds:7.2f} s  {mb / seconds:6.2f} MB/s")
    for trainer in ("numpy", "python"):
        named, other = best_of(args.repeat, lambda trainer=trainer: _train(text, args.vocab_size, trainer))
        label = f"ours (trainer={trainer!r})"
        print(f"  {label:39s} {named:7.2f} s   same merges: {other.merges == tok.merges}")
    for label, threads in (("2 threads (default)", None), ("1 thread", "1")):
        hf, problem = hf_train(text_path, args.vocab_size, args.repeat, threads)
        if hf is None:
            print(f"  Hugging Face tokenizers: not run ({problem})")
            break
        print(f"  Hugging Face BpeTrainer, {label:19s} {hf:5.2f} s  {mb / hf:6.2f} MB/s   ours/HF = {seconds / hf:.2f}")
    if args.reference:
        ref_seconds, ref = best_of(1, lambda: _train(text, args.vocab_size, "reference"))
        print(
            f"  ours (reference trainer)                {ref_seconds:7.2f} s   same merges: {ref.merges == tok.merges}"
        )

    if encoder_path is None or not encoder_path.exists():
        missing = how_to_get("gpt2/encoder.json") if encoder_path is None else f"needs {encoder_path}"
        print(f"\nskipping GPT-2 encoding: it {missing}")
        return
    print("\nencode with GPT-2's tokenizer")
    load_seconds, gpt2 = best_of(1, lambda: RegexTokenizer.from_gpt2(encoder_path))
    print(f"  ours: load encoder.json, recover merges {load_seconds:7.2f} s")

    # The first text after loading also pays for building the batch encoder (and importing NumPy): one run.
    first_seconds, ids = best_of(1, lambda: gpt2.encode_ordinary(text))
    print(f"  ours, first text after loading          {first_seconds:7.3f} s  (1 run)")
    enc = tiktoken_gpt2(encoder_path)
    # The three are timed in turn, round after round, so that a busy spell on the machine hits them all alike.
    # reset() forgets every chunk seen so far: the cache of a freshly loaded tokenizer.
    cases = {
        "fresh": (gpt2._fast.cache.reset, lambda: gpt2.encode_ordinary(text)),
        "cached": (None, lambda: gpt2.encode_ordinary(text)),
        "split": (None, lambda: gpt2._split(text)),
    }
    if enc is not None:
        cases["tiktoken"] = (None, lambda: enc.encode_ordinary(text))
    best, out = interleaved(args.repeat, cases)
    print(f"  ours, fresh cache                       {best['fresh']:7.3f} s  {mb / best['fresh']:6.2f} MB/s")
    print(f"  ours, chunks cached                     {best['cached']:7.3f} s  {mb / best['cached']:6.2f} MB/s")
    print(f"  ours, the regex split alone             {best['split']:7.3f} s  {mb / best['split']:6.2f} MB/s")
    if enc is None:
        print("  tiktoken: not installed")
        print(f"  {len(ids):,} tokens")
        return
    tk_seconds = best["tiktoken"]
    print(f"  tiktoken (1 thread)                     {tk_seconds:7.3f} s  {mb / tk_seconds:6.2f} MB/s")
    print(
        f"  ratios: fresh/tiktoken = {best['fresh'] / tk_seconds:.2f}, "
        f"cached/tiktoken = {best['cached'] / tk_seconds:.2f} (split alone/tiktoken = {best['split'] / tk_seconds:.2f})"
    )
    same = ids == out["fresh"] == out["cached"] == out["tiktoken"]
    print(f"  ids identical to tiktoken: {'yes' if same else 'NO'} ({len(ids):,} tokens)")
    if args.reference:
        gpt2.fast = False  # the regex split and bpe.bpe on every chunk, no cache
        readable_seconds, readable = best_of(1, lambda: gpt2.encode_ordinary(text))
        gpt2.fast = True
        print(f"  ours, readable path (fast = False)      {readable_seconds:7.3f} s   same ids: {readable == ids}")


def interleaved(repeat: int, cases: dict):
    """Best time of each case over `repeat` rounds, each round running every case once, in turn."""
    best = dict.fromkeys(cases, float("inf"))
    out = {}
    for _ in range(repeat):
        for name, (setup, fn) in cases.items():
            seconds, out[name] = best_of(1, fn, setup)
            best[name] = min(best[name], seconds)
    return best, out


def _train(text: str, vocab_size: int, trainer: str) -> RegexTokenizer:
    tok = RegexTokenizer(GPT4_SPLIT_PATTERN)
    tok.train(text, vocab_size, trainer=trainer)
    return tok


if __name__ == "__main__":
    main()
