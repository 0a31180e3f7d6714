"""A Mixture-of-Experts language model of the Mixtral architecture (Jiang et al. 2024, "Mixtral of Experts"),
weight-compatible with Hugging Face's MixtralForCausalLM.

Mixtral is a Llama-style decoder (Touvron et al. 2023) whose feed-forward blocks are sparse mixtures of experts:

    h = x + attn(rms_norm_1(x))        grouped-query attention, RoPE on q and k (half-split pairs)
    y = h + moe(rms_norm_2(h))         router -> top-k of E SwiGLU experts, weighted by renormalised probabilities

then a final RMSNorm and an untied output projection. Each token runs only k experts, so the model holds E feed-forward
blocks' worth of parameters for the compute of k (8 experts, top-2 in Mixtral 8x7B).

Training adds the routers' load-balancing loss (Switch Transformer, Fedus et al. 2021) so that the experts share the
tokens: loss = cross_entropy + router_aux_loss_coef * mean over layers of the layers' aux_loss. (transformers
computes one aux loss on all layers' router outputs pooled together; its cross-entropy is the same as ours.)

Hugging Face's nn.Linear stores weights (out, in), ours (in, out): every 2-D Linear weight is transposed on the way in
and out (hf.py does it); the embedding table is (vocab, hidden) in both.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import tinygrad_lite.functional as F
from layers.attention import GroupedQueryAttention
from layers.kv_cache import KVCache
from layers.linear import Embedding, Linear
from layers.moe import SparseMoE
from layers.norm import RMSNorm
from layers.positional import RotaryEmbedding
from tinygrad_lite import Module, Tensor, as_generator
from tinygrad_lite.optim import AdamW, weight_decay_groups

from . import hf
from .common import GenerateMixin, as_ids, check_cache


@dataclass
class MoEConfig:
    """Mixtral hyperparameters under Hugging Face's MixtralConfig names.

    The defaults are a small model that trains on a CPU, not Mixtral 8x7B (whose config.json gives hidden_size
    4096, 32 layers, 32 heads, 8 KV heads, intermediate_size 14336, rope_theta 1e6). head_dim None means
    hidden_size / num_attention_heads. sliding_window None means full causal attention; otherwise a token sees
    itself and the sliding_window - 1 tokens before it.
    """

    vocab_size: int = 32000
    hidden_size: int = 256
    intermediate_size: int = 512
    num_hidden_layers: int = 4
    num_attention_heads: int = 8
    num_key_value_heads: int = 4
    head_dim: int | None = None
    hidden_act: str = "silu"
    max_position_embeddings: int = 4096
    initializer_range: float = 0.02
    rms_norm_eps: float = 1e-5
    rope_theta: float = 1e6
    sliding_window: int | None = None
    attention_dropout: float = 0.0
    num_experts_per_tok: int = 2
    num_local_experts: int = 8
    router_aux_loss_coef: float = 0.02
    router_jitter_noise: float = 0.0
    tie_word_embeddings: bool = False
    bos_token_id: int | None = 1
    eos_token_id: int | None = 2
    hf_extra: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        if self.head_dim is None:
            if self.hidden_size % self.num_attention_heads:
                raise ValueError(f"MoEConfig: hidden_size {self.hidden_size} is not divisible by "
                                 f"num_attention_heads {self.num_attention_heads} (or set head_dim)")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(f"MoEConfig: num_attention_heads {self.num_attention_heads} is not a multiple of "
                             f"num_key_value_heads {self.num_key_value_heads}")
        if not 1 <= self.num_experts_per_tok <= self.num_local_experts:
            raise ValueError(f"MoEConfig: num_experts_per_tok {self.num_experts_per_tok} must be in "
                             f"[1, num_local_experts {self.num_local_experts}]")
        if self.hidden_act != "silu":
            raise ValueError(f"MoEConfig: hidden_act {self.hidden_act!r} is not supported (only 'silu', SwiGLU)")
        if self.tie_word_embeddings:
            raise ValueError("MoEConfig: tie_word_embeddings=True is not supported (Mixtral's lm_head is untied)")

    @property
    def head_size(self) -> int:
        return self.head_dim if self.head_dim is not None else self.hidden_size // self.num_attention_heads

    @classmethod
    def from_hf(cls, d: dict, source: str = "config") -> MoEConfig:
        d = dict(d)
        # RoPE's base: `rope_theta` at the top level (transformers < 5) or inside `rope_parameters` (transformers 5);
        # older configs may also carry `rope_scaling`, which must be absent or plain.
        for key in ("rope_parameters", "rope_scaling"):
            rp = d.pop(key, None)
            if rp is None:
                continue
            if not isinstance(rp, dict):
                raise hf.CheckpointError(f"{source}: {key} must be an object, got {rp!r}")
            kind = rp.get("rope_type", rp.get("type", "default"))
            if kind != "default":
                raise hf.CheckpointError(f"{source}: {key} with rope_type {kind!r} is not supported "
                                         "(only plain RoPE, rope_type 'default')")
            if "rope_theta" in rp:
                d["rope_theta"] = rp["rope_theta"]
        return hf.config_from_dict(cls, d, source, model_type="mixtral")

    def to_hf(self) -> dict:
        out = hf.config_to_dict(self)
        # Both spellings, so transformers 4 (top-level) and 5 (rope_parameters) read the same base.
        out["rope_parameters"] = {"rope_theta": self.rope_theta, "rope_type": "default"}
        out.update(model_type="mixtral", architectures=["MixtralForCausalLM"])
        return out


class MixtralDecoderLayer(Module):
    """RMSNorm -> grouped-query attention -> residual; RMSNorm -> sparse MoE -> residual."""

    def __init__(self, config: MoEConfig, rope: RotaryEmbedding, rng, dtype):
        C = config.hidden_size
        self.input_layernorm = RMSNorm(C, eps=config.rms_norm_eps, dtype=dtype)
        self.self_attn = GroupedQueryAttention(C, config.num_attention_heads, config.num_key_value_heads, bias=False,
                                               rope=rope, head_dim=config.head_size,
                                               dropout=config.attention_dropout, rng=rng, dtype=dtype)
        self.post_attention_layernorm = RMSNorm(C, eps=config.rms_norm_eps, dtype=dtype)
        self.block_sparse_moe = SparseMoE(C, config.intermediate_size, config.num_local_experts,
                                          top_k=config.num_experts_per_tok, router="softmax_topk",
                                          jitter=config.router_jitter_noise, rng=rng, dtype=dtype)

    def forward(self, x: Tensor, attn_mask=None, cache: KVCache | None = None) -> Tensor:
        causal = attn_mask is None  # a sliding-window mask already contains causality
        x = x + self.self_attn(self.input_layernorm(x), attn_mask=attn_mask, is_causal=causal, cache=cache)
        return x + self.block_sparse_moe(self.post_attention_layernorm(x))  # (B, T, C)


class MixtralModel(Module):
    """The body (transformers' MixtralModel): embed_tokens, layers, norm -> hidden states (B, T, C)."""

    def __init__(self, config: MoEConfig, rng, dtype):
        self.config = config
        # One RoPE table for the whole stack (no parameters); every layer rotates at the same positions.
        rope = RotaryEmbedding(config.head_size, base=config.rope_theta, interleaved=False,
                               max_positions=min(config.max_position_embeddings, 4096))
        self.embed_tokens = Embedding(config.vocab_size, config.hidden_size, rng=rng, dtype=dtype)
        self.layers = [MixtralDecoderLayer(config, rope, rng, dtype) for _ in range(config.num_hidden_layers)]
        self.norm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps, dtype=dtype)

    def forward(self, idx: np.ndarray, cache: list | None = None) -> Tensor:
        T = idx.shape[1]
        past = len(cache[0]) if cache else 0
        mask = _sliding_window_mask(past, T, self.config.sliding_window)
        x = self.embed_tokens(idx)  # (B, T, C)
        for i, layer in enumerate(self.layers):
            x = layer(x, attn_mask=mask, cache=cache[i] if cache else None)  # RoPE positions start at `past`
        return self.norm(x)


