"""Samplers: logits processors and the generation loop (in progress)."""
