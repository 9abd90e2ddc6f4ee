"""6.4's sweep: one tube size and time span at every position on the grid, computed together (`demos.sweeps`).

The page plays it back while the tube is dragged, and `predict_tube` answers a tube it covers with no model run.
- `stream_sweep(clip, ...)` computes it (or finds it in `SWEEPS`): the full-clip targets once (or from
  `tubes.TARGET_CACHE`), then the context encoder and the predictor batched over positions, in one GPU function
  (`predict_positions`) that streams chunks, so a slow device shows the sweep as it grows.
- Per position it keeps only what rebuilds the endpoint's result: each series' cosine and L1 per hidden tubelet,
  and the predicted features' coordinates in the clip's PCA basis (3 numbers a token, all the colours need); the
  actual features' coordinates once per clip.
- `predict_tube(clip, ...)` is `tubes.predict_tube`, answered from a stored sweep when one covers the tube.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

import checkpoints
from demos import devices, jepa, masks, sweeps
from demos.cache import LRUCache
from demos.compute import tubes
from demos.compute.tube_clips import Clip
from demos.errors import UserError
from demos.gpu_functions import gpu_task

SWEEP_ENTRIES = 8  # sweeps kept in memory (ViT-L, 16 frames: about 0.5 MB each)
# Tokens the context encoder takes at once (positions x context tokens): bounds the activations' memory; on a CPU,
# smaller chunks also show the sweep growing every few seconds.
GPU_TOKENS_PER_CHUNK = 64 * 1024
CPU_TOKENS_PER_CHUNK = 8 * 1024


@dataclass(frozen=True)
class TubeSweep:
    """Every position of a `height` x `width` tube hidden over tubelets `first`..`last` of one clip.

    positions: (P, 2) (top, left) in the order computed; `done` of them are (a partial sweep has fewer).
    cosine, l1: series name -> (P, hidden tubelets). predicted: (P, hidden tokens, 3) the predicted features'
    coordinates in the clip's PCA basis; actual: (all tokens, 3) the clip's. low, high: the basis' colour range.
    """

    height: int
    width: int
    first: int
    last: int
    positions: np.ndarray
    done: int
    cosine: dict
    l1: dict
    predicted: np.ndarray
    actual: np.ndarray
    low: np.ndarray
    high: np.ndarray
    copy_source: int | None

    @property
    def complete(self) -> bool:
        return self.done == len(self.positions)

    def index(self, top: int, left: int) -> int | None:
        """Where the tube at (top, left) is in the sweep, if computed."""
        hits = np.flatnonzero((self.positions[: self.done] == (top, left)).all(axis=1))
        return int(hits[0]) if len(hits) else None


def _encode(sweep: TubeSweep) -> tuple[dict, dict]:
    arrays = {"positions": sweep.positions, "predicted": sweep.predicted, "actual": sweep.actual, "low": sweep.low,
              "high": sweep.high, **{f"cosine/{k}": v for k, v in sweep.cosine.items()},
              **{f"l1/{k}": v for k, v in sweep.l1.items()}}
    meta = {"height": sweep.height, "width": sweep.width, "first": sweep.first, "last": sweep.last, "done": sweep.done,
            "copy_source": sweep.copy_source, "series": list(sweep.cosine)}
    return arrays, meta


def _decode(arrays: dict, meta: dict) -> TubeSweep:
    return TubeSweep(meta["height"], meta["width"], meta["first"], meta["last"], arrays["positions"], meta["done"],
                     {k: arrays[f"cosine/{k}"] for k in meta["series"]}, {k: arrays[f"l1/{k}"] for k in meta["series"]},
                     arrays["predicted"], arrays["actual"], arrays["low"], arrays["high"], meta["copy_source"])


SWEEPS = sweeps.SweepStore("tubes", SWEEP_ENTRIES, sweeps.Codec(_encode, _decode))
GROWING = LRUCache(SWEEP_ENTRIES)  # partial sweeps by key, for the next call to go on from


def sweep_key(loaded, clip: Clip, tube: tubes.Tube) -> tuple:
    """Everything a sweep depends on: the clip's frames (their digest: the sampling's result), the time span and the
    tube's size, the checkpoint, its dtype and weights."""
    return (clip.digest, clip.num_frames, tube.first_tubelet, tube.last_tubelet, tube.height, tube.width,
            loaded.checkpoint.name, str(loaded.model.dtype), checkpoints.weights_id(loaded.checkpoint.name))


