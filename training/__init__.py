"""Training: datasets, the loop, checkpoints and metrics (in progress)."""
