"""Layers built on tinygrad_lite: each a Module whose math mirrors its paper, with checked gradients.

linear (Linear, Embedding), norm (LayerNorm, RMSNorm), dropout, mlp (MLP, SwiGLU) and mlp_function (GPT-2's MLP
fused), positional (sinusoidal, learned, rotary), attention_function (scaled dot-product attention, fused, unfused
and packed), attention (MultiHeadAttention, GroupedQueryAttention), kv_cache (KVCache), moe (SparseMoE). Large calls
split their work across cores with tinygrad_lite.threads (LAYERS_NUM_THREADS=1 keeps everything on the calling
thread).
"""

from .attention import GroupedQueryAttention, MultiHeadAttention
from .attention_function import (
    ScaledDotProductAttention,
    causal_mask,
    scaled_dot_product_attention,
    scaled_dot_product_attention_unfused,
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
    "scaled_dot_product_attention_unfused",
    "sinusoidal_positions",
]
