"""Gradio pieces every tab shares: error translation, safe upload components, loading progress, the
example a page opens with, endpoint names."""

from __future__ import annotations

import contextvars
import functools
import inspect
import io
import logging
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np
import PIL.Image
from gradio import processing_utils
from gradio.context import LocalContext

import checkpoints
from demos import cache, images, results, videos, zerogpu
from demos.errors import UserError
from demos.tabs import links

log = logging.getLogger(__name__)

# Model-heavy events share one concurrency group: one at a time on a CPU machine (two models at once only thrash
# 2 vCPUs), side by side on ZeroGPU (app.py sets the group's limit).
MODEL_CONCURRENCY_ID = "models"

OFFLINE_DEMO_BANNER = (
    "⚠️ **Offline demo mode**: every model here is a *tiny random-weight replica*. The interface works, "
    "but every reconstruction, prediction, label and answer is meaningless. Restart without "
    "`--offline-demo` (and with the Hub reachable) for the real checkpoints."
)

_UNEXPECTED = "Something went wrong on our side while computing this; the details are in the server log."


def _as_gradio_error(error: Exception) -> gr.Error:
    if isinstance(error, gr.Error):
        return error
    if isinstance(error, UserError):
        return gr.Error(str(error))
    log.exception("Unexpected error in an event handler")
    return gr.Error(_UNEXPECTED)


