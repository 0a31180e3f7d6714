"""Models: the encoder-decoder Transformer, GPT-2 and a Mixtral-style MoE (in progress)."""
