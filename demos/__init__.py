"""The concepts of the chapter: shared helpers here, `compute/` (no gradio) and `tabs/` (the page) below."""
