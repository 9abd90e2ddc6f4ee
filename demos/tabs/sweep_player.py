"""`SweepPlayer`: plays a sweep back in the page while the learner's hand moves, with no request to the server.

A `gr.HTML` without a build step (gradio 6). Its `sweep` prop is a `demos.sweeps.Playback` payload: every setting the
gesture reaches, with its numbers as HTML and its pictures in one sprite sheet. The player listens to the gesture
named by `source` (the elem_id of a `BlockPicker`, which announces each block it draws, or of a `gr.Slider`, whose
range input it follows) and draws the setting under the pointer into the page's own outputs (`pictures` and
`texts`: name -> CSS selector of a gr.Image or gr.Markdown). The gesture's release then runs the endpoint as before,
which answers from the same sweep: what stays on the page is what the hand saw.

The player itself shows one line: what is live ("Live: all 169 positions"), or how far the sweep is.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

_HERE = Path(__file__).parent
JS = (_HERE / "sweep_player.js").read_text()

# `data-ready`: every setting the gesture reaches is in the sweep (tests wait for it).
HTML = """<p class="sp-note" aria-live="polite" data-ready="${Boolean(sweep && sweep.total && sweep.done >= sweep.total)}"
>${sweep && sweep.note ? sweep.note : ""}</p>"""
CSS = """.sp-note { margin: 0; min-height: 1.2em; color: var(--body-text-color-subdued); font-size: var(--text-sm); }"""

# A setting's key, as the JS matches it: values rounded so that a slider's 0.15000000000000002 is 0.15.
SETTING_DECIMALS = 6


class SweepPlayer(gr.HTML):
    """Plays `sweep` (a `Playback.payload()`, or None) on the gesture `source` (see the module's docstring).

    Built with `source`, `kind`, `pictures` and `texts`; an event's update names only the new sweep:
    `SweepPlayer(sweep=Playback(...).payload())`.
    """

    draws_pictures = False  # it shows a line of text; the pictures it plays are the page's own (`widest_result`)

    def __init__(self, sweep: dict | None = None, *, source: str = "", kind: str = "block",
                 pictures: dict[str, str] | None = None, texts: dict[str, str] | None = None, value: str = "",
                 elem_id: str | None = None, **kwargs):
        """`value`: a name of the sweep played, which the page sends back (a handler that finds its sweep already
        played there can skip sending it again). A handler updates the player by returning `SweepPlayer(sweep=...)`
        (only the props it names change)."""
        if kind not in ("block", "slider"):
            raise ValueError(f"kind is 'block' or 'slider', not {kind!r}")
        super().__init__(value=value, html_template=HTML, css_template=CSS, js_on_load=JS, elem_id=elem_id,
                         sweep=sweep, source=source, kind=kind, pictures=pictures or {}, texts=texts or {},
                         decimals=SETTING_DECIMALS, container=False, padding=False, **kwargs)

    @staticmethod
    def stopped() -> SweepPlayer:
        """The update that stops the playback (the input or the other controls changed: the sweep no longer holds)."""
        return SweepPlayer(sweep=None)

    def api_info(self) -> dict:
        return {"type": "string"}
