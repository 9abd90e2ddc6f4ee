"""The one exception type a learner is meant to read.

Compute code raises `UserError` with a sentence a learner understands; the UI layer
(`demos.ui.gradio_errors`) turns it into a `gr.Error`. Keeping gradio out of here lets the
compute modules run and be tested without a UI.
"""


class UserError(Exception):
    """A problem with the input or the set-up that the user can fix (bad file, absurd value, no weights)."""
