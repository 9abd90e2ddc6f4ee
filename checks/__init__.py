"""Checks a maintainer runs on a machine that reaches the Hugging Face Hub (see docs/real-weights.md)."""
