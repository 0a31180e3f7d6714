"""Layers built on tinygrad_lite: linear, embedding, norms, MLPs, positional encodings, attention, MoE (in progress)."""
