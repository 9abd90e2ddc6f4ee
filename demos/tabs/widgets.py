"""Gradio pieces every tab shows: safe upload components, output pictures with their alt text and captions, the claim's
classes, the call to action."""

from __future__ import annotations

import io
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import gradio as gr
import numpy as np
import PIL.Image
from gradio import processing_utils

from demos import cache, images, videos
from demos.errors import UserError

log = logging.getLogger(__name__)


OFFLINE_DEMO_BANNER = (
    "⚠️ **Offline demo mode**: every model here is a *tiny random-weight replica*. The interface works, "
    "but every reconstruction, prediction, label and answer is meaningless. Restart without "
    "`--offline-demo` (and with the Hub reachable) for the real checkpoints."
)


def _explained_upload_error(component, error: Exception, payload, check, fallback: str) -> gr.Error:
    """Let `check` (a reader from `demos.images` or `demos.videos`) say what is wrong with an upload that gradio could
    not take. The error names its `input_component`, for `api_inputs` to put the parameter's name in front."""
    if isinstance(error, gr.Error):
        explained = error
    elif isinstance(error, UserError):  # the component's own check (`VideoInput`) said it already
        explained = gr.Error(str(error))
    else:
        explained = gr.Error(fallback)
        try:
            check(getattr(payload, "path", None))
        except UserError as reason:
            explained = gr.Error(str(reason))
        except Exception:
            log.warning("Upload preprocessing failed: %s", error)
    explained.input_component = component
    return explained


class ImageInput(gr.Image):
    """`gr.Image` that explains unreadable uploads. Use it through `image_input`.

    gr.Image opens every upload in `preprocess`; a file that is not an image would otherwise end as an
    unexplained ComponentProcessingError. Here `demos.images` says what was wrong, as a gr.Error (which
    gradio passes through to the page and to gradio_client).
    """

    is_template = True  # gradio's convention for subclasses: render with the parent's (Image) frontend
    # No __init__ override: gradio builds the page config from the constructor's signature.

    def preprocess(self, payload):
        try:
            return super().preprocess(payload)
        except Exception as error:
            raise _explained_upload_error(self, error, payload, images.load_image,
                                          "This file could not be opened as an image. Try a PNG or JPEG.") from error


class VideoInput(gr.Video):
    """`gr.Video` whose unreadable uploads reach the learner as a sentence, not a bare error.

    Keep "upload" among its sources and set no `format`, so gradio never converts a video (which needs an
    ffmpeg binary); decode with `demos.videos`. gr.Video takes any file; here a file that is no video (a picture
    sent as a clip) is refused in preprocessing, as gr.Image refuses what is no image, so that its message can name
    the parameter (`api_inputs`).
    """

    is_template = True  # gradio's convention for subclasses: render with the parent's (Video) frontend

    def preprocess(self, payload):
        try:
            path = super().preprocess(payload)
            if path is not None:
                videos.probe_video(path)
            return path
        except Exception as error:
            raise _explained_upload_error(
                self, error, payload, videos.probe_video,
                "This file could not be read as a video. Try an MP4, WebM, MOV or MKV file.") from error


def image_input(label: str = "Image", **kwargs) -> ImageInput:
    """An image upload that hands the handler the file's path, as uploaded (`demos.images` converts modes itself)."""
    return ImageInput(label=label, type="filepath", image_mode=None,
                      sources=kwargs.pop("sources", ["upload", "clipboard", "webcam"]), **kwargs)


class OutputImage(gr.Image):
    """`gr.Image` for results, whose files are whole before anyone can fetch them. Use it through `output_image`.

    gradio saves an output picture to a file named by the hash of its bytes and rewrites that file in place on
    every call (`processing_utils.save_pil_to_cache`): two visitors given the same picture at once can download a
    file that is being rewritten, cut short. Here the PNG is written under a temporary name and renamed into place,
    as gradio's `save_file_to_cache` does for files, and a picture already there is only touched.
    """

    is_template = True  # render with the parent's (Image) frontend

    def postprocess(self, value):
        if isinstance(value, np.ndarray):
            value = save_png(value, self.GRADIO_CACHE)
        return super().postprocess(value)


# zlib's fastest level: a result's pictures encode several times faster than at Pillow's default (6), still
# lossless, and photos barely grow (flat grey and heat-map areas compress well at any level).
PNG_COMPRESS_LEVEL = 1


_SAVED_PNGS = cache.LRUCache(64)  # (picture's digest, cache folder) -> its file: a picture shown again is not re-encoded


