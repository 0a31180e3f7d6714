"""Layers built on tinygrad_lite: each a Module whose math mirrors its paper, with checked gradients.

linear (Linear, Embedding), norm (LayerNorm, RMSNorm), dropout, mlp (MLP, SwiGLU), positional (sinusoidal, learned,
rotary), attention (MultiHeadAttention, GroupedQueryAttention), kv_cache (KVCache), moe (SparseMoE).

The ops these layers add to the engine's live beside them, each twice: as one fused Function with a hand-written
backward and as its reference twin in primitive ops (`*_reference`), chosen on every call by
`tinygrad_lite.is_fused_enabled()`: attention_function (scaled dot-product attention, and GPT-2's packed
self-attention), mlp_function (GPT-2's MLP), moe_function (the experts' dispatch and combine), positional (RoPE).
"""

from .attention import GroupedQueryAttention, MultiHeadAttention
from .attention_function import (
    ScaledDotProductAttention,
    causal_mask,
    scaled_dot_product_attention,
    scaled_dot_product_attention_reference,
)
from .dropout import Dropout
from .kv_cache import KVCache
from .linear import Embedding, Linear
from .mlp import MLP, SwiGLU
from .moe import SparseMoE
from .norm import LayerNorm, RMSNorm
from .positional import (
    LearnedPositionalEmbedding,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
    sinusoidal_positions,
)

__all__ = [
    "MLP",
    "Dropout",
    "Embedding",
    "GroupedQueryAttention",
    "KVCache",
    "LayerNorm",
    "LearnedPositionalEmbedding",
    "Linear",
    "MultiHeadAttention",
    "RMSNorm",
    "RotaryEmbedding",
    "ScaledDotProductAttention",
    "SinusoidalPositionalEncoding",
    "SparseMoE",
    "SwiGLU",
    "causal_mask",
    "scaled_dot_product_attention",
    "scaled_dot_product_attention_reference",
    "sinusoidal_positions",
]
