"""The 6.2-6.3 page's live block: after each result, the sweep of the block's size (`block_sweep_work`) is computed, or
read, and handed to the page's `SweepPlayer`, which then shows each position's close-ups and captions while the
block is dragged, with no request. The release still runs the comparison, answered from the same sweep.

On a CPU a full-size sweep takes minutes: it grows a few positions a call, and the page gets what is ready every few
seconds, with a line saying how far it is. A newer result of the same page (another picture, size or noise) stops
it between two calls; what it computed is kept for the next run of the same sweep.
"""

from __future__ import annotations

import hashlib
import threading
import time

import gradio as gr

from demos import images, sweeps, zerogpu
from demos.cache import LRUCache
from demos.compute import block_sweep, block_sweep_work, mae_vs_jepa
from demos.errors import UserError
from demos.noise import Noise
from demos.tabs import actions
from demos.tabs.mae_vs_jepa_text import block_caption, jepa_caption, mae_caption, picture_descriptions
from demos.tabs.sweep_player import SweepPlayer

# The page's outputs the player draws into (name -> CSS selector), the names being the comparison's.
PICTURES = {"mae_closeup": "#mvj-mae-closeup", "jepa_closeup": "#mvj-jepa-closeup"}
CAPTIONS = {"mae_score": (mae_caption, "#mvj-mae-score"), "jepa_score": (jepa_caption, "#mvj-jepa-score"),
            "verdict": (block_caption, "#mvj-verdict")}
# While a sweep grows, the page gets what is ready at most this often: each playback packs every position so far.
PARTIAL_EVERY_S = 4.0
# Complete playbacks kept (a bundled example's is the same for every learner: packed once).
PAYLOADS = LRUCache(8)


def player(**kwargs) -> SweepPlayer:
    """The page's player: follows the block picker, draws into the close-ups and their captions."""
    return SweepPlayer(source="block-picture", kind="block", pictures=PICTURES,
                       texts={name: selector for name, (_, selector) in CAPTIONS.items()}, elem_id="mvj-live", **kwargs)


def note(done: int, total: int) -> str:
    if done >= total:
        return f"Live: drag the block, all {total} positions are ready."
    return f"Live: {done} of {total} positions so far…"


def playback(picture: mae_vs_jepa.Picture, sweep: block_sweep.BlockSweep, shown: dict) -> sweeps.Playback:
    """The sweep as the page plays it: each position's close-ups and captions exactly as the comparison of that block
    returns them (it is answered from this sweep). `shown` keeps each position's, so a growing sweep packs only its
    new positions."""
    order = mae_vs_jepa.IMAGE_ORDER
    for top, left in sweep.positions.tolist():
        if (top, left) not in shown:
            result = mae_vs_jepa.compare_block(picture, top, left, sweep.height, sweep.width)
            numbers = result.stats()
            alts = picture_descriptions(numbers)
            shown[top, left] = ({name: result.images[name] for name in PICTURES},
                                {name: alts[order.index(name)] for name in PICTURES},
                                {name: sweeps.markdown_html(describe(numbers)) for name, (describe, _) in CAPTIONS.items()})
    cells = [shown[top, left] for top, left in sweep.positions.tolist()]
    return sweeps.Playback(
        settings=[[top, left, sweep.height, sweep.width] for top, left in sweep.positions.tolist()],
        pictures={name: [cell[0][name] for cell in cells] for name in PICTURES},
        alts={name: [cell[1][name] for cell in cells] for name in PICTURES},
        texts={name: [cell[2][name] for cell in cells] for name in CAPTIONS},
        total=sweep.total, note=note(len(cells), sweep.total))


def sweep_id(key: tuple) -> str:
    """A short name of a sweep, the player's value: the page says which sweep it plays."""
    return hashlib.blake2b(repr(key).encode(), digest_size=8).hexdigest()


# Each page's latest request for a sweep (its raw inputs), noted as a result arrives: a sweep still growing for an
# older request of the same page stops between two calls.
_ASKED: dict = {}
_ASKED_LOCK = threading.Lock()
_ASKED_MAX = 1024


def _session(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "no session"


def note_request(image_path, top, left, height, width, noise, grain_level, jpeg_quality, request: gr.Request = None):
    """Unqueued, on every result: this page now wants the sweep of these inputs."""
    with _ASKED_LOCK:
        _ASKED[_session(request)] = (image_path, top, left, height, width, noise, grain_level, jpeg_quality)
        while len(_ASKED) > _ASKED_MAX:
            _ASKED.pop(next(iter(_ASKED)))


@actions.action()
def live_sweep(image_path, top, left, height, width, noise, grain_level, jpeg_quality, playing,
               request: gr.Request = None):
    """The sweep of the block's size for the page's player: computed (growing, on a CPU) or read; skipped when the
    page plays it already."""
    inputs = (image_path, top, left, height, width, noise, grain_level, jpeg_quality)
    if image_path is None:
        yield gr.skip()
        return
    why = zerogpu.cpu_reason()
    if why is not None:  # ZeroGPU could not run it: minutes of the Space's CPU are not worth a live toy
        yield player(value="", sweep={"note": f"Live: off, the Space's CPU runs this page now ({why}); release the "
                                              f"block to see each place."})
        return
    session = _session(request)
    with _ASKED_LOCK:
        _ASKED.setdefault(session, inputs)

    def still_wanted() -> bool:  # a newer request asks for the same sweep: carry on; another one: stop
        with _ASKED_LOCK:
            latest = _ASKED.get(session, inputs)
        return latest == inputs or (latest[0], *latest[3:]) == (inputs[0], *inputs[3:])

    try:
        image = images.load_image(image_path)
        added = Noise.of(noise, grain_level, jpeg_quality)
        asked = block_sweep_work.request(image, height, width, noise=added)
    except UserError as problem:  # the comparison says what is wrong; the player only stops
        yield player(value="", sweep={"note": f"Live: off ({problem})"})
        return
    name = sweep_id(asked.key)
    if playing == name:
        yield gr.skip()
        return
    kept = PAYLOADS.get(asked.key)
    if kept is not None:
        yield player(value=name, sweep=kept)
        return
    # The sweep the page plays now is another picture's (or noise's): it must not be drawn while this one grows.
    yield player(value="", sweep={"note": "Live: computing the block at every position…"})
    shown, next_partial = {}, 0.0
    for sweep in block_sweep_work.grow(asked, still_wanted=still_wanted):
        if sweep.complete:
            payload = playback(asked.picture, sweep, shown).payload()
            PAYLOADS.put(asked.key, payload)
            yield player(value=name, sweep=payload)
        elif time.monotonic() >= next_partial:
            start = time.monotonic()
            partial = playback(asked.picture, sweep, shown).payload(fast=True)
            # Packing grows with the sweep: never more than a quarter of the time it takes.
            next_partial = time.monotonic() + max(PARTIAL_EVERY_S, 3 * (time.monotonic() - start))
            yield player(value=f"{name}-partial", sweep=partial)
