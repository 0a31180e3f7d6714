"""Generation speed: tokens per second of a GPT-2 with and without the KV cache, side by side with transformers.

    python benchmarks/generate.py [--repeat 5] [--uncached-repeat 2] [--threads N] [--quick]

The model: GPT-2 with n_layer 6, n_head 6, n_embd 384, vocab 50257, n_positions 1024 (30M parameters, random GPT-2
initialisation, seed 0), greedy decoding of 200 new tokens after a 200-token prompt of random ids, batch 1.

    ours cached     samplers.generate.generate(model, prompt, 200, temperature=0, use_cache=True)
    ours uncached   the same with use_cache=False (every step re-runs the whole context)
    transformers    GPT2LMHeadModel.from_pretrained(<our save_pretrained folder>).generate(do_sample=False,
                    max_new_tokens=200, use_cache=True), in a child process (transformers imports Hugging Face's
                    `tokenizers`, which the project's own package shadows), torch threads = ours

The three alternate (cached, transformers, uncached, cached, transformers, ...) after a warm-up, with a short idle
pause before each call; the uncached run is much slower, so it takes part in the first --uncached-repeat rounds only.
Each figure is new tokens / wall seconds of the whole call (prompt prefill included); medians. The generated ids are
compared: cached and uncached must be identical; transformers' may part from ours after a near-tie of two logits
(float32 sums in a different order), so the number of identical leading tokens is reported.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common  # before NumPy: applies --threads to the environment while NumPy's BLAS is not loaded yet
import numpy as np

HF_CHILD = r"""
import json, sys, time
import numpy as np

folder, prompt_path, out_path, threads, new_tokens = sys.argv[1:6]
try:
    import torch
    import transformers
    from transformers import GPT2LMHeadModel
except ImportError as error:
    print(json.dumps({"error": f"transformers is not importable: {error}"}), flush=True)
    sys.exit(3)
if int(threads) > 0:
    torch.set_num_threads(int(threads))
try:
    transformers.utils.logging.disable_progress_bar()
except AttributeError:
    pass
model = GPT2LMHeadModel.from_pretrained(folder).eval()
prompt = torch.from_numpy(np.load(prompt_path))
mask = torch.ones_like(prompt)


def run(n):
    return model.generate(prompt, attention_mask=mask, do_sample=False, max_new_tokens=n, use_cache=True)


run(8)  # warm-up
print(json.dumps({"ready": True, "transformers": transformers.__version__, "torch": torch.__version__,
                  "threads": torch.get_num_threads(), "dtype": str(model.dtype)}), flush=True)
for line in sys.stdin:
    if line.strip() != "run":
        break
    t0 = time.perf_counter()
    out = run(int(new_tokens))
    seconds = time.perf_counter() - t0
    np.save(out_path, out.numpy())
    print(json.dumps({"seconds": seconds}), flush=True)
