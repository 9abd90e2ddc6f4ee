"""The action wrapper every tab's model-running handler wears: failures as gr.Error, the shared result cache,
the way through the dispatcher (where each computation runs, the CPU rerun after a refusal: `demos.dispatcher`),
and the device notes that say where a click ran."""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging

import gradio as gr
from gradio.context import LocalContext

import checkpoints
from demos import results, zerogpu
from demos.dispatcher import DISPATCHER
from demos.errors import UserError

log = logging.getLogger(__name__)


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


_END = object()


def _dispatched(fn, args, kwargs):
    """`fn` as one visitor's action through the dispatcher (`DISPATCHER.action`: its request scope, and the rerun on
    the Space's CPU when ZeroGPU refuses or fails a GPU call), as a stream; each step in one context, since gradio
    runs every step of a stream in a copy of its own and the action's scope must span them all."""
    context = contextvars.copy_context()
    items = context.run(DISPATCHER.action, fn, args, kwargs, signed_in=_signed_in())
    try:
        while (item := context.run(next, items, _END)) is not _END:
            yield item
    finally:
        context.run(items.close)


def _run(fn, args, kwargs):
    """A plain action's result: the one item of its stream."""
    (value,) = _dispatched(fn, args, kwargs)
    return value


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
    - It runs through the dispatcher (`DISPATCHER.action`): on ZeroGPU each GPU function runs where it pays, and when
      ZeroGPU refuses or fails a call, the action runs again on the Space's CPU (`device_note` says so on the page).
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
                        yield from _dispatched(fn, args, kwargs)
                        return
                    for value, hit in RESULTS.stream_or_compute(cache_key, lambda: _dispatched(fn, args, kwargs)):
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
                        "why": run.why, "fallback": run.fallback, "asked": run.asked, "together": run.together,
                        "shared": run.shared} for run in zerogpu.runs()]}


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
