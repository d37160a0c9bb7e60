"""Benchmarks: the paper's tables on the paper's images (quality) and per-step cost (speed)."""
