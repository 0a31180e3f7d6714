"""The encoder-decoder Transformer of Vaswani et al. 2017, "Attention Is All You Need".

    encoder:  x = embed(src) * sqrt(d_model) + PE          (section 3.4 and 3.5: sinusoidal positions)
              N x [ self-attention, feed-forward ]          each sub-layer wrapped as LayerNorm(x + Dropout(f(x)))
    decoder:  y = embed(tgt_in) * sqrt(d_model) + PE
              N x [ causal self-attention, cross-attention to the encoder output, feed-forward ]
    logits = y @ W_out                                      W_out = the target embedding^T (section 3.4) by default

The paper normalises after each residual addition (post-LN). `norm_first=True` normalises the input of each sub-layer
instead (pre-LN, Xiong et al. 2020) and adds a final LayerNorm to each stack: it trains without learning-rate warmup.
The embeddings are multiplied by sqrt(d_model) because they are initialised with std d_model^-1/2 (so that, tied to
the output layer, logits start small): the scaling brings them to unit size next to the unit-size sinusoids.

Training uses label smoothing (section 5.4, eps = 0.1): `model.loss(logits, tgt_out)`. Decoding: `greedy_decode`
and `beam_search` (beam 4 and length penalty alpha = 0.6 in the paper, the GNMT penalty ((5 + |Y|) / 6)^alpha).
Both run the encoder once and feed the decoder one token at a time with per-layer KV caches.

Masks follow PyTorch: `src_pad_mask` / `tgt_pad_mask` are boolean (B, S) / (B, T), True at padding positions.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field

import numpy as np

import tinygrad_lite.functional as F
from layers.attention import MultiHeadAttention
from layers.dropout import Dropout
from layers.kv_cache import KVCache
from layers.linear import Embedding, Linear
from layers.norm import LayerNorm
from layers.positional import SinusoidalPositionalEncoding
from tinygrad_lite import Module, Tensor, as_generator, no_grad

from . import hf
from .common import as_ids, reorder_cache


@dataclass
class TransformerConfig:
    """Hyperparameters; the defaults are the paper's base model (Table 3)."""

    src_vocab_size: int = 32000
    tgt_vocab_size: int = 32000
    d_model: int = 512
    n_heads: int = 8
    n_encoder_layers: int = 6
    n_decoder_layers: int = 6
    d_ff: int = 2048
    dropout: float = 0.1
    label_smoothing: float = 0.1
    norm_first: bool = False  # False: post-LN as in the paper; True: pre-LN
    share_embeddings: bool = False  # one table for source and target (needs one shared vocabulary)
    tie_output: bool = True  # output projection = target embedding^T
    layer_norm_eps: float = 1e-5
    pad_id: int = 0  # targets equal to pad_id are ignored by the loss
    hf_extra: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        if self.d_model % self.n_heads:
            raise ValueError(f"TransformerConfig: d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        if self.share_embeddings and self.src_vocab_size != self.tgt_vocab_size:
            raise ValueError(f"TransformerConfig: share_embeddings needs one vocabulary, got src_vocab_size "
                             f"{self.src_vocab_size} != tgt_vocab_size {self.tgt_vocab_size}")

    @classmethod
    def from_hf(cls, d: dict, source: str = "config") -> TransformerConfig:
        return hf.config_from_dict(cls, d, source, model_type=MODEL_TYPE)

    def to_hf(self) -> dict:
        out = hf.config_to_dict(self)
        out.update(model_type=MODEL_TYPE, architectures=["Transformer"])
        return out


# transformers has no class for this model: the folder has the same layout, but only this project reads it.
MODEL_TYPE = "vaswani_transformer"


class FeedForward(Module):
    """FFN(x) = max(0, x W1 + b1) W2 + b2 (section 3.3), then dropout (the residual dropout of section 5.4)."""

    def __init__(self, d_model: int, d_ff: int, dropout: float, rng, dtype):
        self.fc1 = Linear(d_model, d_ff, rng=rng, dtype=dtype)
        self.fc2 = Linear(d_ff, d_model, rng=rng, dtype=dtype)
        self.drop = Dropout(dropout, rng=rng)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.fc1(x).relu()))  # (B, T, d_model) -> (B, T, d_ff) -> (B, T, d_model)


def _residual(x: Tensor, norm: LayerNorm, f, norm_first: bool) -> Tensor:
    """Post-LN: norm(x + f(x)), the paper's. Pre-LN: x + f(norm(x)), the residual path stays un-normalised."""
    return x + f(norm(x)) if norm_first else norm(x + f(x))