def positions_near(grid: masks.PatchGrid, tube: tubes.Tube) -> np.ndarray:
    """(P, 2) every (top, left) the tube's size takes on the grid, nearest to `tube` first: where the hand is, the
    sweep is live soonest."""
    tops, lefts = np.mgrid[0:grid.rows - tube.height + 1, 0:grid.cols - tube.width + 1]
    positions = np.stack([tops.ravel(), lefts.ravel()], axis=1)
    distance = np.abs(positions - (tube.top, tube.left)).max(axis=1)
    return positions[np.argsort(distance, kind="stable")]


# ---------------------------------------------------------------------------------------------
# The model work: one GPU function, streamed by chunks
# ---------------------------------------------------------------------------------------------


@dataclass
class SweepChunk:
    """What `predict_positions` yields (CPU tensors): the targets first when computed, then predictions by chunk."""

    targets: object | None  # (N, D) float32
    start: int  # the first position of `predicted`
    predicted: object | None  # (chunk, M, D) float32
    seconds: float


def gpu_seconds(frames, context_ids, target_ids, *, checkpoint: str = tubes.CHECKPOINT, targets=None) -> float:
    """The GPU work `predict_positions` is estimated at: a click's passes per position (batching only saves)."""
    per_position = tubes.gpu_seconds(frames, None, None, checkpoint=checkpoint, targets=True)
    whole_clip = 0.0 if targets is not None else tubes.targets_gpu_seconds(frames, checkpoint=checkpoint)
    return len(context_ids) * per_position + whole_clip


def cpu_seconds(frames, context_ids, target_ids, *, checkpoint: str = tubes.CHECKPOINT, targets=None) -> float:
    """The CPU work `predict_positions` is estimated at."""
    per_position = tubes.cpu_seconds(frames, None, None, checkpoint=checkpoint, targets=True)
    whole_clip = 0.0 if targets is not None else tubes.targets_cpu_seconds(frames, checkpoint=checkpoint)
    return len(context_ids) * per_position + whole_clip


