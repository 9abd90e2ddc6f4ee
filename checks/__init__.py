"""Checks a maintainer runs on a machine that reaches the Hugging Face Hub (see README, "Check it on the real weights")."""
