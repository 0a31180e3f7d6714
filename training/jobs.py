"""Jobs: what each preset trains, on what data, with what loss and what metric.

A job bundles a model with its data and tells the loop (training/loop.py) how to draw a batch, compute the loss,
measure the held-out metric, show examples and save the model. The loop knows nothing about tasks.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import data as D
from .checkpoint import CheckpointError
from .options import OptionError, TrainOptions

# Options that fix the model's shape or the data: a checkpoint trained with other values cannot be resumed.
ARCHITECTURE = ("preset", "n_layer", "n_head", "n_kv_head", "n_embd", "block_size", "digits", "vocab_size", "task",
                "n_experts", "top_k", "data", "bias", "activation")


def init_rng(opts: TrainOptions) -> np.random.Generator:
    """The generator of the model's initial weights: a stream of its own, (seed, 2). The loop draws the training
    batches from a generator seeded with the bare seed; seeded alike, the batch positions would replay the very bits
    that drew the weights. (Dropout masks use (seed, 1), evaluation batches (seed, iteration, split).)"""
    return np.random.default_rng([opts.seed, 2])


class Job:
    metric_name = "accuracy"
    model_kind = "gpt2"

    def __init__(self, opts: TrainOptions):
        self.opts = opts
        # One generator for all dropout masks, saved in the checkpoint, so a resumed run draws the same masks.
        self.dropout_rng = np.random.default_rng([opts.seed, 1])

    def _share_dropout_rng(self) -> None:
        for m in self.model.modules():
            if isinstance(getattr(m, "rng", None), np.random.Generator):
                m.rng = self.dropout_rng

    def make_optimizer(self):
        o = self.opts
        return self.model.configure_optimizer(o.weight_decay, o.learning_rate, (o.beta1, o.beta2))

    def batch(self, split: str, rng: np.random.Generator):
        return self.data.get_batch(split, self.opts.batch_size, rng)

    def loss(self, batch):
        x, y = batch
        return self.model(x, targets=y)[1]

    def metric(self):
        return None

    def progress_note(self) -> str:
        return ""

    def examples(self) -> list[str]:
        return []

    def save_model(self, out_dir: Path) -> None:
        self.model.save_pretrained(out_dir)

    def checkpoint_extra(self) -> dict:
        return {"model_kind": self.model_kind}

    def rng_states(self) -> dict:
        return {"dropout": self.dropout_rng.bit_generator.state}

    def restore_rngs(self, states: dict) -> None:
        if "dropout" in states:
            self.dropout_rng.bit_generator.state = states["dropout"]

    def check_compatible(self, meta: dict) -> None:
        saved = meta.get("options", {})
        diff = [f"{k}={saved.get(k)!r} (now {getattr(self.opts, k)!r})" for k in ARCHITECTURE
                if k in saved and saved[k] != getattr(self.opts, k)]
        if diff:
            raise CheckpointError("--resume: the checkpoint was trained with other settings: " + ", ".join(diff))


def _gpt2(opts: TrainOptions, vocab_size: int, block_size: int):
    from models.gpt2 import GPT2, GPT2Config

    config = GPT2Config(vocab_size=vocab_size, n_positions=block_size, n_embd=opts.n_embd, n_layer=opts.n_layer,
                        n_head=opts.n_head, resid_pdrop=opts.dropout, embd_pdrop=opts.dropout,
                        attn_pdrop=opts.dropout, bias=opts.bias, activation_function=opts.activation,
                        bos_token_id=None, eos_token_id=None)
    return GPT2(config, rng=init_rng(opts))


class AdditionJob(Job):
    """A GPT learns a + b; the metric is exact-match accuracy of greedy answers on the held-out problems."""

    def __init__(self, opts: TrainOptions):
        super().__init__(opts)
        self.data = D.AdditionTask(opts.digits, seed=opts.seed)
        self.tokens_per_example = self.data.block_size
        self.model = self._build(opts, self.data.vocab_size, self.data.block_size)
        self._share_dropout_rng()

    def _build(self, opts, vocab_size, block_size):
        return _gpt2(opts, vocab_size, block_size)

    def answers(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Greedy answer digits for problems `ids`: (prompts (N, 2d), answers (N, d + 1), reversed order)."""
        d = self.data.digits
        prompt = self.data.encode(ids)[:, : 2 * d]
        return prompt, greedy_digits(self.model, prompt, d + 1)

    def metric(self) -> float:
        ids = self.data.test_ids
        _, got = self.answers(ids)
        want = self.data.encode(ids)[:, 2 * self.data.digits :]
        return float((got == want).all(axis=1).mean())

    def examples(self, n: int = 8) -> list[str]:
        ids = self.data.test_ids[:: max(1, len(self.data.test_ids) // n)][:n]
        prompts, got = self.answers(ids)
        return [self.data.format(p, a) for p, a in zip(prompts, got)]


class TextJob(Job):
    """A GPT on a text corpus: characters (shakespeare_char) or the project's BPE (text_bpe)."""

    metric_name = None

    def __init__(self, opts: TrainOptions, log=print):
        super().__init__(opts)
        text = D.read_text(opts.data, opts.preset)
        if opts.preset == "text_bpe":
            from tokenizers import RegexTokenizer

            self.tokenizer = RegexTokenizer()
            log(f"training a {opts.vocab_size}-token BPE tokenizer on {len(text):,} characters...")
            self.tokenizer.train(text, opts.vocab_size)
            vocab_size = len(self.tokenizer.vocab)
        else:
            self.tokenizer = D.CharTokenizer.from_text(text)
            vocab_size = self.tokenizer.vocab_size
        ids = np.asarray(self.tokenizer.encode_ordinary(text), dtype=np.int64)
        log(f"{len(ids):,} tokens, vocabulary of {vocab_size}")
        self.data = D.TextDataset(ids, opts.block_size, vocab_size)
        self.tokens_per_example = opts.block_size
        self.model = self._build(opts, vocab_size, opts.block_size)
        self._share_dropout_rng()

    def _build(self, opts, vocab_size, block_size):
        return _gpt2(opts, vocab_size, block_size)

    def save_model(self, out_dir: Path) -> None:
        super().save_model(out_dir)
        save_tokenizer(out_dir, self.tokenizer)


def greedy_digits(model, prompt: np.ndarray, n: int) -> np.ndarray:
    """The n tokens greedy decoding appends to each prompt row: (N, n). Eval mode, no graph (samplers.generate)."""
    from samplers.generate import generate

    return generate(model, prompt, n, temperature=0)[:, prompt.shape[1] :]


def _moe(opts: TrainOptions, vocab_size: int, block_size: int):
    from models.moe import MoEConfig, MoEGPT

    config = MoEConfig(vocab_size=vocab_size, hidden_size=opts.n_embd, intermediate_size=2 * opts.n_embd,
                       num_hidden_layers=opts.n_layer, num_attention_heads=opts.n_head,
                       num_key_value_heads=opts.n_kv_head or opts.n_head, max_position_embeddings=block_size,
                       rope_theta=10000.0, attention_dropout=opts.dropout, num_local_experts=opts.n_experts,
                       num_experts_per_tok=opts.top_k, bos_token_id=None, eos_token_id=None)
    return MoEGPT(config, rng=init_rng(opts))


class _ExpertShares:
    """Log lines of the moe preset end with each expert's share of the routed tokens (1/n_experts is balanced)."""

    model_kind = "moe"

    def progress_note(self) -> str:
        counts = np.sum([np.asarray(c, dtype=np.float64) for c in self.model.expert_counts], axis=0)
        shares = counts / max(counts.sum(), 1.0)
        return ", expert shares [" + " ".join(f"{s:.2f}" for s in shares) + "]"


class MoEAdditionJob(_ExpertShares, AdditionJob):
    def _build(self, opts, vocab_size, block_size):
        return _moe(opts, vocab_size, block_size)


class MoETextJob(_ExpertShares, TextJob):
    def _build(self, opts, vocab_size, block_size):
        return _moe(opts, vocab_size, block_size)


class ReverseJob(Job):
    """The encoder-decoder Transformer learns to reverse digit sequences; metric: exact match of greedy decoding."""

    model_kind = "transformer"

    def __init__(self, opts: TrainOptions):
        super().__init__(opts)
        from models.transformer import Transformer, TransformerConfig

        self.data = D.ReverseTask(opts.digits, seed=opts.seed)
        v = self.data.vocab_size
        config = TransformerConfig(src_vocab_size=v, tgt_vocab_size=v, d_model=opts.n_embd, n_heads=opts.n_head,
                                   n_encoder_layers=opts.n_layer, n_decoder_layers=opts.n_layer,
                                   d_ff=4 * opts.n_embd, dropout=opts.dropout, label_smoothing=0.0,
                                   share_embeddings=True, pad_id=self.data.PAD)
        self.model = Transformer(config, rng=init_rng(opts))
        self.tokens_per_example = 2 * opts.digits + 1
        self._share_dropout_rng()

    def make_optimizer(self):
        from tinygrad_lite.optim import AdamW

        o, params = self.opts, self.model.parameters()
        groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": o.weight_decay},
                  {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
        return AdamW(groups, lr=o.learning_rate, betas=(o.beta1, o.beta2))

    def loss(self, batch):
        src, tgt_in, tgt_out = batch
        return self.model.loss(self.model(src, tgt_in), tgt_out)

    def decode(self, src: np.ndarray) -> list:
        return self.model.greedy_decode(src, self.data.length + 1, self.data.BOS, self.data.EOS)

    def metric(self) -> float:
        src = self.data.test_src
        got = self.decode(src)
        want = src[:, ::-1].tolist()
        return float(np.mean([g[:-1] == w and g[-1:] == [self.data.EOS] for g, w in zip(got, want)]))

    def examples(self, n: int = 6) -> list[str]:
        src = self.data.test_src[:n]
        lines = []
        for s, g in zip(src, self.decode(src)):
            got = "".join(str(t) if t < 10 else "" for t in g)
            want = "".join(map(str, s[::-1]))
            lines.append(f"reverse {''.join(map(str, s))} -> {got}" + ("" if got == want else f"   (wrong: {want})"))
        return lines


def save_tokenizer(out_dir: Path, tok) -> None:
    if isinstance(tok, D.CharTokenizer):
        from .checkpoint import write_json_atomic

        write_json_atomic(out_dir / "tokenizer.json", {"type": "char", "chars": tok.chars})
    else:
        tok.save(str(out_dir / "tokenizer"))  # tokenizer.model + tokenizer.vocab


def load_tokenizer(out_dir: Path):
    """The tokenizer saved beside a text model: characters (tokenizer.json) or BPE (tokenizer.model)."""
    if (out_dir / "tokenizer.json").is_file():
        doc = json.loads((out_dir / "tokenizer.json").read_text(encoding="utf-8"))
        return D.CharTokenizer(doc["chars"])
    if (out_dir / "tokenizer.model").is_file():
        from tokenizers import RegexTokenizer

        tok = RegexTokenizer()
        tok.load(str(out_dir / "tokenizer.model"))
        return tok
    return None


def build_job(opts: TrainOptions, log=print) -> Job:
    if opts.preset == "addition":
        return AdditionJob(opts)
    if opts.preset in ("shakespeare_char", "text_bpe"):
        return TextJob(opts, log)
    if opts.preset == "reverse":
        return ReverseJob(opts)
    if opts.preset == "moe":
        return MoETextJob(opts, log) if opts.task == "text" else MoEAdditionJob(opts)
    raise OptionError(f"unknown preset {opts.preset!r}")
