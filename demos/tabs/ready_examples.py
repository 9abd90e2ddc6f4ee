"""The example a page opens with: computed once by the first visitor who needs it, kept for the process, or the
setting the page's address asks for."""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from demos.tabs import actions, links

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
    # What follows the example once it is shown (e.g. its sweep for the page to play back): given the event that
    # shows it, chains the tab's own events after it.
    then: Callable[[object], None] | None = None

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

        @actions.gradio_errors
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
        shown_event = gr.on(triggers, show, shown, [*outputs, shown], api_name=False, concurrency_limit=None)
        if self.then is not None:
            self.then(shown_event)


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
