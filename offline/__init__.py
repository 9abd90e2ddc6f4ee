"""Test, benchmark and offline-demo tooling: random-weight replicas and a tiny LLM. Never imported by the
product modules, except lazily through `checkpoints.enable_offline_demo`."""
