"""A concept page opened at a setting: query parameters in, a "Link to this view" out.

`/masked-autoencoder?example=coffee&ratio=0.9` opens on the bundled coffee picture with 90% of its patches hidden,
already reconstructed. Each tab names its link's settings: `example` (a bundled picture or clip, by file name without
its extension) and the components of its gesture, each under a short key. A value is read the way its component
would take it (a slider's range and step, a dropdown's or radio's choices, by their text, so a number choice
reads as its number; a text box's length), so a link can only
open what the page itself could show. A bad value leaves that control at its default, and the page says so.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from urllib.parse import urlencode

import gradio as gr

from demos.errors import UserError

EXAMPLE_KEY = "example"
MAX_TEXT_CHARS = 500  # a question in a link; the handler applies its own limit again


@dataclass
class Link:
    """What a concept page's address may set: its example input (`example`: a bundled file by name) and its gesture's
    controls (`settings`: query key -> component), in the order the page shows them."""

    path: str  # the concept's page, e.g. "masked-autoencoder"
    example: gr.components.Component  # the picture or clip input
    examples: list[str]  # the bundled files the example may name
    settings: dict[str, gr.components.Component] = field(default_factory=dict)

    def example_names(self) -> dict[str, str]:
        """File name without its extension -> path."""
        return {Path(path).stem: path for path in self.examples}

    def read(self, query: Mapping[str, str]) -> tuple[dict, list[str]]:
        """The values a query sets (component -> value) and a sentence for each value it could not take."""
        values, problems = {}, []
        if EXAMPLE_KEY in query:
            names = self.example_names()
            name = query[EXAMPLE_KEY]
            if name in names:
                values[self.example] = names[name]
            else:
                problems.append(f"`{EXAMPLE_KEY}={_shown(name)}` is not one of the bundled examples "
                                f"({', '.join(sorted(names))})")
        for key, component in self.settings.items():
            if key not in query:
                continue
            try:
                values[component] = read_value(component, query[key])
            except UserError as error:
                problems.append(f"`{key}={_shown(query[key])}`: {error}")
        return values, problems

    def query(self, example_path: str | None, values: Mapping[str, object]) -> tuple[str, str]:
        """This view's address (from the page's root) and a note on what it leaves out.

        `values` are the settings' current values by key. The example travels by name when the picture or clip is
        one of the bundled files (compared by content: a visitor's upload of the same file counts too)."""
        params, note = {}, ""
        name = bundled_name(example_path, tuple(self.examples)) if example_path else None
        if name is not None:
            params[EXAMPLE_KEY] = name
        elif example_path:
            note = "Your own picture or clip cannot travel in a link: the link opens on the default example."
        for key, component in self.settings.items():
            if values.get(key) is not None:
                params[key] = _text(component, values[key])
        return f"/{self.path}?{urlencode(params)}", note


def read_value(component, text: str):
    """`text` as `component` would take it; UserError saying what it takes otherwise."""
    if isinstance(component, gr.Slider | gr.Number):
        low = getattr(component, "minimum", None)
        high = getattr(component, "maximum", None)
        whole = getattr(component, "step", None) == 1 or getattr(component, "precision", None) == 0
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or (whole and value != int(value)) or \
                (low is not None and value < low) or (high is not None and value > high):
            kind = "a whole number" if whole else "a number"
            span = f" from {_number(low)} to {_number(high)}" if low is not None and high is not None else ""
            raise UserError(f"it takes {kind}{span}")
        return int(value) if whole else value
    if isinstance(component, gr.Dropdown | gr.Radio):
        choices = [choice[1] if isinstance(choice, tuple | list) else choice for choice in component.choices]
        for choice in choices:  # by its text: a choice may be a number (the address holds text)
            if text in (str(choice), _text(component, choice)):
                return choice
        raise UserError(f"it takes one of {', '.join(_text(component, choice) for choice in choices)}")
    if isinstance(component, gr.Textbox):
        if not text.strip() or len(text) > MAX_TEXT_CHARS:
            raise UserError(f"it takes 1 to {MAX_TEXT_CHARS} characters")
        return text
    raise TypeError(f"A link cannot set a {type(component).__name__}")


def notice(problems: list[str]) -> str:
    """What the page says about the values its address could not take."""
    if not problems:
        return ""
    return ("⚠️ This link asked for something the page cannot show, so it opened with the default instead: "
            + "; ".join(problems) + ".")


@cache
def _digests(paths: tuple[str, ...]) -> dict[str, str]:
    return {_digest(path): Path(path).stem for path in paths}


def _digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def bundled_name(path: str, examples: tuple[str, ...]) -> str | None:
    """The bundled example whose content `path` holds, by name, or None."""
    try:
        return _digests(examples).get(_digest(path))
    except OSError:
        return None


def _number(value) -> str:
    return f"{value:g}"


def _text(component, value) -> str:
    if isinstance(component, gr.Slider | gr.Number) and isinstance(value, float) and value.is_integer() \
            and (getattr(component, "step", None) == 1 or getattr(component, "precision", None) == 0):
        return str(int(value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def _shown(text: str, limit: int = 40) -> str:
    """A query value quoted back to the learner, short and without markdown of its own."""
    text = text if len(text) <= limit else text[:limit] + "…"
    return text.replace("`", "'")


def link_control(link: Link) -> None:
    """A "Link to this view" button; its text box shows the address of the page at the current settings."""
    with gr.Row(equal_height=True):
        button = gr.Button("🔗 Link to this view", size="sm", scale=0, min_width=160)
        address = gr.Textbox(label="Address of this view", visible=False, interactive=False,
                             buttons=["copy"], scale=1, elem_classes=["view-link"])
        note = gr.Markdown(visible=False)
    keys = list(link.settings)

    def view_path(example_path, *values):
        path, left_out = link.query(example_path, dict(zip(keys, values, strict=True)))
        return gr.Textbox(value=path, visible=True), gr.Markdown(value=left_out, visible=bool(left_out))

    # The address is the page's own: in a course page's iframe, the Space's host, which is what an iframe's src needs.
    button.click(view_path, [link.example, *link.settings.values()], [address, note], api_name=False,
                 queue=False).then(None, address, address, js="(path) => new URL(path, location.href).href",
                                   api_name=False, queue=False)