def save_png(array: np.ndarray, cache_dir: str) -> str:
    """The picture as a PNG in gradio's cache, named as gradio names it, written whole (temporary file, rename)."""
    array = array.astype(np.uint8, copy=False)
    key = (images.image_digest(array), str(cache_dir))
    known = _SAVED_PNGS.get(key)
    if known is not None and _touch(known):  # the same picture again (the model's view of a re-run image)
        return known
    with io.BytesIO() as buffer:
        PIL.Image.fromarray(array).save(buffer, "png", compress_level=PNG_COMPRESS_LEVEL)
        data = buffer.getvalue()
    folder = Path(cache_dir) / processing_utils.hash_bytes(data)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "image.png"
    if not _touch(str(path)):  # else the same bytes are there already
        handle, staging = tempfile.mkstemp(dir=folder, prefix=".image.png.")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
            os.replace(staging, path)
        except BaseException:
            Path(staging).unlink(missing_ok=True)
            raise
    _SAVED_PNGS.put(key, str(path))
    return str(path)


def _touch(path: str) -> bool:
    """Whether the file is there; if so, `delete_cache` ages it from now."""
    try:
        os.utime(path)
        return True
    except FileNotFoundError:
        return False


# The class of the result a concept is about: in a course page's 800-pixel column or on a phone its picture fills
# its box's width (app.py's CSS); the layout gives that box the most room on the page.
RESULT = "result"


# The class of the outputs that carry the chapter's claim: a course's iframe (800x900) shows each of them in its first
# screen, once the example has loaded.
CLAIM = "claim"


CLAIM_PICTURE_PX = 300  # the height of a claim's picture: two side by side and the gesture fit one screen


def output_image(label: str, **kwargs) -> OutputImage:
    """Output images go out as PNG: learners and scripts compare pixels, WebP would blur them."""
    return OutputImage(label=label, format="png", type="numpy", interactive=False, **kwargs)


def describe_pictures(numbers: gr.JSON, pictures: list[gr.Image], describe: Callable[[dict], list[str]]) -> None:
    """Give each output picture a text alternative that says what it shows, whenever a new result's numbers arrive.

    `describe(numbers)` returns one sentence per picture ("The image with 147 of 196 patches hidden, in grey.").
    gradio shows an output picture as a button around the <img>: its alt text is also the button's name. A private,
    unqueued event: the pictures are described as soon as they arrive, on every page that shows them.
    """
    def alt_texts(values: dict | None):
        updates = [gr.update(alt_text=text) for text in describe(values)] if values else [gr.skip()] * len(pictures)
        return updates if len(pictures) > 1 else updates[0]  # gradio takes one output's value bare

    numbers.change(alt_texts, numbers, pictures, api_name=False, queue=False, show_progress="hidden")


def caption_on(numbers: gr.JSON, caption: gr.Markdown, describe: Callable[[dict], str]) -> None:
    """Write `describe(numbers)` into `caption` whenever a new result's numbers arrive: a line under a claim, drawn
    from the numbers every client gets, so the endpoint's outputs stay as they are. Private and unqueued."""
    def write(values: dict | None):
        return describe(values) if values else gr.skip()

    numbers.change(write, numbers, caption, api_name=False, queue=False, show_progress="hidden")


def call_to_action(text: str) -> gr.Markdown:
    """The line a tab (and its concept page) leads with: what to do first. The heading below the page's title."""
    return gr.Markdown(f"## {text}", elem_classes=["call-to-action"])


def block_sliders(grid: int, block: tuple[int, int, int, int], *, sizes: tuple[str, str] = ("Height", "Width"),
                  elem_ids: tuple[str | None, ...] = (None, None, None, None)) -> tuple[gr.Slider, ...]:
    """The sliders of a block's exact place on a `grid`-sided grid of patches, under the picture it is dragged on:
    top row and left column in one row, its height and width (`sizes` their labels) in the next."""
    top, left, height, width = block
    with gr.Row():
        sliders = [gr.Slider(0, grid - 1, value=top, step=1, label="Top row", elem_id=elem_ids[0]),
                   gr.Slider(0, grid - 1, value=left, step=1, label="Left column", elem_id=elem_ids[1])]
    with gr.Row():
        sliders += [gr.Slider(1, grid, value=height, step=1, label=sizes[0], elem_id=elem_ids[2]),
                    gr.Slider(1, grid, value=width, step=1, label=sizes[1], elem_id=elem_ids[3])]
    return tuple(sliders)
