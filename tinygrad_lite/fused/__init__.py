"""Fused Functions: one Function for what the reference path builds from many primitive ops, with a hand-written
backward. `tinygrad_lite.functional` chooses between them and their composed twins (see `set_fused`)."""
