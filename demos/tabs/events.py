"""How a tab wires its events: endpoint names, the models' concurrency group, a clip's background preparation, a
picked input."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

import gradio as gr

# Model-heavy events share one concurrency group: one at a time on a CPU machine (two models at once only thrash
# 2 vCPUs), side by side on ZeroGPU (app.py sets the group's limit).
MODEL_CONCURRENCY_ID = "models"
# A live toy's sweep (all the settings of a gesture) has a group of its own: on a CPU it runs for minutes, a device call
# per few settings, and a learner's click must not queue behind all of it (the device lock lets the click run between
# two of its calls).
SWEEP_CONCURRENCY_ID = "sweeps"
# Questions too: those about one clip asked together are answered in one batch, one device computation for all
# (`demos.compute.heads.answering`), so the group holds a batch running and the next one forming; on a CPU machine
# the device lock still runs one model computation at a time.
QUESTIONS_CONCURRENCY_ID = "questions"


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
