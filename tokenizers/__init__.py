"""Byte-level BPE tokenizers (in progress)."""
