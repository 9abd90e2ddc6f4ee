"""The computation of each concept: arrays and tensors in, dataclasses out, no gradio anywhere below here."""