class EncoderLayer(Module):
    def __init__(self, c: TransformerConfig, rng, dtype):
        self.norm_first = c.norm_first
        self.self_attn = MultiHeadAttention(c.d_model, c.n_heads, dropout=c.dropout, rng=rng, dtype=dtype)
        self.norm1 = LayerNorm(c.d_model, eps=c.layer_norm_eps, dtype=dtype)
        self.ff = FeedForward(c.d_model, c.d_ff, c.dropout, rng, dtype)
        self.norm2 = LayerNorm(c.d_model, eps=c.layer_norm_eps, dtype=dtype)

    def forward(self, x: Tensor, mask) -> Tensor:
        x = _residual(x, self.norm1, lambda h: self.self_attn(h, attn_mask=mask), self.norm_first)
        return _residual(x, self.norm2, self.ff, self.norm_first)  # (B, S, d_model)


class DecoderLayer(Module):
    def __init__(self, c: TransformerConfig, rng, dtype):
        self.norm_first = c.norm_first
        self.self_attn = MultiHeadAttention(c.d_model, c.n_heads, dropout=c.dropout, rng=rng, dtype=dtype)
        self.norm1 = LayerNorm(c.d_model, eps=c.layer_norm_eps, dtype=dtype)
        self.cross_attn = MultiHeadAttention(c.d_model, c.n_heads, dropout=c.dropout, rng=rng, dtype=dtype)
        self.norm2 = LayerNorm(c.d_model, eps=c.layer_norm_eps, dtype=dtype)
        self.ff = FeedForward(c.d_model, c.d_ff, c.dropout, rng, dtype)
        self.norm3 = LayerNorm(c.d_model, eps=c.layer_norm_eps, dtype=dtype)

    def forward(self, y: Tensor, memory: Tensor, self_mask, cross_mask, cache=None) -> Tensor:
        self_cache, cross_cache = cache if cache is not None else (None, None)
        y = _residual(y, self.norm1, lambda h: self.self_attn(h, attn_mask=self_mask, is_causal=True,
                                                               cache=self_cache), self.norm_first)
        # The cross-attention cache holds the projected encoder output: keys and values computed once per sequence.
        y = _residual(y, self.norm2, lambda h: self.cross_attn(h, context=memory, attn_mask=cross_mask,
                                                                cache=cross_cache), self.norm_first)
        return _residual(y, self.norm3, self.ff, self.norm_first)  # (B, T, d_model)


class Stack(Module):
    """N layers, plus the final LayerNorm that pre-LN needs (post-LN's last layer already ends with one)."""

    def __init__(self, layers: list, c: TransformerConfig, dtype):
        self.layers = layers
        self.norm = LayerNorm(c.d_model, eps=c.layer_norm_eps, dtype=dtype) if c.norm_first else None


def _key_mask(pad_mask, B: int, S: int):
    """(B, S) True-at-padding -> (B, 1, 1, S) True-where-attention-may-look, or None."""
    if pad_mask is None:
        return None
    m = np.asarray(pad_mask.data if isinstance(pad_mask, Tensor) else pad_mask, dtype=bool)
    if m.shape != (B, S):
        raise ValueError(f"Transformer: a padding mask of shape {m.shape} for a batch of shape {(B, S)}")
    return ~m[:, None, None, :]