"""


class Transformers:
    """transformers' generate in a long-lived isolated child: load once, then one timed generate per request."""

    def __init__(self, folder: Path, prompt: np.ndarray, new_tokens: int, threads: int):
        self.work = Path(tempfile.mkdtemp(prefix="bench-gen-hf-"))
        np.save(self.work / "prompt.npy", prompt)
        self.out = self.work / "out.npy"
        script = self.work / "child.py"
        script.write_text(HF_CHILD)
        # python -I, cwd outside the repository: see _common.run_isolated.
        self.proc = subprocess.Popen(
            [sys.executable, "-I", str(script), str(folder), str(self.work / "prompt.npy"), str(self.out),
             str(threads), str(new_tokens)],
            cwd=tempfile.gettempdir(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.info = self._reply()

    def _reply(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"transformers child exited with status {self.proc.wait()}")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply

    def __call__(self) -> float:
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        return self._reply()["seconds"]

    def ids(self) -> np.ndarray:
        return np.load(self.out)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
        shutil.rmtree(self.work, ignore_errors=True)


def leading_equal(a: np.ndarray, b: np.ndarray) -> int:
    n = min(len(a), len(b))
    diff = np.nonzero(a[:n] != b[:n])[0]
    return int(diff[0]) if len(diff) else n


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.split("\n")[1:]))
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds of cached and transformers (default 5)")
    parser.add_argument("--uncached-repeat", type=int, default=2, help="rounds that also time uncached (default 2)")
    parser.add_argument("--new-tokens", type=int, default=200)
    parser.add_argument("--prompt-len", type=int, default=200)
    parser.add_argument("--threads", type=int, default=0,
                        help="BLAS/torch threads for every side (default: the libraries' defaults)")
    parser.add_argument("--pause", type=float, default=0.2, help="idle seconds before each timed call")
    parser.add_argument("--no-transformers", action="store_true", help="time ours only")
    parser.add_argument("--quick", action="store_true", help="smoke test: 20 new tokens, 2 rounds, 1 uncached")
    args = parser.parse_args(argv)
    if args.quick:
        args.new_tokens, args.repeat, args.uncached_repeat = 20, 2, 1

    from models.gpt2 import GPT2, GPT2Config
    from samplers.generate import generate

    try:
        import torch  # only to report and set its threads in this process; transformers runs in the child
    except ImportError:
        torch = None
    _common.limit_threads(args.threads, torch)
    config = GPT2Config(vocab_size=50257, n_positions=1024, n_embd=384, n_layer=6, n_head=6, resid_pdrop=0.0,
                        embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=None, eos_token_id=None)
    model = GPT2(config, rng=np.random.default_rng(0))
    model.eval()
    prompt = np.random.default_rng(1).integers(0, config.vocab_size, (1, args.prompt_len), dtype=np.int64)
    n = args.new_tokens
    print(f"numpy {np.__version__}; {_common.load_average()}")
    print(_common.thread_report(torch))
    print(f"GPT-2 n_layer 6, n_head 6, n_embd 384, vocab 50257: {model.num_parameters():,} parameters; "
          f"prompt {args.prompt_len} tokens, {n} new tokens, greedy, batch 1")

    outputs = {}

    def ours(use_cache):
        def run() -> float:
            t0 = time.perf_counter()
            outputs[use_cache] = generate(model, prompt, n, temperature=0, use_cache=use_cache)
            return time.perf_counter() - t0
        return run

    sides = {"ours cached": ours(True), "ours uncached": ours(False)}
    folder = Path(tempfile.mkdtemp(prefix="bench-gen-model-"))
    hf = None
    if not args.no_transformers:
        model.save_pretrained(folder)
        threads = args.threads or (torch.get_num_threads() if torch is not None else 0)
        try:
            hf = Transformers(folder, prompt, n, threads)
            sides["transformers"] = hf
            print(f"transformers {hf.info['transformers']}, torch {hf.info['torch']} ({hf.info['threads']} "
                  f"threads, {hf.info['dtype']}) in an isolated child process")
        except RuntimeError as error:
            print(f"transformers: not timed ({error})")
    try:
        generate(model, prompt, 8, temperature=0, use_cache=True)  # warm-up (the child warmed up at load)
        generate(model, prompt, 2, temperature=0, use_cache=False)
        order = ["ours cached", "transformers", "ours uncached"]
        times = {k: [] for k in sides}
        for r in range(args.repeat):
            for name in order:
                if name not in sides or (name == "ours uncached" and r >= args.uncached_repeat):
                    continue
                time.sleep(args.pause)
                times[name].append(sides[name]())
            print(f"  round {r + 1}: " + ", ".join(f"{k} {n / v[-1]:.1f} tok/s" for k, v in times.items() if
                                                   len(v) == r + 1), flush=True)
        hf_ids = hf.ids()[0] if hf is not None else None
    finally:
        if hf is not None:
            hf.close()
        shutil.rmtree(folder, ignore_errors=True)

    tps = {k: n / _common.median(v) for k, v in times.items() if v}
    print(f"\n{'':16s} {'tokens/s':>9s} {'s/call':>8s} {'calls':>6s}")
    for k, v in times.items():
        if v:
            print(f"{k:16s} {tps[k]:9.1f} {_common.median(v):8.2f} {len(v):6d}")
    ratio = tps["ours cached"] / tps["ours uncached"]
    print(f"\ncached / uncached: {ratio:.1f}x (target >= 5x: {'met' if ratio >= 5 else 'NOT met'})")
    cached, uncached = outputs[True][0], outputs[False][0]
    distinct = len(np.unique(cached[args.prompt_len:]))
    print(f"cached vs uncached ids: the first {leading_equal(cached, uncached) - args.prompt_len} of {n} new tokens "
          f"identical ({distinct} distinct ids among them: a random model repeats itself)")
    if "transformers" in tps:
        r = tps["ours cached"] / tps["transformers"]
        print(f"ours cached / transformers: {r:.2f}x tokens/s (target >= 1: {'met' if r >= 1 else 'NOT met'})")
        same = leading_equal(cached, hf_ids) - args.prompt_len
        print(f"ours vs transformers ids: the first {same} of {n} new tokens identical")
    print(_common.load_average())


if __name__ == "__main__":
    main()