def _sliding_window_mask(past: int, T: int, window: int | None):
    """(T, past + T) boolean, True where query past+i may see key j: j <= past+i and past+i - j < window.
    None when the window covers every key (then plain causal attention is the same thing, and cheaper)."""
    if window is None or past + T <= window:
        return None
    q = np.arange(past, past + T)[:, None]
    k = np.arange(past + T)[None, :]
    return (k <= q) & (q - k < window)


class MoEGPT(GenerateMixin, hf.PretrainedMixin, Module):
    """Mixtral-architecture language model: forward(idx, targets=None, cache=None) -> (logits, loss).

    `dtype`, `rng` and `init` as in GPT2. After every forward, `expert_counts` lists each layer's (E,) number of
    tokens routed to each expert, and `aux_loss` holds the mean of the layers' load-balancing losses (a scalar Tensor
    in the graph).
    """

    config_class = MoEConfig

    def __init__(self, config: MoEConfig, dtype=np.float32, rng: np.random.Generator | None = None,
                 init: bool = True):
        self.config, self.dtype = config, np.dtype(dtype)
        rng = as_generator(rng)
        self.model = MixtralModel(config, rng, self.dtype)
        self.lm_head = Linear(config.hidden_size, config.vocab_size, bias=False, rng=rng, dtype=self.dtype)
        self.aux_loss = None
        if init:  # transformers' Mixtral init: N(0, 0.02) for every matrix and the embedding, norms 1
            for p in self.parameters():
                if p.ndim == 2:
                    p.data[...] = rng.normal(0.0, config.initializer_range, p.shape)

    @property
    def moe_layers(self) -> list:
        return [layer.block_sparse_moe for layer in self.model.layers]

    @property
    def expert_counts(self) -> list:
        return [moe.expert_counts for moe in self.moe_layers]

    def forward(self, idx, targets=None, cache: list | None = None, last_only: bool = False):
        """idx (B, T) -> (logits (B, T, vocab), loss or None); targets, cache and last_only as in GPT2.forward.

        loss = mean cross-entropy (-100 ignored) + router_aux_loss_coef * mean of the layers' aux_loss.
        """
        idx = as_ids(idx, "MoEGPT")
        check_cache(cache, self.config.num_hidden_layers, "MoEGPT")
        x = self.model(idx, cache)  # (B, T, C)
        if last_only:
            x = x[:, -1:]  # (B, 1, C)
        logits = self.lm_head(x)  # (B, T, vocab)
        aux = [moe.aux_loss for moe in self.moe_layers]
        self.aux_loss = aux[0] if len(aux) == 1 else Tensor.stack(aux).mean()
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits, as_ids(targets, "MoEGPT targets"))
            if self.config.router_aux_loss_coef:
                loss = loss + self.aux_loss * self.config.router_aux_loss_coef
        return logits, loss

    def make_cache(self, batch_size: int = 1, max_len: int | None = None) -> list:
        """One empty KVCache per layer for up to max_len positions (default max_position_embeddings)."""
        max_len = self.config.max_position_embeddings if max_len is None else max_len
        if max_len < 1:
            raise ValueError(f"MoEGPT.make_cache: max_len must be >= 1, got {max_len}")
        return [KVCache(max_len) for _ in range(self.config.num_hidden_layers)]

    def configure_optimizer(self, weight_decay: float, learning_rate: float, betas=(0.9, 0.95), eps: float = 1e-8):
        """AdamW, weight decay on 2-D weights only (not on the RMSNorm gains)."""
        return AdamW(weight_decay_groups(self.parameters(), weight_decay), lr=learning_rate, betas=betas, eps=eps)

    # ----- Hugging Face folder format (see hf.py)

    def hf_parameters(self) -> list:
        # Every 2-D weight but the embedding table is an nn.Linear in transformers, stored (out, in).
        return [(name, p, p.ndim == 2 and name != "model.embed_tokens.weight") for name, p in self.named_parameters()]

    @classmethod
    def hf_rename(cls, key: str, config) -> str | None:
        if key.endswith("rotary_emb.inv_freq"):
            return None  # a buffer some checkpoints carry; recomputed from rope_theta
        return key
