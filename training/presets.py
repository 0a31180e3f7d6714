"""What each preset trains: its data, its model, its loss and its held-out metric, described by one small Task.

    addition          a GPT learns a + b (data.AdditionTask); metric: exact match of greedy answers, held out
    shakespeare_char  a GPT on a text's characters (nanoGPT's shakespeare_char); the val loss picks the best model
    text_bpe          the same on the project's byte-level BPE, trained on the text first
    reverse           the encoder-decoder Transformer reverses digit strings; metric: exact match of greedy decoding
    moe               MoEGPT on addition, or with --task text on a text's characters; log lines add expert shares

The loop (training/loop.py) knows nothing of presets: it draws batches with task.get_batch, calls task.loss, and
asks task.metric when it evaluates.

Random streams, each a generator of its own so that none replays another's bits: the initial weights (seed, 2),
every dropout mask and router jitter (seed, 1, shared by all modules and saved with the training state), the
held-out split of a generated task (seed), and in the loop the training batches (seed) and the evaluation batches
(seed, iteration, split).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from tinygrad_lite import Module
from tokenizers import RegexTokenizer

from . import data as D
from .options import OptionError, TrainOptions


@dataclass
class Task:
    model: Module                              # GPT2, MoEGPT or Transformer
    get_batch: Callable                        # (split, rng) -> batch: a tuple of arrays, rows along axis 0
    loss: Callable                             # batch -> scalar loss Tensor (mean over the batch)
    tokens_per_example: int                    # positions per row, for tokens/iter and FLOPs in the log
    dropout_rng: np.random.Generator           # the generator every dropout mask comes from
    metric: Callable[[], float] | None = None  # held-out accuracy (higher is better); None: the val loss decides
    examples: Callable[[], list] = lambda: []  # lines showing the trained model at work, printed at the end
    note: Callable[[], str] = lambda: ""       # appended to each log line
    tokenizer: object = None                   # saved beside the model (text presets)


def build_task(opts: TrainOptions, log=print) -> Task:
    if opts.preset == "reverse":
        task = reverse(opts)
    elif opts.preset in ("shakespeare_char", "text_bpe") or (opts.preset == "moe" and opts.task == "text"):
        task = text(opts, moe_model if opts.preset == "moe" else gpt2_model, log)
    elif opts.preset in ("addition", "moe"):
        task = addition(opts, moe_model if opts.preset == "moe" else gpt2_model)
    else:
        raise OptionError(f"unknown preset {opts.preset!r}")
    for m in task.model.modules():  # one generator for every mask, so a resumed run draws the same ones
        if isinstance(getattr(m, "rng", None), np.random.Generator):
            m.rng = task.dropout_rng
    if opts.preset == "moe":
        task.note = lambda: expert_shares(task.model)
    return task


# ------------------------------------------------------------------------------------------------ presets


def addition(opts: TrainOptions, build_model) -> Task:
    """A decoder learns a + b; the metric is exact match of its greedy answers on the held-out problems."""
    data = D.AdditionTask(opts.digits, seed=opts.seed)
    model = build_model(opts, data.vocab_size, data.block_size)
    d = data.digits

    def answers(ids):  # (prompts (N, 2d), greedy answers (N, d + 1), low digit first)
        prompt = data.encode(ids)[:, :2 * d]
        return prompt, greedy_digits(model, prompt, d + 1)

    def accuracy() -> float:
        _, got = answers(data.test_ids)
        return float((got == data.encode(data.test_ids)[:, 2 * d:]).all(axis=1).mean())

    def examples(n: int = 8) -> list:
        ids = data.test_ids[:: max(1, len(data.test_ids) // n)][:n]
        return [data.format(p, a) for p, a in zip(*answers(ids))]

    return Task(model, lambda split, rng: data.get_batch(split, opts.batch_size, rng), decoder_loss(model),
                data.block_size, dropout_rng(opts), metric=accuracy, examples=examples)


def text(opts: TrainOptions, build_model, log=print) -> Task:
    """A decoder on a text: its characters, or for text_bpe the project's BPE trained on it first."""
    corpus = D.read_text(opts.data, opts.preset)
    if opts.preset == "text_bpe":
        tokenizer = RegexTokenizer()
        log(f"training a {opts.vocab_size}-token BPE tokenizer on {len(corpus):,} characters...")
        tokenizer.train(corpus, opts.vocab_size)
        vocab_size = len(tokenizer.vocab)
    else:
        tokenizer = D.CharTokenizer.from_text(corpus)
        vocab_size = tokenizer.vocab_size
    ids = np.asarray(tokenizer.encode_ordinary(corpus), dtype=np.int64)
    log(f"{len(ids):,} tokens, vocabulary of {vocab_size}")
    data = D.TextDataset(ids, opts.block_size, vocab_size)
    model = build_model(opts, vocab_size, opts.block_size)
    return Task(model, lambda split, rng: data.get_batch(split, opts.batch_size, rng), decoder_loss(model),
                opts.block_size, dropout_rng(opts), tokenizer=tokenizer)


