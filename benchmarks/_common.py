"""Helpers shared by benchmarks/train_step.py and benchmarks/generate.py (not part of the library).

Thread control has to happen before NumPy is imported: OpenBLAS reads OPENBLAS_NUM_THREADS / OMP_NUM_THREADS once,
when its library loads, and torch's intra-op pool reads OMP_NUM_THREADS at start-up. So importing this module (which
imports neither) applies `--threads N` from the command line to the environment straight away; the scripts import it
first. threadpoolctl, when installed, is used as well (it also works after the import) and reports what OpenBLAS
really runs with.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _threads_from_argv(argv: list) -> int | None:
    for i, arg in enumerate(argv):
        if arg == "--threads" and i + 1 < len(argv) and argv[i + 1].isdigit():
            return int(argv[i + 1])
        if arg.startswith("--threads=") and arg.split("=", 1)[1].isdigit():
            return int(arg.split("=", 1)[1])
    return None


_REQUESTED = _threads_from_argv(sys.argv[1:])
if _REQUESTED is not None and _REQUESTED > 0 and "numpy" not in sys.modules:
    for _var in THREAD_VARS:
        os.environ[_var] = str(_REQUESTED)

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # run from a checkout without `pip install -e .` too

from training.data_files import find, how_to_get  # noqa: E402  (standard library only: no NumPy yet)

TEXT = find("tinyshakespeare.txt")  # from the data home or ../shared/data; None when neither has it
TEXT_MISSING = how_to_get("tinyshakespeare.txt")


def limit_threads(n: int | None, torch=None) -> None:
    """Apply n threads to both sides after import: torch.set_num_threads and threadpoolctl (if installed)."""
    if not n:
        return
    if torch is not None:
        torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return  # the environment variables set at import time already did it
    global _LIMITER
    _LIMITER = threadpool_limits(limits=n, user_api="blas")  # kept alive: the limit lasts while it exists


_LIMITER = None


def thread_report(torch=None) -> str:
    """What each side really runs with: OpenBLAS threads (threadpoolctl, else the environment) and torch threads."""
    parts = []
    try:
        from threadpoolctl import threadpool_info

        blas = [f"{i['internal_api']} {i['num_threads']}" for i in threadpool_info() if i["user_api"] == "blas"]
        parts.append("numpy BLAS: " + (", ".join(blas) or "unknown"))
    except ImportError:
        env = next((f"{v}={os.environ[v]}" for v in THREAD_VARS if os.environ.get(v)),
                   f"unset ({os.cpu_count()} cores)")
        parts.append(f"numpy BLAS: {env} (threadpoolctl not installed)")
    if torch is not None:
        parts.append(f"torch: {torch.get_num_threads()} intra-op")
    return "threads: " + ", ".join(parts)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def alternate(fns: dict, repeat: int, warmup: int = 3, pause: float = 0.25) -> dict:
    """Per-call milliseconds of each function, calls interleaved A B A B ... so machine noise hits all alike.

    The idle pause before each timed call lets the previous call's worker threads stop spinning: OpenBLAS's keep
    spinning for about 0.1 s of CPU after a call (measured here), and on a 2-core machine they would steal a core
    from the other side (torch's step measured 132 ms instead of 78 ms with a 0.02 s pause after our step).
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            time.sleep(pause)
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) * 1e3)
    return times


def median(xs) -> float:
    return statistics.median(xs) if xs else float("nan")


def peak_rss_mb(pid: int | str = "self") -> float:
    """Peak resident set size of this process (or of process `pid`) so far, in MB.

    Linux: VmHWM from /proc/self/status, the high-water mark of this process's own memory map. Not ru_maxrss: a
    child started by subprocess (vfork + exec) inherits the parent's peak RSS into its ru_maxrss at exec, so a
    benchmark child of a big parent would report the parent's figure. Elsewhere: ru_maxrss (KB on Linux, bytes on
    macOS).
    """
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024 if sys.platform == "darwin" else 1024)


