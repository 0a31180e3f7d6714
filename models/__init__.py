"""Models built from the layers, each loading and saving the Hugging Face folder format (config.json +
model.safetensors; see hf.py):

- `GPT2` / `GPT2Config` (gpt2.py): GPT-2, weight-compatible with transformers' GPT2LMHeadModel.
- `MoEGPT` / `MoEConfig` (moe.py): a Mixtral-architecture mixture of experts, compatible with MixtralForCausalLM.
- `Transformer` / `TransformerConfig` (transformer.py): the encoder-decoder of "Attention Is All You Need".

Decoder models share one calling convention: `model(idx, targets=None, cache=None) -> (logits, loss)`, with
`cache = model.make_cache(batch_size, max_len)` for token-by-token generation.
"""

from .common import reorder_cache
from .gpt2 import GPT2, GPT2Config
from .hf import CheckpointError
from .moe import MoEConfig, MoEGPT
from .transformer import Transformer, TransformerConfig

__all__ = ["GPT2", "GPT2Config", "MoEGPT", "MoEConfig", "Transformer", "TransformerConfig", "CheckpointError",
           "reorder_cache"]
