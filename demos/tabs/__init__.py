"""One tab per concept: layout, event handlers, endpoint names and the prose the tab shows (gradio here)."""
