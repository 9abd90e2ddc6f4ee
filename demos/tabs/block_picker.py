"""`BlockPicker`: a picture on which the learner drags a block of patches (gradio's `gr.HTML`, no build step).

The value is the block in patches, counted from 0 like the pages' sliders and the API:
`{"top": 6, "left": 6, "height": 4, "width": 4}`. Props: `picture` (a URL or a data URL, see `picture_url`; a
square picture; None shows a neutral square), the grid's `rows` and `cols`, `label` (names the picture for a
screen reader) and `noun` ("Block", "Tube": the words under the picture).

In the browser the block follows the pointer (mouse, touch, pen) with no server round trip: a press outside the
block centres it there, a press inside drags it, the bottom-right handle resizes it; with the picture focused,
the arrows move it a patch and Shift+arrows resize it. Events the page may listen to:
- `release`: once per pointer gesture that changed the block, when the pointer is lifted; run the model here.
- `submit`: Enter on the focused picture; run the model with the current block.
- `change`: gradio's, on every change of the value (each patch crossed, each arrow, each update from Python);
  too frequent for a model.
Arrow keys fire no event of their own: the next `release` or `submit` (or another control's run) reads the value.
In the page, every block drawn (each patch crossed, each arrow) is announced as a DOM event `block-drawn` (its detail
the block), which a `SweepPlayer` plays back; it never reaches the server.

A handler updates the picker like any gradio component, by returning one: the props it names change, the others
keep their values. A new picture with its grid and a block that fits it:

    def pick(image):
        return BlockPicker(picture=picture_url(image), rows=14, cols=14, value={"top": 5, "left": 5, "height": 4,
                                                                              "width": 4})

    image.change(pick, image, picker)

`gr.update(value=...)` works too, from any event, the page's load included; the drawn block follows a new value. A
new grid without a block keeps the block inside it: drawn so, and read so by the next gesture or run.
"""

from __future__ import annotations

import base64
import io
import secrets
from pathlib import Path

import gradio as gr
import numpy as np
import PIL.Image

_HERE = Path(__file__).parent
# The picker's page side, in files beside this one: its js_on_load, its CSS and HTML templates.
JS = (_HERE / "block_picker.js").read_text()
CSS = (_HERE / "block_picker.css").read_text()
HTML = (_HERE / "block_picker.html").read_text()

DEFAULT_BLOCK = {"top": 6, "left": 6, "height": 4, "width": 4}
_KEYS = ("top", "left", "height", "width")


def picture_url(picture: np.ndarray | PIL.Image.Image, image_format: str = "PNG") -> str:
    """A picture (HxWx3 uint8 array or PIL image) as a data URL for `BlockPicker(picture=...)`: PNG by default,
    "JPEG" for a photo a third the size."""
    image = picture if isinstance(picture, PIL.Image.Image) else PIL.Image.fromarray(np.asarray(picture, np.uint8))
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format=image_format, **({"quality": 90} if image_format == "JPEG" else {}))
    return f"data:image/{image_format.lower()};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


class BlockPicker(gr.HTML):
    """A picture with a draggable block of patches; its value is the block (see the module's docstring)."""

    def __init__(self, value: dict | None = None, *, picture: str | None = None, rows: int = 16, cols: int = 16,
                 label: str = "Picture", noun: str = "Block", elem_id: str | None = None, **kwargs):
        super().__init__(value=value if value is not None else DEFAULT_BLOCK, label=label, html_template=HTML,
                         css_template=CSS, js_on_load=JS, elem_id=elem_id, picture=picture, rows=rows, cols=cols,
                         noun=noun, uid=elem_id or f"bp-{secrets.token_hex(4)}", **kwargs)

    def _fit(self, block) -> dict:
        """`block` as four ints inside the grid (at least 1x1); None or "" is the default block."""
        if not block:
            block = DEFAULT_BLOCK
        rows, cols = int(self.props["rows"]), int(self.props["cols"])
        height = min(max(int(block["height"]), 1), rows)
        width = min(max(int(block["width"]), 1), cols)
        return {"top": min(max(int(block["top"]), 0), rows - height), "left": min(max(int(block["left"]), 0), cols - width),
                "height": height, "width": width}

    def preprocess(self, payload: dict | None) -> dict:
        """Returns: the block, {"top", "left", "height", "width"} in patches (ints)."""
        return self._fit(payload)

    def postprocess(self, value: dict | None) -> dict:
        """Parameters: value: the block to draw, {"top", "left", "height", "width"} in patches."""
        return self._fit(value)

    def api_info(self) -> dict:
        return {"type": "object", "properties": {key: {"type": "integer"} for key in _KEYS}, "required": list(_KEYS)}

    def example_payload(self) -> dict:
        return dict(DEFAULT_BLOCK)

    def example_value(self) -> dict:
        return dict(DEFAULT_BLOCK)
