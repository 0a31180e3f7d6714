"""Draw every figure of the tutorials (docs/tutorials/*.md) into docs/figures/, or into --out DIR.

    python docs/figures.py                      # all figures, into docs/figures/
    python docs/figures.py --out /tmp/figures   # somewhere else (the tests do this)
    python docs/figures.py kinks positions_rope # only these (names without .png)

Needs matplotlib (the extra `plot`). The figures that show trained models train them here, on the CPU, with the
same settings as the pages (about a minute in all on a 2-core machine); every run is seeded, so the figures
come out the same each time. Nothing here is imported by the project.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the project's packages first: its `tokenizers` shadows Hugging Face's

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

DPI = 110
FIGURES: dict = {}


def figure(name):
    """Register a function that draws docs/figures/<name>.png into the figure it is given."""
    def register(fn):
        FIGURES[name] = fn
        return fn
    return register


def save(fig, out: Path, name: str) -> Path:
    path = out / f"{name}.png"
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------ trained models


_cache: dict = {}


def addition_run(max_iters: int):
    """The addition preset trained for max_iters by training/loop.py, as tutorial 7 does: (task, metrics rows)."""
    if max_iters in _cache:
        return _cache[max_iters]
    import json

    from training.loop import train
    from training.options import parse_args
    from training.presets import build_task

    out_dir = tempfile.mkdtemp()
    opts = parse_args(["--preset", "addition", "--max_iters", str(max_iters), "--lr_decay_iters", str(max_iters),
                       "--eval_interval", "25", "--log_interval", str(max_iters), "--out_dir", out_dir])
    task = build_task(opts)
    train(task, opts, log=lambda line: None)
    rows = [json.loads(line) for line in (Path(out_dir) / "metrics.jsonl").read_text().splitlines()]
    _cache[max_iters] = (task, rows, opts)
    return _cache[max_iters]


def moe_shares(aux_coef: float, steps: int = 400) -> np.ndarray:
    """(steps, layers, experts) shares of the routed tokens, for the MoEGPT of tutorial 5."""
    from models import MoEConfig, MoEGPT
    from training.data import AdditionTask

    data = AdditionTask(digits=2, seed=0)
    config = MoEConfig(vocab_size=10, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=6,
                       rope_theta=10000.0, num_local_experts=8, num_experts_per_tok=2,
                       router_aux_loss_coef=aux_coef, bos_token_id=None, eos_token_id=None)
    model = MoEGPT(config, rng=np.random.default_rng(0))
    optimizer = model.configure_optimizer(weight_decay=0.1, learning_rate=3e-3, betas=(0.9, 0.99))
    batches = np.random.default_rng(1)
    shares = []
    for _ in range(steps):
        x, y = data.get_batch("train", 32, batches)
        _, loss = model(x, y)
        counts = np.array(model.expert_counts, dtype=np.float64)  # (layers, experts)
        shares.append(counts / counts.sum(axis=1, keepdims=True))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return np.array(shares)


# ------------------------------------------------------------------------------------------ tutorial 2


@figure("finite_difference_error")
def finite_difference_error(out: Path) -> Path:
    exact = 1.0 - np.tanh(0.3) ** 2
    eps = np.logspace(-12, -0.5, 200)
    fig, ax = plt.subplots(figsize=(7, 4))
    for dtype, label in ((np.float32, "float32"), (np.float64, "float64")):
        errors = []
        for e in eps:
            x, h = dtype(0.3), dtype(e)
            d = (np.tanh(x + h) - np.tanh(x - h)) / (dtype(2.0) * h)
            errors.append(max(abs(float(d) - exact) / exact, 1e-17))
        ax.loglog(eps, errors, label=label)
    ax.axvline(1e-6, color="gray", ls="--", lw=1)
    ax.text(1.3e-6, 3e-16, "gradcheck's eps = 1e-6", color="gray", fontsize=9)
    ax.set_xlabel("eps (step of the central difference)")
    ax.set_ylabel("relative error of the derivative")
    ax.set_title("Central difference of tanh at x = 0.3: rounding (left) against truncation (right)")
    ax.set_ylim(1e-17, 10)
    ax.legend()
    ax.grid(alpha=0.3, which="both")
    return save(fig, out, "finite_difference_error")


@figure("kinks")
def kinks(out: Path) -> Path:
    from tinygrad_lite import Tensor

    cases = [("relu(x)", lambda t: t.relu(), [0.0], (-2, 2)),
             ("abs(x)", lambda t: t.abs(), [0.0], (-2, 2)),
             ("clip(x, -1, 1)", lambda t: t.clip(-1.0, 1.0), [-1.0, 1.0], (-2, 2))]
    fig, axes = plt.subplots(2, 3, figsize=(11, 5.5), sharex="col")
    for col, (name, fn, points, (lo, hi)) in enumerate(cases):
        xs = np.linspace(lo, hi, 401)
        t = Tensor(xs, requires_grad=True)
        fn(t).sum().backward()
        axes[0, col].plot(xs, fn(Tensor(xs)).data, color="C0")
        axes[0, col].set_title(name)
        grad_line = t.grad.copy()
        for p in points:  # draw the gradient as open intervals, with the value chosen at the kink as a dot
            grad_line[np.isclose(xs, p)] = np.nan
        axes[1, col].plot(xs, grad_line, color="C1")
        k = Tensor(np.array(points), requires_grad=True)
        fn(k).sum().backward()
        axes[1, col].plot(points, k.grad, "o", color="C3", label="gradient at the kink")
        axes[1, col].set_xlabel("x")
        axes[1, col].set_ylim(-1.3, 1.3)
        axes[0, col].grid(alpha=0.3)
        axes[1, col].grid(alpha=0.3)
    axes[0, 0].set_ylabel("value")
    axes[1, 0].set_ylabel("gradient (backward)")
    axes[1, 0].legend(loc="lower right", fontsize=9)
    fig.suptitle("At a kink the gradient is one choice: PyTorch's, shown as the red dot")
    fig.tight_layout()
    return save(fig, out, "kinks")


# ------------------------------------------------------------------------------------------ tutorial 3


def attention_maps(model, idx):
    """Each layer's attention weights (B, H, T, T), recomputed from the blocks' modules (as in tutorial 3)."""
    from layers import scaled_dot_product_attention
    from layers.attention_function import split_heads
    from tinygrad_lite import no_grad

    body, maps = model.transformer, []
    model.eval()
    with no_grad():
        x = body.wte(idx) + body.wpe(np.arange(idx.shape[1]))
        for block in body.h:
            qkv = block.attn.c_attn(block.ln_1(x))
            C = qkv.shape[-1] // 3
            q, k, v = (split_heads(qkv[:, :, i * C:(i + 1) * C], block.attn.n_heads) for i in range(3))
            _, w = scaled_dot_product_attention(q, k, v, is_causal=True, return_weights=True)
            maps.append(w.data)
            x = block(x)
    model.train()
    return maps


@figure("attention_addition")
def attention_addition(out: Path) -> Path:
    from training.data import AdditionTask

    task, rows, opts = addition_run(600)
    data = AdditionTask(opts.digits, seed=opts.seed)
    problems = data.encode(data.test_ids)[:, :-1]
    means = [m.mean(axis=0) for m in attention_maps(task.model, problems)]  # per layer: (H, T, T)
    names = ["a1", "a0", "b1", "b0", "s0", "s1"]
    predicts = ["a0", "b1", "b0", "s0", "s1", "s2"]
    n_layers, n_heads = len(means), means[0].shape[0]
    fig, axes = plt.subplots(n_layers, n_heads, figsize=(14, 3.6 * n_layers))
    for layer, mean in enumerate(means):
        for h in range(n_heads):
            ax = axes[layer, h]
            im = ax.imshow(mean[h], cmap="viridis", vmin=0, vmax=1)
            ax.set_xticks(range(6), names)
            ax.set_yticks(range(6), [f"{n} (predicts {p})" for n, p in zip(names, predicts)] if h == 0 else [])
            ax.set_title(f"layer {layer}, head {h}", fontsize=10)
            if layer == n_layers - 1:
                ax.set_xlabel("key (attended to)")
            for i in range(6):
                for j in range(i + 1):
                    ax.text(j, i, f"{mean[h, i, j]:.2f}", ha="center", va="center", fontsize=8,
                            color="black" if mean[h, i, j] > 0.6 else "white")
        axes[layer, 0].set_ylabel("query (position)")
    fig.colorbar(im, ax=axes, shrink=0.6, label="attention weight (above the diagonal: masked)")
    fig.suptitle(f"2-digit addition GPT, mean over {len(problems)} held-out problems "
                 f"(held-out accuracy {rows[-1]['accuracy']:.0%})", y=0.95)
    return save(fig, out, "attention_addition")


# ------------------------------------------------------------------------------------------ tutorial 4


@figure("positions_sinusoidal")
def positions_sinusoidal(out: Path) -> Path:
    from layers import sinusoidal_positions

    pe = sinusoidal_positions(128, 64).astype(np.float64)
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [1.3, 1]})
    im = a.imshow(pe, aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1)
    a.set_xlabel("feature (even: sin, odd: cos; slower clocks to the right)")
    a.set_ylabel("position p")
    a.set_title("sinusoidal_positions(128, 64)")
    fig.colorbar(im, ax=a, label="value")
    offsets = np.arange(-60, 61)
    for p in (0, 30, 60):
        valid = (p + offsets >= 0) & (p + offsets < 128)
        b.plot(offsets[valid], [pe[p] @ pe[p + k] for k in offsets[valid]], label=f"p = {p}", lw=2 if p == 0 else 1,
               ls="-" if p == 0 else "--")
    b.set_xlabel("offset k")
    b.set_ylabel("PE[p] . PE[p + k]")
    b.set_title("three starting positions p, one curve: it depends on k only")
    b.legend()
    b.grid(alpha=0.3)
    fig.tight_layout()
    return save(fig, out, "positions_sinusoidal")


@figure("positions_rope")
def positions_rope(out: Path) -> Path:
    from layers import RotaryEmbedding
    from tinygrad_lite import Tensor

    D = 64
    rope = RotaryEmbedding(D)
    rng = np.random.default_rng(0)
    q, k = rng.standard_normal((1, 1, 1, D)), rng.standard_normal((1, 1, 1, D))
    offsets = np.arange(0, 201)
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.2))
    for start, style in ((0, "-"), (500, "--"), (1500, ":")):
        qr = rope(Tensor(q), np.array([start + 200])).data
        keys = rope(Tensor(np.repeat(k, len(offsets), axis=2)), start + 200 - offsets).data  # keys before the query
        a.plot(offsets, (keys * qr).sum(-1).ravel(), style, lw=2 if start == 0 else 1.5,
               label=f"query at {start + 200}")
    a.set_xlabel("offset (query position - key position)")
    a.set_ylabel("score q . k after rotation")
    a.set_title("one q and k: the same curve at every absolute position")
    a.legend()
    a.grid(alpha=0.3)
    # Expected score of a random vector with itself, rotated apart by the offset: sum_i E|pair_i|^2 cos(m theta_i).
    m = np.arange(0, 2001)
    b.plot(m, np.cos(m[:, None] * rope.inv_freq[None, :]).sum(axis=1) * 2 / D)
    b.set_xlabel("offset")
    b.set_ylabel("expected score, relative to offset 0")
    b.set_title(f"expected score for random q = k (head size {D}): long-term decay")
    b.grid(alpha=0.3)
    fig.suptitle("RoPE: the score of a rotated query and key depends only on their offset")
    fig.tight_layout()
    return save(fig, out, "positions_rope")


# ------------------------------------------------------------------------------------------ tutorial 5


@figure("moe_expert_load")
def moe_expert_load(out: Path) -> Path:
    runs = {0.02: moe_shares(0.02), 0.0: moe_shares(0.0)}
    window = 10
    fig, axes = plt.subplots(2, 2, figsize=(12, 6.5), sharex=True, sharey=True)
    colors = plt.cm.tab10(np.arange(8))
    for row, (coef, shares) in enumerate(runs.items()):
        steps = np.arange(shares.shape[0] - window + 1) + window
        for layer in range(shares.shape[1]):
            kernel = np.ones(window) / window
            smooth = np.array([np.convolve(shares[:, layer, e], kernel, mode="valid") for e in range(8)])
            ax = axes[row, layer]
            ax.stackplot(steps, smooth, colors=colors, labels=[f"expert {e}" for e in range(8)])
            for level in np.arange(1, 8) / 8:
                ax.axhline(level, color="white", lw=0.5, alpha=0.6)
            label = "with the load-balancing loss (coef 0.02)" if coef else "without it (coef 0)"
            ax.set_title(f"layer {layer}, {label}", fontsize=10)
            ax.set_ylim(0, 1)
            if layer == 0:
                ax.set_ylabel("share of routed tokens")
            if row == 1:
                ax.set_xlabel("training step")
    axes[0, 1].legend(loc="center left", bbox_to_anchor=(1.02, 0.0), fontsize=9)
    fig.suptitle("MoEGPT on addition, 8 experts, top-2: each expert's share (10-step mean; thin lines: an even 1/8)")
    return save(fig, out, "moe_expert_load")


# ------------------------------------------------------------------------------------------ tutorial 6


def _draw_tokens(ax, fig, tokenizer, text: str, y: float, title: str) -> int:
    renderer = fig.canvas.get_renderer()
    ids = tokenizer.encode(text)
    x = 0.01
    palette = ["#cfe2f3", "#fce5cd", "#d9ead3", "#ead1dc"]  # neighbours always differ
    for n, i in enumerate(ids):
        raw = tokenizer.decode_bytes([i])
        try:
            piece = raw.decode("utf-8").replace(" ", "·")
        except UnicodeDecodeError:  # part of a character: show the byte itself
            piece = "".join(f"<{b:02x}>" for b in raw)
        t = ax.text(x, y, piece, family="monospace", fontsize=12, va="center", transform=ax.transAxes,
                    bbox=dict(boxstyle="square,pad=0.2", fc=palette[n % 4], ec="0.45", lw=0.6))
        box = t.get_window_extent(renderer).transformed(ax.transAxes.inverted())
        x = box.x1 + 0.006
    ax.text(0.01, y + 0.1, f"{title}: {len(ids)} tokens", fontsize=10, transform=ax.transAxes, color="0.3")
    return len(ids)


@figure("tokens")
def tokens(out: Path) -> Path:
    from tokenizers import GPT2_SPLIT_PATTERN, RegexTokenizer
    from training.data_files import find

    shakespeare = find("tinyshakespeare.txt")
    if shakespeare is not None:
        corpus, source = shakespeare.read_text(encoding="utf-8"), "tinyshakespeare"
    else:
        corpus = "\n".join(p.read_text(encoding="utf-8") for p in sorted((REPO / "docs").rglob("*.md")))
        source = "the project's docs"
    small = RegexTokenizer(GPT2_SPLIT_PATTERN)
    small.train(corpus, 512)
    encoder = find("gpt2/encoder.json")
    gpt2 = RegexTokenizer.from_gpt2(encoder) if encoder is not None else None
    lines = ["ROMEO: But, soft! what light through yonder window breaks?",
             "The tokenizer cut 1234567 and naïve into pieces."]
    rows = ([("GPT-2 (50,257 tokens)", gpt2)] if gpt2 is not None else []) + [(f"BPE, 512 tokens, {source}", small)]
    fig, ax = plt.subplots(figsize=(12, 0.4 + 0.8 * len(lines) * len(rows)))
    ax.axis("off")
    n_rows = len(lines) * len(rows)
    k = 0
    for line in lines:
        for title, tok in rows:
            _draw_tokens(ax, fig, tok, line, 1 - (k + 0.7) / n_rows, title)
            k += 1
    fig.suptitle("Token boundaries (each box one token, · a space, <c3> a byte that is part of a character)")
    return save(fig, out, "tokens")


# ------------------------------------------------------------------------------------------ tutorial 7


@figure("training_addition")
def training_addition(out: Path) -> Path:
    _, rows, opts = addition_run(600)
    its = [r["iter"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4))
    a.plot(its, [r["train_loss"] for r in rows], "o-", ms=3, label="train loss")
    a.plot(its, [r["val_loss"] for r in rows], "s--", ms=3, label="val loss (held-out problems)")
    a.axhline(np.log(10), color="gray", lw=1, ls=":")
    a.text(its[-1], np.log(10) * 0.93, "ln 10", color="gray", ha="right", va="top", fontsize=9)
    a.set_yscale("log")
    a.set_xlabel("iteration")
    a.set_ylabel("cross-entropy (log scale)")
    a.set_title("loss, mean over eval_iters batches")
    a.legend()
    a.grid(alpha=0.3, which="both")
    b.plot(its, [r["accuracy"] for r in rows], "o-", ms=3, color="C2")
    b.set_ylim(-0.02, 1.02)
    b.set_xlabel("iteration")
    b.set_ylabel("exact answers")
    b.set_title("held-out accuracy, greedy decoding, 1,000 problems")
    b.grid(alpha=0.3)
    fig.suptitle(f"python train.py --max_iters {opts.max_iters} --lr_decay_iters {opts.max_iters} "
                 f"--eval_interval 25 (the addition preset)")
    fig.tight_layout()
    return save(fig, out, "training_addition")


@figure("samplers")
def samplers_figure(out: Path) -> Path:
    from samplers import greedy, process_logits, softmax
    from tinygrad_lite import no_grad
    from training.data import AdditionTask

    task, _, opts = addition_run(300)  # the model tutorial 7 trains, picked by accuracy
    model = task.model
    data = AdditionTask(opts.digits, seed=opts.seed)
    problems = data.encode(data.test_ids)
    model.eval()
    with no_grad():
        logits = model(problems[:, :4], last_only=True)[0].data[:, -1, :]
    p = softmax(logits)
    row = int(np.argmax(-(p * np.log(np.maximum(p, 1e-30))).sum(axis=-1)))
    settings = [("greedy", None), ("temperature 1.0", dict(temperature=1.0)),
                ("temperature 0.5", dict(temperature=0.5)), ("temperature 2.0", dict(temperature=2.0)),
                ("top-k 2", dict(top_k=2)), ("top-p 0.9", dict(top_p=0.9)), ("min-p 0.2", dict(min_p=0.2))]
    fig, axes = plt.subplots(1, len(settings), figsize=(15, 3.2), sharey=True)
    right = problems[row, 4]
    for ax, (name, kwargs) in zip(axes, settings):
        probs = np.eye(10)[greedy(logits[row])] if kwargs is None else softmax(process_logits(logits[row], **kwargs))
        colors = ["C2" if d == right else "C0" for d in range(10)]
        ax.bar(range(10), probs, color=colors)
        ax.set_title(name, fontsize=10)
        ax.set_xticks(range(10))
        ax.set_xlabel("next digit")
        ax.grid(alpha=0.3, axis="y")
    axes[0].set_ylabel("probability of being drawn")
    fig.suptitle(f"The model's least certain held-out prediction: first answer digit of "
                 f"{data.format(problems[row, :4], problems[row, 4:]).split('   ')[0]} (right digit {right}, green)",
                 y=1.03)
    return save(fig, out, "samplers")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"figures to draw (default all): {', '.join(FIGURES)}")
    parser.add_argument("--out", default=str(REPO / "docs" / "figures"), help="output folder")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in FIGURES]
    if unknown:
        print(f"figures.py: error: unknown figure {unknown[0]!r}; choose from {', '.join(FIGURES)}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for name in args.names or FIGURES:
        t0 = time.perf_counter()
        path = FIGURES[name](out)
        print(f"{path} ({time.perf_counter() - t0:.1f} s)")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