class Transformer(hf.PretrainedMixin, Module):
    """Encoder-decoder Transformer: forward(src, tgt_in, src_pad_mask=None, tgt_pad_mask=None) -> logits.

    `dtype`, `rng` and `init` as in GPT2.
    """

    config_class = TransformerConfig

    def __init__(self, config: TransformerConfig, dtype=np.float32, rng: np.random.Generator | None = None,
                 init: bool = True):
        c = self.config = config
        self.dtype = np.dtype(dtype)
        rng = as_generator(rng)
        self.src_embed = Embedding(c.src_vocab_size, c.d_model, rng=rng, dtype=self.dtype)
        self.tgt_embed = (self.src_embed if c.share_embeddings
                          else Embedding(c.tgt_vocab_size, c.d_model, rng=rng, dtype=self.dtype))
        self.pos = SinusoidalPositionalEncoding(c.d_model)
        self.drop = Dropout(c.dropout, rng=rng)
        self.encoder = Stack([EncoderLayer(c, rng, self.dtype) for _ in range(c.n_encoder_layers)], c, self.dtype)
        self.decoder = Stack([DecoderLayer(c, rng, self.dtype) for _ in range(c.n_decoder_layers)], c, self.dtype)
        self.out_proj = None if c.tie_output else Linear(c.d_model, c.tgt_vocab_size, bias=False, rng=rng,
                                                         dtype=self.dtype)
        if init:
            self._init_weights(rng)

    def _init_weights(self, rng) -> None:
        """Xavier-uniform matrices (Glorot & Bengio 2010), embeddings N(0, d_model^-1/2), biases 0."""
        embeddings = {id(self.src_embed.weight), id(self.tgt_embed.weight)}
        for _, p in self.named_parameters():
            if id(p) in embeddings:
                p.data[...] = rng.normal(0.0, self.config.d_model ** -0.5, p.shape)
            elif p.ndim == 2:
                bound = math.sqrt(6.0 / (p.shape[0] + p.shape[1]))
                p.data[...] = rng.uniform(-bound, bound, p.shape)

    # ----- the two halves

    def _embed(self, embedding: Embedding, ids: np.ndarray, start: int = 0) -> Tensor:
        pe = self.pos(np.arange(start, start + ids.shape[1])).data.astype(self.dtype, copy=False)  # (T, d_model)
        return self.drop(embedding(ids) * math.sqrt(self.config.d_model) + Tensor(pe))  # (B, T, d_model)

    def encode(self, src, src_pad_mask=None) -> Tensor:
        """src (B, S) -> memory (B, S, d_model). Padding positions are never attended to."""
        src = as_ids(src, "Transformer.encode")
        mask = _key_mask(src_pad_mask, *src.shape)
        x = self._embed(self.src_embed, src)
        for layer in self.encoder.layers:
            x = layer(x, mask)
        return x if self.encoder.norm is None else self.encoder.norm(x)

    def decode(self, tgt_in, memory: Tensor, src_pad_mask=None, cache: list | None = None,
               tgt_pad_mask=None) -> Tensor:
        """tgt_in (B, T) -> logits (B, T, tgt_vocab), attending causally to tgt_in and fully to memory.

        With `cache` (from make_cache) the T tokens continue the cached target prefix (positions start at its
        length) and the encoder's keys and values are projected on the first call only.
        """
        tgt = as_ids(tgt_in, "Transformer.decode")
        B, T = tgt.shape
        if cache is not None and len(cache) != len(self.decoder.layers):
            raise ValueError(f"Transformer.decode: a cache of {len(cache)} layers for {len(self.decoder.layers)}")
        start = len(cache[0][0]) if cache else 0
        self_mask = _key_mask(tgt_pad_mask, B, T) if start == 0 else None  # decoding one token: no target padding
        cross_mask = _key_mask(src_pad_mask, B, memory.shape[1])
        y = self._embed(self.tgt_embed, tgt, start)
        for i, layer in enumerate(self.decoder.layers):
            y = layer(y, memory, self_mask, cross_mask, cache[i] if cache else None)
        if self.decoder.norm is not None:
            y = self.decoder.norm(y)
        w = self.tgt_embed.weight.T if self.out_proj is None else self.out_proj.weight  # (d_model, tgt_vocab)
        return F.linear(y, w)  # (B, T, tgt_vocab)

    def forward(self, src, tgt_in, src_pad_mask=None, tgt_pad_mask=None) -> Tensor:
        """Teacher forcing: logits (B, T, tgt_vocab) for every target position."""
        return self.decode(tgt_in, self.encode(src, src_pad_mask), src_pad_mask, tgt_pad_mask=tgt_pad_mask)

    def loss(self, logits: Tensor, tgt_out) -> Tensor:
        """Mean label-smoothed cross-entropy over the non-padding targets (tgt_out = tgt_in shifted left)."""
        c = self.config
        return F.cross_entropy(logits, as_ids(tgt_out, "Transformer.loss"), ignore_index=c.pad_id,
                               label_smoothing=c.label_smoothing)

    def make_cache(self, batch_size: int, max_len: int, src_len: int) -> list:
        """Per decoder layer a (self-attention, cross-attention) pair of KVCaches: max_len target positions and the
        src_len encoder positions."""
        return [(KVCache(max_len), KVCache(src_len)) for _ in self.decoder.layers]

    # ----- decoding

    @contextlib.contextmanager
    def _inference(self):
        """No graph and eval mode (dropout off) for decoding; the previous mode comes back afterwards."""
        was_training = self.training
        self.eval()
        try:
            with no_grad():
                yield
        finally:
            self.train(was_training)

    def greedy_decode(self, src, max_len: int, bos: int, eos: int, src_pad_mask=None) -> list:
        """The most probable next token at every step. Returns, per source row, the generated ids (without bos),
        ending with eos unless max_len tokens came first."""
        src = as_ids(src, "Transformer.greedy_decode")
        B = src.shape[0]
        with self._inference():
            memory = self.encode(src, src_pad_mask)
            cache = self.make_cache(B, max_len, src.shape[1])
            out = np.empty((B, 0), dtype=np.int64)
            tok = np.full((B, 1), bos, dtype=np.int64)
            done = np.zeros(B, dtype=bool)
            for _ in range(max_len):
                logits = self.decode(tok, memory, src_pad_mask, cache=cache)  # (B, 1, V)
                tok = logits.data[:, -1].argmax(axis=-1)[:, None]  # (B, 1)
                tok[done] = eos  # finished rows keep emitting eos (dropped below)
                out = np.concatenate([out, tok], axis=1)
                done |= tok[:, 0] == eos
                if done.all():
                    break
        return [_until_eos(row, eos) for row in out.tolist()]

    def beam_search(self, src, beam_size: int, max_len: int, bos: int, eos: int, length_penalty: float = 0.6,
                    src_pad_mask=None) -> list:
        """Beam search (Sutskever et al. 2014) with the GNMT length penalty (Wu et al. 2016):
        score(Y) = log P(Y | X) / ((5 + |Y|) / 6)^length_penalty, |Y| counting the eos.

        Every source row keeps beam_size hypotheses; each step extends them all by every token and keeps the
        beam_size best that do not end in eos; those ending in eos among the top beam_size candidates are finished.
        A row stops when it has beam_size finished hypotheses and no live one can still beat the worst of them
        (judged at the current length, transformers' rule). Returns the best hypothesis per row (ids without bos).
        """
        src = as_ids(src, "Transformer.beam_search")
        if beam_size < 1:
            raise ValueError(f"beam_search: beam_size must be >= 1, got {beam_size}")
        B, S = src.shape
        K, V = beam_size, self.config.tgt_vocab_size

        def lp(n):
            return ((5.0 + n) / 6.0) ** length_penalty

        with self._inference():
            rows = np.repeat(np.arange(B), K)  # (B*K,) every source row once per beam
            memory = Tensor(self.encode(src, src_pad_mask).data[rows])  # (B*K, S, d_model)
            mask = None if src_pad_mask is None else np.asarray(src_pad_mask, dtype=bool)[rows]
            cache = self.make_cache(B * K, max_len, S)
            seqs = np.full((B * K, 1), bos, dtype=np.int64)
            scores = np.full((B, K), -np.inf)
            scores[:, 0] = 0.0  # all beams start identical: expand only the first
            finished = [[] for _ in range(B)]  # per row: (normalised score, ids)
            done = np.zeros(B, dtype=bool)
            for t in range(1, max_len + 1):
                logits = self.decode(seqs[:, -1:], memory, mask, cache=cache).data[:, -1]  # (B*K, V)
                logp = logits.astype(np.float64)
                logp -= logp.max(axis=-1, keepdims=True)
                logp -= np.log(np.exp(logp).sum(axis=-1, keepdims=True))  # log-softmax
                cand = (scores[:, :, None] + logp.reshape(B, K, V)).reshape(B, K * V)
                top = np.argsort(-cand, axis=1, kind="stable")[:, : 2 * K]  # enough to find K that are not eos
                parents = np.tile(np.arange(K), (B, 1))
                tokens = np.full((B, K), eos, dtype=np.int64)
                new_scores = np.full((B, K), -np.inf)
                for b in np.flatnonzero(~done):
                    n = 0
                    for rank, c in enumerate(top[b]):
                        s = cand[b, c]
                        if s == -np.inf or n == K:
                            break
                        beam, tok = divmod(int(c), V)
                        if tok == eos:
                            if rank < K:
                                finished[b].append((s / lp(t), seqs[b * K + beam, 1:].tolist() + [eos]))
                        else:
                            parents[b, n], tokens[b, n], new_scores[b, n] = beam, tok, s
                            n += 1
                    finished[b].sort(key=lambda h: -h[0])
                    del finished[b][K:]
                    best_alive = new_scores[b].max()
                    if best_alive == -np.inf or (len(finished[b]) == K and finished[b][-1][0] >= best_alive / lp(t)):
                        done[b] = True
                flat = (np.arange(B)[:, None] * K + parents).reshape(-1)  # (B*K,) the row each new beam extends
                seqs = np.concatenate([seqs[flat], tokens.reshape(-1, 1)], axis=1)
                reorder_cache([self_cache for self_cache, _ in cache], flat)  # cross caches: same rows per source
                scores = new_scores
                if done.all():
                    break
            for b in np.flatnonzero(~done):  # out of length: live beams compete with the finished ones
                for k in range(K):
                    if scores[b, k] > -np.inf:
                        finished[b].append((scores[b, k] / lp(seqs.shape[1] - 1), seqs[b * K + k, 1:].tolist()))
        return [max(f, key=lambda h: h[0])[1] for f in finished]

    # ----- folder format (same layout as Hugging Face's; see hf.py)

    def hf_parameters(self) -> list:
        return [(name, p, False) for name, p in self.named_parameters()]


def _until_eos(ids: list, eos: int) -> list:
    return ids[: ids.index(eos) + 1] if eos in ids else ids