@gpu_task(gpu_seconds=gpu_seconds, cpu_seconds=cpu_seconds)
def predict_positions(frames: np.ndarray, context_ids: np.ndarray, target_ids: np.ndarray, *,
                      checkpoint: str = tubes.CHECKPOINT, targets=None) -> Iterator[SweepChunk]:
    """The predictor's guess for each position: context_ids (P, K) and target_ids (P, M), one row per position of one
    tube size (so they stack). The targets first (only when `targets` is None), then a chunk of positions at a time
    through the context encoder and the predictor, batched."""
    loaded = jepa.load(checkpoint)
    model = loaded.model
    pixels = jepa.clip_tensor(loaded.processor, np.array(frames))
    if targets is None:
        start = time.perf_counter()
        yield SweepChunk(jepa.target_features(model, pixels)[0].cpu(), 0, None, time.perf_counter() - start)
    budget = GPU_TOKENS_PER_CHUNK if next(model.parameters()).device.type == "cuda" else CPU_TOKENS_PER_CHUNK
    chunk = max(1, budget // context_ids.shape[1])
    num_tokens = jepa.TokenLayout.of(model.config, len(frames)).num_tokens
    for first in range(0, len(context_ids), chunk):
        start = time.perf_counter()
        context = jepa.context_features(model, pixels, context_ids[first:first + chunk])
        predicted = jepa.predict(model, context, context_ids[first:first + chunk], target_ids[first:first + chunk],
                                 num_tokens).cpu()
        yield SweepChunk(None, first, predicted, time.perf_counter() - start)


# ---------------------------------------------------------------------------------------------
# The sweep, and answers from it
# ---------------------------------------------------------------------------------------------


def _coordinates(features, basis) -> np.ndarray:
    """(N, D) features -> (N, 3) float64 coordinates in a `viz.pca_basis`: what `viz.pca_colors` computes first."""
    mean, directions, _, _ = basis
    return (np.asarray(features, dtype=np.float64) - mean) @ directions.T


def _arrays_so_far(positions, grown: TubeSweep | None, tokens: int, components: int) -> tuple:
    """(cosine, l1, predicted): the arrays of a sweep of `positions`, filled as far as `grown` got."""
    if grown is not None:
        return ({k: v.copy() for k, v in grown.cosine.items()}, {k: v.copy() for k, v in grown.l1.items()},
                grown.predicted.copy())
    return {}, {}, np.zeros((len(positions), tokens, components))


def _compute(loaded, clip: Clip, layout, grid, tube: tubes.Tube, positions: np.ndarray, grown: TubeSweep | None,
             max_places: int | None) -> Iterator[TubeSweep]:
    """The sweep as it grows, from where `grown` stopped, by at most `max_places` places (None: to the end): after
    each chunk of places, the sweep so far."""
    if grown is not None and grown.complete:
        yield grown
        return
    positions = grown.positions if grown is not None else positions
    first = grown.done if grown is not None else 0
    todo = positions[first: None if max_places is None else first + max_places]
    tubes_at = [replace(tube, top=int(top), left=int(left)) for top, left in todo]
    ids = [tubes.tube_tokens(layout, grid, placed) for placed in tubes_at]
    target_ids, context_ids = np.stack([t for t, _ in ids]), np.stack([c for _, c in ids])
    cached = tubes.cached_targets(loaded, clip)
    targets, basis = cached if cached is not None else (None, None)
    cosine = l1 = predicted = actual = None
    source = tubes.copy_source_tubelet(tube, layout.tubelets)  # the same at every place: it depends on time only
    for chunk in predict_positions(clip.frames, context_ids, target_ids, checkpoint=loaded.checkpoint.name,
                                   targets=targets):
        if chunk.targets is not None:
            targets, basis = tubes.keep_targets(loaded, clip, chunk.targets)
            continue
        if actual is None:
            actual = _coordinates(targets, basis)
            cosine, l1, predicted = _arrays_so_far(positions, grown, target_ids.shape[1], actual.shape[1])
        for offset, guess in enumerate(chunk.predicted):
            j = chunk.start + offset  # in this call's places
            _, scored_cosine, scored_l1, _ = tubes.score(targets, layout, grid, tubes_at[j], target_ids[j],
                                                              context_ids[j], guess)
            for name in scored_cosine:
                cosine.setdefault(name, np.zeros((len(positions), len(tube.tubelets))))[first + j] = scored_cosine[name]
                l1.setdefault(name, np.zeros((len(positions), len(tube.tubelets))))[first + j] = scored_l1[name]
            predicted[first + j] = _coordinates(guess, basis)
        yield TubeSweep(tube.height, tube.width, tube.first_tubelet, tube.last_tubelet, positions,
                        first + chunk.start + len(chunk.predicted), {k: v.copy() for k, v in cosine.items()},
                        {k: v.copy() for k, v in l1.items()}, predicted.copy(), actual, basis[2], basis[3], source)


def stream_sweep(clip: Clip, top, left, height, width, first_tubelet=0, last_tubelet=None, *, keep_on_disk=False,
                 max_places: int | None = None, checkpoint: str = tubes.CHECKPOINT) -> Iterator[tuple[TubeSweep, bool]]:
    """(sweep so far, computed now) for the tube's size and time span on this clip, from `SWEEPS` or computed (and
    kept there; with `keep_on_disk` on disk too), places nearest the given tube first. With `max_places`, this call
    computes at most that many more places (in one GPU call) and keeps the partial sweep for the next call to go on
    from (`GROWING`). Bad numbers raise as `tubes.predict_tube` does."""
    loaded = jepa.load(checkpoint)
    layout, grid, tube, _ = tubes.tube_on_clip(loaded, clip, top, left, height, width, first_tubelet, last_tubelet)
    tubes.tube_tokens(layout, grid, tube)  # a tube that hides everything is refused before any work
    key = sweep_key(loaded, clip, tube)

    def compute() -> Iterator[TubeSweep]:
        for sweep in _compute(loaded, clip, layout, grid, tube, positions_near(grid, tube), GROWING.get(key),
                              max_places):
            GROWING.put(key, sweep)
            yield sweep

    yield from SWEEPS.stream_or_compute(key, compute, keep_on_disk=keep_on_disk, is_whole=lambda sweep: sweep.complete)


def places_per_call() -> int | None:
    """How many places one call of the page's sweep computes: all where the models are on a GPU; else one chunk of a
    16-frame clip's (a click on a CPU machine waits behind at most that much)."""
    return None if devices.gpu_at_hand() else max(1, CPU_TOKENS_PER_CHUNK // 2048)


def answer(sweep: TubeSweep, index: int, clip: Clip, layout, grid, tube: tubes.Tube, notes=(),
           checkpoint: str = tubes.CHECKPOINT) -> tubes.TubeResult:
    """The `TubeResult` of the tube at `sweep.positions[index]`, rebuilt from the sweep: the same numbers and
    pictures (the colours from the same coordinates), no model run."""
    target_ids, context_ids = tubes.tube_tokens(layout, grid, tube)
    components = sweep.actual.shape[1]
    identity = (np.zeros(components), np.eye(components), sweep.low, sweep.high)  # the coordinates, coloured as before
    return tubes.TubeResult(
        clip, tube, layout, target_ids, context_ids, sweep.predicted[index], sweep.actual[target_ids],
        {k: v[index] for k, v in sweep.cosine.items()}, {k: v[index] for k, v in sweep.l1.items()}, sweep.copy_source,
        True, identity, list(notes), {"targets": 0.0, "context_encoder": 0.0, "predictor": 0.0}, checkpoint,
        from_sweep=True)


def results(sweep: TubeSweep, clip: Clip, *, checkpoint: str = tubes.CHECKPOINT) -> Iterator[tubes.TubeResult]:
    """Each computed position's result, in the sweep's order."""
    loaded = jepa.load(checkpoint)
    for index, (top, left) in enumerate(sweep.positions[: sweep.done]):
        layout, grid, tube, notes = tubes.tube_on_clip(loaded, clip, int(top), int(left), sweep.height, sweep.width,
                                                       sweep.first, sweep.last)
        yield answer(sweep, index, clip, layout, grid, tube, notes, checkpoint)


def predict_tube(clip: Clip, top, left, height, width, first_tubelet=0, last_tubelet=None, *,
                 checkpoint: str = tubes.CHECKPOINT, progress: tubes.Progress | None = None,
                 shared: bool = False) -> tubes.TubeResult:
    """`tubes.predict_tube`, answered from a stored sweep (in memory, or a shared one on disk) when one covers the
    tube: the same result, no model run. `shared`: the sweep is the same for every learner (a bundled example's),
    so where one GPU call computes it (`places_per_call`), a missing one is computed first and kept on disk."""
    loaded = jepa.load(checkpoint)
    layout, grid, tube, notes = tubes.tube_on_clip(loaded, clip, top, left, height, width, first_tubelet, last_tubelet)
    key = sweep_key(loaded, clip, tube)
    sweep = SWEEPS.find(key, on_disk=True)
    if sweep is None and shared and places_per_call() is None:
        if progress:
            progress(0.1, "Predicting this tube at every place at once (kept for every learner)…")
        try:
            *_, (sweep, _) = stream_sweep(clip, top, left, height, width, first_tubelet, last_tubelet, keep_on_disk=True,
                                         checkpoint=checkpoint)
        except UserError:  # no device can take the whole sweep now (or a tube over the whole clip): the tube alone
            sweep = None
    index = sweep.index(tube.top, tube.left) if sweep is not None else None
    if index is None:
        return tubes.predict_tube(clip, top, left, height, width, first_tubelet, last_tubelet, checkpoint=checkpoint,
                                  progress=progress)
    return answer(sweep, index, clip, layout, grid, tube, notes, checkpoint)