def reverse(opts: TrainOptions) -> Task:
    """The encoder-decoder Transformer learns to reverse digit strings; metric: exact match of greedy decoding."""
    from models.transformer import Transformer, TransformerConfig

    data = D.ReverseTask(opts.digits, seed=opts.seed)
    v = data.vocab_size
    config = TransformerConfig(src_vocab_size=v, tgt_vocab_size=v, d_model=opts.n_embd, n_heads=opts.n_head,
                               n_encoder_layers=opts.n_layer, n_decoder_layers=opts.n_layer, d_ff=4 * opts.n_embd,
                               dropout=opts.dropout, label_smoothing=0.0, share_embeddings=True, pad_id=data.PAD)
    model = Transformer(config, rng=init_rng(opts))

    def loss(batch):
        src, tgt_in, tgt_out = batch
        return model.loss(model(src, tgt_in), tgt_out)

    def decode(src) -> list:
        return model.greedy_decode(src, data.length + 1, data.BOS, data.EOS)

    def accuracy() -> float:
        got, want = decode(data.test_src), data.test_src[:, ::-1].tolist()
        return float(np.mean([g[:-1] == w and g[-1:] == [data.EOS] for g, w in zip(got, want)]))

    def examples(n: int = 6) -> list:
        lines = []
        for s, g in zip(data.test_src[:n], decode(data.test_src[:n])):
            got, want = "".join(str(t) for t in g if t < 10), "".join(map(str, s[::-1]))
            lines.append(f"reverse {''.join(map(str, s))} -> {got}" + ("" if got == want else f"   (wrong: {want})"))
        return lines

    return Task(model, lambda split, rng: data.get_batch(split, opts.batch_size, rng), loss, 2 * opts.digits + 1,
                dropout_rng(opts), metric=accuracy, examples=examples)


# ------------------------------------------------------------------------------------------------ models and helpers


def init_rng(opts: TrainOptions) -> np.random.Generator:
    """The generator of the model's initial weights: the stream (seed, 2), see the module docstring."""
    return np.random.default_rng([opts.seed, 2])


def dropout_rng(opts: TrainOptions) -> np.random.Generator:
    return np.random.default_rng([opts.seed, 1])


def gpt2_model(opts: TrainOptions, vocab_size: int, block_size: int):
    from models.gpt2 import GPT2, GPT2Config

    config = GPT2Config(vocab_size=vocab_size, n_positions=block_size, n_embd=opts.n_embd, n_layer=opts.n_layer,
                        n_head=opts.n_head, resid_pdrop=opts.dropout, embd_pdrop=opts.dropout,
                        attn_pdrop=opts.dropout, bias=opts.bias, activation_function=opts.activation,
                        bos_token_id=None, eos_token_id=None)
    return GPT2(config, rng=init_rng(opts))


def moe_model(opts: TrainOptions, vocab_size: int, block_size: int):
    from models.moe import MoEConfig, MoEGPT

    config = MoEConfig(vocab_size=vocab_size, hidden_size=opts.n_embd, intermediate_size=2 * opts.n_embd,
                       num_hidden_layers=opts.n_layer, num_attention_heads=opts.n_head,
                       num_key_value_heads=opts.n_kv_head or opts.n_head, max_position_embeddings=block_size,
                       rope_theta=10000.0, attention_dropout=opts.dropout, num_local_experts=opts.n_experts,
                       num_experts_per_tok=opts.top_k, bos_token_id=None, eos_token_id=None)
    return MoEGPT(config, rng=init_rng(opts))


def decoder_loss(model) -> Callable:
    return lambda batch: model(batch[0], targets=batch[1])[1]


def expert_shares(model) -> str:
    """Each expert's share of the tokens routed in the last forward, over all layers (1/n_experts is balanced)."""
    counts = np.sum([np.asarray(c, dtype=np.float64) for c in model.expert_counts], axis=0)
    shares = counts / max(counts.sum(), 1.0)
    return ", expert shares [" + " ".join(f"{s:.2f}" for s in shares) + "]"


def greedy_digits(model, prompt: np.ndarray, n: int) -> np.ndarray:
    """The n tokens greedy decoding appends to each prompt row: (N, n). Eval mode, no graph (samplers.generate)."""
    from samplers.generate import generate

    return generate(model, prompt, n, temperature=0)[:, prompt.shape[1]:]