def gradio_errors(fn):
    """Run an event handler so that every failure reaches the page (and gradio_client) as a gr.Error.

    `UserError` keeps its message; anything else is logged with its traceback and reported plainly.
    Works for plain functions and for generators (streamed outputs). The signature is kept, so gradio
    still sees `gr.Progress` defaults.
    """
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def generator_wrapper(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as error:
                raise _as_gradio_error(error) from error
        return generator_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as error:
            raise _as_gradio_error(error) from error
    return wrapper


# Whole results shared by every visitor (`action(name)`): a class sending the example's request at once computes
# it once. Entries hold a result's pictures and texts (a few MB for the largest, 6.2-6.3's seven pictures).
RESULT_CACHE_ENTRIES = 128
RESULT_CACHE_BYTES = 256 * 2**20
RESULTS = results.ResultCache(RESULT_CACHE_ENTRIES, RESULT_CACHE_BYTES)
_NOT_A_REQUEST_VALUE = (gr.Progress, gr.Request, gr.EventData)  # what gradio adds to a handler's arguments


def _signed_in() -> bool:
    """Whether the visitor's ZeroGPU token came with the request: only when the page around the app is
    huggingface.co (a course site's iframe sends none)."""
    request = LocalContext.request.get(None)
    headers = getattr(request, "headers", None) or {}
    return bool(headers.get("x-ip-token"))


def _run(fn, args, kwargs):
    """`fn` for one visitor's action: where ZeroGPU refuses or fails a GPU call, the whole action again on the
    Space's CPU, planned for it (`zerogpu.on_cpu`)."""
    with zerogpu.request_scope(signed_in=_signed_in()) as runs:
        try:
            return fn(*args, **kwargs)
        except zerogpu.GpuUnavailable as refusal:
            runs.clear()
            with zerogpu.on_cpu(refusal.why):
                return fn(*args, **kwargs)


def _scoped_stream(fn, args, kwargs):
    with zerogpu.request_scope(signed_in=_signed_in()) as runs:
        try:
            yield from fn(*args, **kwargs)
        except zerogpu.GpuUnavailable as refusal:
            runs.clear()
            with zerogpu.on_cpu(refusal.why):
                yield from fn(*args, **kwargs)  # the page shows this stream in place of the refused one


def _stream(fn, args, kwargs):
    """`_scoped_stream`, each step in one context: gradio runs every step of a stream in a copy of its own."""
    context = contextvars.copy_context()
    items = context.run(_scoped_stream, fn, args, kwargs)
    try:
        while True:
            try:
                item = context.run(next, items)
            except StopIteration:
                return
            yield item
    finally:
        context.run(items.close)


SHARED_RESULT_NOTE = "\n\n♻️ *Someone asked exactly this before: the Space's shared result, computed once.*"


def _marked(value, hit: bool, numbers: int | None, summary: int | None):
    """The result with `from_result_cache` in its numbers (the output at index `numbers`, a dict) and, when it came
    from the cache, a line saying so under its summary (the text at index `summary`)."""
    if not isinstance(value, tuple):
        return value
    value = list(value)
    if numbers is not None and isinstance(value[numbers], dict):
        value[numbers] = {**value[numbers], "from_result_cache": hit}
    if hit and summary is not None and isinstance(value[summary], str):
        value[summary] += SHARED_RESULT_NOTE
    return tuple(value)


def action(name: str | None = None, *, numbers: int | None = -1, summary: int | None = -2):
    """Decorate a tab's action (a handler that runs models, a plain function or a stream).

    - Every failure reaches the page and gradio_client as a gr.Error (`gradio_errors`).
    - On ZeroGPU each GPU function runs where it pays (`gpu_functions.gpu_task`), and when ZeroGPU refuses or fails
      a call, the action runs again on the Space's CPU (`device_note` says so on the page).
    - With `name`, the action needs its files: a null one is refused before it runs (`api_inputs`, `files_needed`).
    - With `name`, identical requests (the same action, the same files, the same values) are answered from the
      shared `RESULTS`, running once however many visitors send them at once; `numbers` is the index of the
      result's numbers (a dict), which then say `from_result_cache`, and `summary` the index of the markdown
      under which a result from the cache says so.

    The signature is kept, so gradio still injects `gr.Progress` and `gr.Request`.
    """

    def decorate(fn):
        def key(args, kwargs):
            values = [*args, *kwargs.values()]
            return results.request_key(name, [v for v in values if not isinstance(v, _NOT_A_REQUEST_VALUE)]) if name else None

        if inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def stream_action(*args, **kwargs):
                try:
                    cache_key = key(args, kwargs)
                    if cache_key is None:
                        yield from _stream(fn, args, kwargs)
                        return
                    for value, hit in RESULTS.stream_or_compute(cache_key, lambda: _stream(fn, args, kwargs)):
                        yield _marked(value, hit, numbers, summary)
                except Exception as error:
                    raise _as_gradio_error(error) from error

            stream_action.files_needed = bool(name)
            return stream_action

        @functools.wraps(fn)
        def plain_action(*args, **kwargs):
            try:
                cache_key = key(args, kwargs)
                if cache_key is None:
                    return _run(fn, args, kwargs)
                value, hit = RESULTS.get_or_compute(cache_key, lambda: _run(fn, args, kwargs))
                return _marked(value, hit, numbers, summary)
            except Exception as error:
                raise _as_gradio_error(error) from error

        plain_action.files_needed = bool(name)
        return plain_action

    return decorate


def device_note() -> str:
    """One line for the page when this action runs on the Space's CPU because ZeroGPU could not run it (ZeroGPU
    only; else empty)."""
    why = zerogpu.cpu_reason()
    if why is None:
        return ""
    seconds = sum(run.seconds for run in zerogpu.runs() if run.device == "cpu")
    took = f" ({seconds:.1f} s)" if seconds else ""
    where = ("" if _signed_in() else
             " Signed-in visitors have GPU time of their own: open this Space on huggingface.co and sign in there.")
    return f"\n\n🖥️ **Ran on the Space's CPU**{took}: {why}.{where}"


def device_numbers() -> dict:
    """Where each model computation of this action ran, for its numbers (ZeroGPU only; else nothing)."""
    if not zerogpu.ON_ZERO_GPU:
        return {}
    return {"ran_on": [{"function": run.function, "device": run.device, "seconds": round(run.seconds, 3),
                        "why": run.why, "fallback": run.fallback, "asked": run.asked} for run in zerogpu.runs()]}


def api_doc(**limits):
    """Fill the placeholders of a handler's docstring (`{max_ratio}`) with the limits the code enforces.

    The docstring is the endpoint's description on the API page and its MCP tool's description for an
    assistant, so the ranges it states come from the same constants as the checks. Put it closest to the
    `def`: wrappers copy the docstring when they wrap.
    """
    def fill(fn):
        fn.__doc__ = inspect.cleandoc(fn.__doc__).format(**limits)
        return fn
    return fill


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


def notes_caption(numbers: dict) -> str:
    """A few words for a claim's caption: the result came from the shared cache, or the Space's CPU ran it because
    ZeroGPU could not (the summary, folded below, says why)."""
    notes = ""
    if numbers.get("from_result_cache"):
        notes += " ♻️ *Someone asked exactly this before: the shared result.*"
    if any(run.get("fallback") for run in numbers.get("ran_on", [])):
        notes += " 🖥️ *Ran on the Space's CPU: ZeroGPU could not run it (the details below say why).*"
    return notes


def ensure_loaded(names: list[str], progress: gr.Progress | None) -> None:
    """Load checkpoints, telling the learner while the first (slow) load happens.

    Not on ZeroGPU: there every checkpoint is resident from start-up, or refused by the GPU function.
    """
    if zerogpu.ON_ZERO_GPU:
        return
    for i, name in enumerate(names):
        if not checkpoints.is_loaded(name) and progress is not None:
            hub_id = checkpoints.get(name).hub_id
            progress(i / max(len(names), 1), desc=f"Loading {hub_id} (first use only; later calls are fast)…")
        checkpoints.load(name)


class LatestPerSession:
    """Which prepare is each session's current one. `begin(request)` makes the caller the current one and
    returns `still_wanted()`: False once a newer prepare of the same session has begun, so a stale prepare
    (gradio cancels an event but lets its running thread finish) keeps nothing. API clients are sessions too."""

    MAX_SESSIONS = 1024  # the oldest sessions are forgotten (their prepares then count as stale)

    def __init__(self):
        self._latest: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def begin(self, request: gr.Request | None) -> Callable[[], bool]:
        session = getattr(request, "session_hash", None) or "no session"
        token = object()
        with self._lock:
            self._latest[session] = token
            self._latest.move_to_end(session)
            while len(self._latest) > self.MAX_SESSIONS:
                self._latest.popitem(last=False)
        return lambda: self._latest.get(session) is token


def prepare_on(triggers: list, fn, inputs: list, output, api_name: str) -> None:
    """Run `fn`, a clip's background preparation, whenever one of `triggers` picks or resamples a clip.

    The model events' concurrency_id: a prepare never runs beside a click, a load or another visitor's work.
    One per session: `always_last` keeps only the newest trigger waiting, and the newest cancels the running
    one (gradio lets its thread finish its step; `gpu_functions` runs one GPU function at a time, and
    `LatestPerSession` makes it keep nothing). Quiet on the page: no progress, its numbers in a hidden output.

    Undocumented: it only warms the cache for the page's next click, so it is no assistant's tool, and gradio
    serves every documented endpoint as an MCP tool. Scripts still call it by name, every argument in order.
    """
    event = gr.on(triggers, fn, inputs, [output], api_name=api_name, concurrency_id=MODEL_CONCURRENCY_ID,
                  trigger_mode="always_last", show_progress="hidden", api_visibility="undocumented")
    gr.on(triggers, None, cancels=[event], api_visibility="private")


def on_pick(component, examples: gr.Examples, fn, inputs: list, outputs, **kwargs) -> list:
    """Run `fn` when the learner picks a new picture or clip: an upload, a recording or a paste (`input`), or one of
    `examples`. Not on `change`: a page opened at a link's setting sets the input and its controls at once, and a
    `change` would run `fn` with the controls' old values. Returns both events, for what follows them."""
    return [component.input(fn, inputs, outputs, **kwargs),
            examples.load_input_event.then(fn, inputs, outputs, **{**kwargs, "api_name": False})]


def endpoint(name: str, public: bool) -> str | bool:
    """The `api_name` of a tab's action: its name where the tab owns the endpoint, none on a repeat of the tab.

    A tab is built once on the full page and again on its own concept page; gradio would publish the
    repeat as a second endpoint ("/tube_predict_1"), so the repeat's events stay private.
    """
    return name if public else False


def call_to_action(text: str) -> gr.Markdown:
    """The line a tab (and its concept page) leads with: what to do first. The heading below the page's title."""
    return gr.Markdown(f"## {text}", elem_classes=["call-to-action"])


READY_FOLDER = Path(tempfile.gettempdir()) / "pdr-ready"  # files of the opening examples' results, kept for the process
_READY_RESULTS: dict[str, tuple] = {}  # example key -> its outputs
_READY_LOCKS: dict[str, threading.Lock] = {}  # example key -> the lock its one computation holds
_READY_LOCK = threading.Lock()  # guards _READY_LOCKS


@dataclass
class ReadyExample:
    """The bundled example a tab opens with, and how to compute its result.

    `compute(progress)` returns the values of `outputs` for the example already in the tab's inputs. The
    result is computed by the first visitor who needs it and then kept for the life of the process,
    so a page opens with its result in place without slowing the Space's start-up.

    `link` and `run` open a concept page at the setting its address asks for (`links`): `run(values, progress)` returns
    `outputs` for the inputs the address set (component -> value; the others keep their defaults), and `notice`
    says what the address asked for that the page could not take.
    """

    key: str
    outputs: list
    compute: Callable[[gr.Progress], tuple]
    link: links.Link | None = None
    run: Callable[[dict, gr.Progress], tuple] | None = None
    notice: gr.Markdown | None = None

    def result(self, progress: gr.Progress | None = None) -> tuple:
        with _READY_LOCK:
            lock = _READY_LOCKS.setdefault(self.key, threading.Lock())
        with lock:  # one computation per example, however many pages and visitors ask at once
            if self.key not in _READY_RESULTS:
                _READY_RESULTS[self.key] = _keep_files(self.key, self.outputs, tuple(self.compute(progress)))
            return _READY_RESULTS[self.key]

    def show_on(self, triggers: list, from_address: bool = False) -> None:
        """Fill the outputs with the example's result when one of `triggers` fires, once per page visit; with
        `from_address`, at the setting the page's address asks for, if any."""
        shown = gr.State(False)
        linked = [] if not from_address or self.link is None else [self.link.example, *self.link.settings.values()]
        outputs = list(dict.fromkeys([*linked, *self.outputs, *([self.notice] if linked else [])]))

        @gradio_errors
        def show(already_shown: bool, request: gr.Request, progress=gr.Progress()):
            if already_shown:
                return [gr.skip()] * len(outputs) + [True]
            values, problems = self.link.read(request.query_params) if linked else ({}, [])
            try:
                result = self.run(values, progress) if values else self.result(progress)
            except gr.Error as refused:  # values each fine, together not (the action says why): the example instead
                values, problems = {}, [*problems, refused.message]
                result = self.result(progress)
            values.update(zip(self.outputs, result, strict=True))
            if linked:
                values[self.notice] = gr.Markdown(links.notice(problems), visible=bool(problems))
            return [values.get(output, gr.skip()) for output in outputs] + [True]

        # Not in the models' concurrency group: a stored result must not wait behind another visitor's run.
        gr.on(triggers, show, shown, [*outputs, shown], api_name=False, concurrency_limit=None)


def _keep_files(key: str, outputs: list, values: tuple) -> tuple:
    """Copy the result's files (rendered videos live in folders that are pruned) to where they stay."""
    kept = []
    for output, value in zip(outputs, values, strict=True):
        if isinstance(output, gr.Video | gr.File) and isinstance(value, str):
            folder = READY_FOLDER / key
            folder.mkdir(parents=True, exist_ok=True)
            value = shutil.copy(value, folder / Path(value).name)
        kept.append(value)
    return tuple(kept)