def current_rss_mb() -> float:
    """Resident set size now (Linux /proc; falls back to the peak elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return peak_rss_mb()


def matmul_peak(torch=None, sizes=(1024, 2048), repeats: int = 5) -> dict:
    """Best observed float32 GFLOP/s of square matmuls (2 n^3 FLOPs each): np.matmul, and torch.mm for comparison."""
    import numpy as np

    rng = np.random.default_rng(0)
    out = {}
    for n in sizes:
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        sides = {"numpy": (np.matmul, a, b)}
        if torch is not None:
            sides["torch"] = (torch.mm, torch.from_numpy(a), torch.from_numpy(b))
        best = {k: float("inf") for k in sides}
        for fn, x, y in sides.values():
            fn(x, y)  # warm-up: thread pool start, page faults
        for _ in range(repeats):
            for k, (fn, x, y) in sides.items():
                time.sleep(0.01)
                t0 = time.perf_counter()
                fn(x, y)
                best[k] = min(best[k], time.perf_counter() - t0)
        for k, t in best.items():
            out[(k, n)] = 2 * n**3 / t / 1e9
    return out


def run_isolated(script: str, args: list, **kwargs) -> subprocess.CompletedProcess:
    """Run Python code in a child that cannot see the repository: `python -I`, working directory outside the repo.

    transformers imports Hugging Face's `tokenizers`, which the project's own top-level `tokenizers` package shadows
    whenever the repository root is on sys.path. -I leaves out the script's directory, the working directory and
    PYTHON* variables; site-packages (and so a virtual environment inside the repository) stay importable.
    """
    work = Path(tempfile.mkdtemp(prefix="bench-child-"))
    path = work / "child.py"
    path.write_text(script)
    return subprocess.run([sys.executable, "-I", str(path), *map(str, args)], cwd=tempfile.gettempdir(),
                          text=True, **kwargs)


def char_stream(vocab_size: int, n: int = 200_000, seed: int = 0):
    """A token stream for training batches: tinyshakespeare's characters (65 distinct) when a copy is there
    and vocab_size matches, else uniform random ids. int64 NumPy array."""
    import numpy as np

    if TEXT is not None:
        text = TEXT.read_text(encoding="utf-8")
        chars = sorted(set(text))
        if len(chars) == vocab_size:
            lookup = {c: i for i, c in enumerate(chars)}
            return np.array([lookup[c] for c in text[:n]], dtype=np.int64), "tinyshakespeare characters"
    return np.random.default_rng(seed).integers(0, vocab_size, n, dtype=np.int64), "uniform random ids"


def batches(stream, batch_size: int, block_size: int, count: int, seed: int = 1) -> list:
    """`count` (x, y) pairs of random windows of the stream, y shifted by one (as nanoGPT's get_batch)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        starts = rng.integers(0, len(stream) - block_size - 1, batch_size)
        x = np.stack([stream[s : s + block_size] for s in starts])
        y = np.stack([stream[s + 1 : s + 1 + block_size] for s in starts])
        out.append((x, y))
    return out


def torch_gpt(torch, cfg: dict):
    """A minimal GPT-2 in torch eager, the reference of train_step.py: our parameter names, nn.Linear's (out, in)
    layout, GPT-2's initialisation. cfg: n_layer, n_head, n_embd, block_size, vocab_size.

    forward(idx, targets) -> (logits, mean cross-entropy). Pre-LN blocks, fused c_attn split into q, k, v, causal
    scaled_dot_product_attention, tanh-GELU MLP, final LayerNorm, lm_head tied to the token embedding.
    """
    nn, F = torch.nn, torch.nn.functional
    C, H, V = cfg["n_embd"], cfg["n_head"], cfg["vocab_size"]

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn = nn.Linear(C, 3 * C)
            self.c_proj = nn.Linear(C, C)

        def forward(self, x):
            B, T, _ = x.shape
            q, k, v = self.c_attn(x).split(C, dim=2)  # 3 x (B, T, C)
            q, k, v = (t.view(B, T, H, C // H).transpose(1, 2) for t in (q, k, v))  # (B, H, T, hs)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, hs)
            return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_fc = nn.Linear(C, 4 * C)
            self.c_proj = nn.Linear(4 * C, C)

        def forward(self, x):
            return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.attn = nn.LayerNorm(C), Attention()
            self.ln_2, self.mlp = nn.LayerNorm(C), MLP()

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class Body(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(V, C)
            self.wpe = nn.Embedding(cfg["block_size"], C)
            self.h = nn.ModuleList(Block() for _ in range(cfg["n_layer"]))
            self.ln_f = nn.LayerNorm(C)

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.transformer = Body()
            with torch.no_grad():
                for name, p in self.named_parameters():
                    if name.endswith("c_proj.weight"):
                        p.normal_(0.0, 0.02 / (2 * cfg["n_layer"]) ** 0.5)
                    elif name.endswith(".weight") and ".ln_" not in name:
                        p.normal_(0.0, 0.02)
                    elif ".ln_" not in name:
                        p.zero_()

        def forward(self, idx, targets):
            tr = self.transformer
            x = tr.wte(idx) + tr.wpe(torch.arange(idx.shape[1]))  # (B, T, C)
            for block in tr.h:
                x = block(x)
            logits = F.linear(tr.ln_f(x), tr.wte.weight)  # (B, T, V), tied
            return logits, F.cross_entropy(logits.view(-1, V), targets.view(-1))

    return GPT()
