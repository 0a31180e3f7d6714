"""GPT-2 (Radford et al. 2019, "Language Models are Unsupervised Multitask Learners"), weight-compatible with
Hugging Face's GPT2LMHeadModel.

A decoder-only Transformer: token embeddings plus learned position embeddings, n_layer pre-LayerNorm blocks

    x = x + attn(ln_1(x))        causal multi-head self-attention
    x = x + mlp(ln_2(x))         c_fc -> tanh-GELU -> c_proj

a final LayerNorm, and an output layer that reuses the token embedding matrix (weight tying, Press & Wolf 2017):
logits = ln_f(x) @ wte^T. Moving the LayerNorm to the input of each sub-block (GPT-2's change to GPT-1's post-LN)
keeps a clean residual path from the embeddings to the output, which is why deep stacks train without warmup tricks.

Initialisation (GPT-2 paper, section 2.3): every weight N(0, 0.02); the two projections that write into the residual
stream (attn.c_proj, mlp.c_proj) get std 0.02 / sqrt(2 * n_layer), because each of the 2 * n_layer blocks adds its
output to the same stream and the variance of a sum grows with the number of terms.

Parameter names and shapes are exactly those of transformers (`transformer.h.0.attn.c_attn.weight` (C, 3C): GPT-2's
Conv1D already stores (in, out), like our Linear), so loading and saving are name-for-name with no transposition.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

import tinygrad_lite.functional as F
from layers.attention import MultiHeadAttention
from layers.dropout import Dropout
from layers.kv_cache import KVCache
from layers.linear import Embedding
from layers.mlp import MLP
from layers.norm import LayerNorm
from layers.positional import LearnedPositionalEmbedding
from tinygrad_lite import Module, Tensor, as_generator
from tinygrad_lite.optim import AdamW, weight_decay_groups

from . import hf
from .common import GenerateMixin, as_ids, check_cache

# transformers names the tanh approximation of GELU "gelu_new" (GPT-2's original), "gelu_pytorch_tanh" (the same
# formula in one fused kernel) or "gelu_fast" (the same again, factored); "gelu" is the exact x Phi(x) (nanoGPT's
# nn.GELU()). The value is the MLP layer's `approximate`.
_GELU = {"gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu_fast": "tanh", "gelu": "none"}


@dataclass
class GPT2Config:
    """GPT-2 hyperparameters under Hugging Face's names; the defaults are the 124M model.

    n_inner is the MLP width (None: 4 * n_embd). Dropout: embd_pdrop after the embeddings, resid_pdrop on the MLP
    output, attn_pdrop on the attention weights and the attention output (the layers' MultiHeadAttention has one
    rate for both; every published GPT-2 config sets the two equal).
    """

    vocab_size: int = 50257
    n_positions: int = 1024
    n_embd: int = 768
    n_layer: int = 12
    n_head: int = 12
    n_inner: int | None = None
    activation_function: str = "gelu_new"
    resid_pdrop: float = 0.1
    embd_pdrop: float = 0.1
    attn_pdrop: float = 0.1
    layer_norm_epsilon: float = 1e-5
    initializer_range: float = 0.02
    bias: bool = True  # False: no biases in Linear and LayerNorm layers (nanoGPT's default); see GPT2.bias_free_keys
    bos_token_id: int | None = 50256
    eos_token_id: int | None = 50256
    # Other config.json keys, written back unchanged by to_hf(); not part of equality.
    hf_extra: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        if self.n_embd % self.n_head:
            raise ValueError(f"GPT2Config: n_embd {self.n_embd} is not divisible by n_head {self.n_head}")
        if self.activation_function not in _GELU:
            raise ValueError(f"GPT2Config: activation_function {self.activation_function!r} is not supported "
                             f"(supported: {', '.join(_GELU)})")
        # Variants of the architecture that transformers can express and this model does not implement.
        unsupported = {"scale_attn_by_inverse_layer_idx": False, "scale_attn_weights": True,
                       "add_cross_attention": False, "tie_word_embeddings": True}
        for key, supported in unsupported.items():
            if self.hf_extra.get(key, supported) != supported:
                raise ValueError(f"GPT2Config: {key}={self.hf_extra[key]!r} is not supported (only {supported})")

    @classmethod
    def from_hf(cls, d: dict, source: str = "config") -> GPT2Config:
        return hf.config_from_dict(cls, d, source, model_type="gpt2")

    def to_hf(self) -> dict:
        out = hf.config_to_dict(self)
        out.update(model_type="gpt2", architectures=["GPT2LMHeadModel"], tie_word_embeddings=True)
        return out


class Block(Module):
    """One pre-LN Transformer block: x + attn(ln_1(x)), then + mlp(ln_2(x))."""

    def __init__(self, config: GPT2Config, rng, dtype):
        C = config.n_embd
        bias = config.bias
        self.ln_1 = LayerNorm(C, eps=config.layer_norm_epsilon, bias=bias, dtype=dtype)
        self.attn = MultiHeadAttention(C, config.n_head, bias=bias, dropout=config.attn_pdrop, packed_qkv=True,
                                       rng=rng, dtype=dtype)  # c_attn (C, 3C), c_proj (C, C)
        self.ln_2 = LayerNorm(C, eps=config.layer_norm_epsilon, bias=bias, dtype=dtype)
        self.mlp = MLP(C, config.n_inner, bias=bias, dropout=config.resid_pdrop, rng=rng, dtype=dtype,
                       approximate=_GELU[config.activation_function])

    def forward(self, x: Tensor, cache: KVCache | None = None) -> Tensor:
        # is_causal aligns the mask to the last key, so with a cache the new tokens see every stored position.
        x = x + self.attn(self.ln_1(x), is_causal=True, cache=cache)  # (B, T, C)
        return x + self.mlp(self.ln_2(x))  # (B, T, C)


class GPT2Model(Module):
    """The body (transformers' GPT2Model): embeddings, blocks, final LayerNorm -> hidden states (B, T, C)."""

    def __init__(self, config: GPT2Config, rng, dtype):
        self.wte = Embedding(config.vocab_size, config.n_embd, rng=rng, dtype=dtype)
        self.wpe = LearnedPositionalEmbedding(config.n_positions, config.n_embd, rng=rng, dtype=dtype)
        self.drop = Dropout(config.embd_pdrop, rng=rng)
        self.h = [Block(config, rng, dtype) for _ in range(config.n_layer)]
        self.ln_f = LayerNorm(config.n_embd, eps=config.layer_norm_epsilon, bias=config.bias, dtype=dtype)

    def forward(self, idx: np.ndarray, cache: list | None = None) -> Tensor:
        T = idx.shape[1]
        past = len(cache[0]) if cache else 0  # positions already in the cache: the new tokens come after them
        pos = np.arange(past, past + T)
        x = self.drop(self.wte(idx) + self.wpe(pos))  # token + position embeddings: (B, T, C) + (T, C)
        for i, block in enumerate(self.h):
            x = block(x, cache[i] if cache else None)
        return self.ln_f(x)  # (B, T, C)


class GPT2(GenerateMixin, hf.PretrainedMixin, Module):
    """GPT-2 language model: forward(idx, targets=None, cache=None) -> (logits, loss).

    `dtype` is the dtype of every parameter (float32; float64 for gradient checks). `rng` seeds the initialisation
    and the dropout masks. `init=False` skips GPT-2's initialisation (from_pretrained overwrites every weight).
    """

    config_class = GPT2Config

    def __init__(self, config: GPT2Config, dtype=np.float32, rng: np.random.Generator | None = None,
                 init: bool = True):
        self.config, self.dtype = config, np.dtype(dtype)
        rng = as_generator(rng)
        self.transformer = GPT2Model(config, rng, self.dtype)
        if init:
            self._init_weights(rng)

    @property
    def lm_head(self) -> Tensor:
        """The output matrix (vocab, C): the token embedding itself (tied, one Parameter; saved once)."""
        return self.transformer.wte.weight

    def _init_weights(self, rng) -> None:
        std = self.config.initializer_range
        resid_std = std / math.sqrt(2 * self.config.n_layer)
        for name, p in self.named_parameters():
            if name.endswith(("attn.c_proj.weight", "mlp.c_proj.weight")):
                p.data[...] = rng.normal(0.0, resid_std, p.shape)
            elif name.endswith(".weight") and ".ln_" not in name:
                p.data[...] = rng.normal(0.0, std, p.shape)  # Linear and Embedding weights
            elif ".ln_" not in name:
                p.data[...] = 0.0  # biases; LayerNorms keep weight 1, bias 0

    # ----- forward

    def forward(self, idx, targets=None, cache: list | None = None, last_only: bool = False):
        """idx (B, T) integer ids -> (logits (B, T, vocab), loss or None).

        targets (B, T) are the ids each position should predict (the caller shifts them; -100 is ignored); the loss
        is their mean cross-entropy. With `cache` (from make_cache) the T tokens continue the cached sequence: their
        positions start at the cache length. `last_only=True` computes the logits of the last position only
        (B, 1, vocab), all that sampling needs.
        """
        idx = as_ids(idx, "GPT2")
        past = check_cache(cache, self.config.n_layer, "GPT2")
        if past + idx.shape[1] > self.config.n_positions:
            raise ValueError(f"GPT2: {past} cached + {idx.shape[1]} new positions exceed n_positions "
                             f"{self.config.n_positions} (the number of learned position embeddings)")
        x = self.transformer(idx, cache)  # (B, T, C)
        if last_only:
            x = x[:, -1:]  # (B, 1, C)
        logits = F.linear(x, self.lm_head.T)  # (B, T, C) @ (C, vocab) -> (B, T, vocab), tied weights
        loss = None if targets is None else F.cross_entropy(logits, as_ids(targets, "GPT2 targets"))
        return logits, loss

    def make_cache(self, batch_size: int = 1, max_len: int | None = None) -> list:
        """One empty KVCache per layer for up to max_len positions (default n_positions); its arrays are allocated,
        for whatever batch size the first forward has, at that forward."""
        max_len = self.config.n_positions if max_len is None else max_len
        if not 1 <= max_len <= self.config.n_positions:
            raise ValueError(f"GPT2.make_cache: max_len {max_len} must be in [1, n_positions "
                             f"{self.config.n_positions}]")
        return [KVCache(max_len) for _ in range(self.config.n_layer)]

    # ----- training

    def configure_optimizer(self, weight_decay: float, learning_rate: float, betas=(0.9, 0.95), eps: float = 1e-8):
        """AdamW with weight decay on the 2-D weights (matrices and embeddings) only: decaying biases and LayerNorm
        gains towards 0 would only fight the normalisation, so they get none."""
        return AdamW(weight_decay_groups(self.parameters(), weight_decay), lr=learning_rate, betas=betas, eps=eps)

    # ----- Hugging Face folder format (see hf.py)

    def hf_parameters(self) -> list:
        return [(name, p, False) for name, p in self.named_parameters()]  # same names, same (in, out) layout

    def bias_free_keys(self) -> dict:
        """With bias=False, the checkpoint keys of the biases this model does not have, with their shapes.

        transformers' GPT-2 always has biases, so save_pretrained writes these as zeros (the same function as no
        bias) and from_pretrained accepts them only if they are zero.
        """
        if self.config.bias:
            return {}
        C, inner = self.config.n_embd, self.config.n_inner or 4 * self.config.n_embd
        shapes = {"ln_1.bias": C, "attn.c_attn.bias": 3 * C, "attn.c_proj.bias": C, "ln_2.bias": C,
                  "mlp.c_fc.bias": inner, "mlp.c_proj.bias": C}
        keys = {f"transformer.h.{i}.{k}": (n,) for i in range(self.config.n_layer) for k, n in shapes.items()}
        keys["transformer.ln_f.bias"] = (C,)
        return keys

    @classmethod
    def hf_rename(cls, key: str, config) -> str | None:
        parts = key.split(".")
        if parts[0] == "lm_head":
            return None  # tied to wte: the same numbers, stored once
        if parts[0] != "transformer":
            parts.insert(0, "transformer")  # GPT2Model checkpoints (the Hub's gpt2) have no prefix
        if len(parts) == 5 and parts[1] == "h" and parts[3] == "attn" and parts[4] in ("bias", "masked_bias"):
            return None  # the causal mask and its fill value, stored as buffers by older transformers
        return ".".join(parts)
