"""6.4 V-JEPA tube masking: hide a spatio-temporal tube of a clip, predict its features over time.

V-JEPA hides *tubes*: the same patches in every frame (or in a span of frames). With frame-by-frame
random masks a model could copy a hidden patch from the next frame; a tube takes that shortcut away,
so the predictor has to carry objects and motion through time from what it can see.

The computation (no gradio in it), on a clip of `demos.compute.tube_clips` (decoded once per file and sampling):
- `make_tube(...)` turns plain numbers (patches, tubelets) into a `Tube` that fits the clip, with notes
  saying what was adjusted.
- `predict_tube(clip, tube)` encodes the context (every token outside the tube) alone, predicts the
  tube's tokens (`demos.jepa`), and scores them against the layer-normalised features of the full clip,
  which are cached per clip (`TARGET_CACHE`): moving the tube reruns only context encoder + predictor.
  The model work is the GPU function `encode_and_predict` (see `demos.gpu_functions`); the cache and
  the progress reports stay in the main process.
- `prepare_targets(clip)` fills that cache ahead of the click (the GPU function `encode_targets`): the tab
  runs it when a clip is picked or resampled (`/tube_prepare`), so the click finds the targets there.
- `copy_baseline`, `mean_context_baseline`, `per_tubelet` are the baselines and reductions, on tensors.
- `render_video` and `features_image` turn a result into what the learner sees (drawing in `demos.viz`).

The tab (`demos.tabs.tubes`) names the endpoints `/tube_predict`, `/tube_preview` and `/tube_prepare`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import checkpoints
from demos import jepa, masks, mp4, viz, zerogpu
from demos.cache import LRUCache
from demos.compute.tube_clips import Clip
from demos.errors import UserError, whole_number
from demos.gpu_functions import gpu_task

log = logging.getLogger(__name__)

CHECKPOINT = jepa.CHECKPOINT

FRAME_STEP_SLIDER_MAX = 32  # the API accepts up to videos.MAX_FRAME_STEP
GRID_SLIDER_MAX = checkpoints.get(CHECKPOINT).patches_per_side  # the published grid, 16; smaller grids are clamped
# Full-clip target features kept: prepared clips of a few visitors (ViT-L, 16 frames: 2048 tokens of 1024 float32,
# 8 MB each).
TARGET_CACHE_SIZE = 8
DISPLAY_MIN_SIDE = 256  # the output video and preview are upscaled to at least this (tiny models: 128 px)
OUTPUT_VIDEOS_KEPT = 64  # rendered mp4s kept in the temp folder before the oldest are deleted
SERIES_PREDICTED = "predictor"
SERIES_MEAN = "mean of visible tokens"
SERIES_COPY = "copy last visible tubelet"

Progress = Callable[[float, str], None]


TARGET_CACHE = LRUCache(TARGET_CACHE_SIZE)  # per (model, clip)


# ---------------------------------------------------------------------------------------------
# The tube
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tube(masks.Block):
    """A block of patches hidden over a span of tubelets (both ends included)."""

    first_tubelet: int
    last_tubelet: int

    @property
    def tubelets(self) -> range:
        return range(self.first_tubelet, self.last_tubelet + 1)

    def token_ids(self, grid: masks.PatchGrid) -> np.ndarray:
        """Time-major V-JEPA 2 token ids, sorted: tubelet by tubelet, row-major within each."""
        return masks.spatiotemporal_ids(grid, self.patch_ids(grid), self.tubelets)

    def frames(self, tubelet_size: int) -> range:
        """The frame indices the tube hides."""
        return range(self.first_tubelet * tubelet_size, (self.last_tubelet + 1) * tubelet_size)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def make_tube(grid: masks.PatchGrid, num_tubelets: int, top, left, height, width, first_tubelet=0,
              last_tubelet=None) -> tuple[Tube, list[str]]:
    """A tube that fits the grid and the clip, from plain numbers (patches and tubelets), and notes on changes.

    Negative, fractional or non-numeric values are errors; a tube larger than the grid or reaching past
    its edge, or a time span past the clip's end, is fitted in and the notes say how.
    """
    notes = []
    top = whole_number("The tube's top row", top, minimum=0)
    left = whole_number("The tube's left column", left, minimum=0)
    height = whole_number("The tube's height", height, minimum=1)
    width = whole_number("The tube's width", width, minimum=1)
    first = whole_number("The tube's first tubelet", first_tubelet if first_tubelet not in (None, "") else 0, minimum=0)
    last = num_tubelets - 1 if last_tubelet in (None, "") else whole_number("The tube's last tubelet", last_tubelet,
                                                                       minimum=0)
    fitted = masks.fit_block(grid, top, left, height, width)
    if (fitted.height, fitted.width) != (height, width):
        notes.append(f"The tube was {height}×{width} patches; the grid is {grid.rows}×{grid.cols}, so it was "
                     f"shrunk to {fitted.height}×{fitted.width}.")
    if (fitted.top, fitted.left) != (top, left):
        notes.append(f"The tube reached past the edge of the {grid.rows}×{grid.cols} grid, so it was moved to "
                     f"row {fitted.top}, column {fitted.left}.")
    if first > last:
        first, last = last, first
        notes.append("The first tubelet came after the last one, so the two were swapped.")
    if last > num_tubelets - 1:
        last = num_tubelets - 1
        notes.append(f"The clip has {num_tubelets} tubelets (0 to {num_tubelets - 1}), so the tube ends at {last}.")
    if first > last:
        first = last
    return Tube(fitted.top, fitted.left, fitted.height, fitted.width, first, last), notes


# ---------------------------------------------------------------------------------------------
# Baselines and reductions (tensors in, tensors out)
# ---------------------------------------------------------------------------------------------


def copy_source_tubelet(tube: Tube, num_tubelets: int) -> int | None:
    """The tubelet a 'copy the last visible frame' baseline copies from: the one just before the tube,
    or, when the tube starts at the beginning, the first one after it. None when the tube covers all time."""
    if tube.first_tubelet > 0:
        return tube.first_tubelet - 1
    if tube.last_tubelet < num_tubelets - 1:
        return tube.last_tubelet + 1
    return None


def copy_baseline(features, grid: masks.PatchGrid, patch_ids, tubelets, source_tubelet: int):
    """(len(tubelets) * len(patch_ids), D): the features of the same patches at `source_tubelet`, repeated
    for every hidden tubelet, in the order of `masks.spatiotemporal_ids(grid, patch_ids, tubelets)`.

    features: (N, D), the clip's actual (target) features. This baseline is generous: it copies the
    true features of a visible tubelet, i.e. it assumes nothing in the tube changed.
    """
    source_ids = masks.spatiotemporal_ids(grid, patch_ids, [source_tubelet])
    source = features[source_ids]
    repeats = len(list(tubelets))
    return np.tile(source, (repeats, 1)) if isinstance(source, np.ndarray) else source.repeat(repeats, 1)


def mean_context_baseline(features, context_ids):
    """(D,): the average of the visible tokens' actual features, a guess that knows nothing about where."""
    return features[np.asarray(context_ids, dtype=np.int64)].mean(0)


def per_tubelet(values, num_tubelets: int) -> np.ndarray:
    """(num_tubelets * P,) per-token values (time-major) -> (num_tubelets,) means."""
    return np.asarray(values, dtype=np.float64).reshape(num_tubelets, -1).mean(axis=1)


def l1_rows(a, b) -> np.ndarray:
    """Row-wise mean absolute difference (V-JEPA's training loss, per token)."""
    import torch

    a, b = torch.as_tensor(a).float(), torch.as_tensor(b).float()
    return (a - b).abs().mean(-1).cpu().numpy()


# ---------------------------------------------------------------------------------------------
# Prediction
# ---------------------------------------------------------------------------------------------


@dataclass
class TubeResult:
    clip: Clip
    tube: Tube
    layout: jepa.TokenLayout
    target_ids: np.ndarray
    context_ids: np.ndarray
    predicted: np.ndarray  # (M, D) float32, the predictor's output for the tube's tokens
    actual: np.ndarray  # (M, D) float32, layer-normalised full-clip features there (the training target)
    cosine: dict  # series name -> (tubelets in tube,) mean cosine with the actual features
    l1: dict  # series name -> (tubelets in tube,) mean L1 distance to the actual features
    copy_source: int | None
    target_cache_hit: bool
    basis: tuple  # PCA basis fitted on the whole clip's actual features
    notes: list[str] = field(default_factory=list)
    seconds: dict = field(default_factory=dict)
    checkpoint: str = CHECKPOINT
    # Answered from a stored sweep (`demos.compute.tube_sweep`): `predicted` and `actual` then hold the features'
    # coordinates in the clip's PCA basis and `basis` is the identity on them (the same colours), and no model ran.
    from_sweep: bool = False

    @property
    def grid(self) -> masks.PatchGrid:
        return masks.PatchGrid(self.layout.rows, self.layout.cols, self.layout.patch_size)

    def numbers(self) -> dict:
        """Plain numbers for the API and the page."""
        size = self.layout.tubelet_size
        tubelets = list(self.tube.tubelets)
        series = lambda d: {k: [round(float(v), 6) for v in vals] for k, vals in d.items()}  # noqa: E731
        return {
            "tube": self.tube.as_dict(),
            "tubelets": tubelets,
            "frames": [[t * size, t * size + size - 1] for t in tubelets],
            "timestamps_s": [round(self.clip.timestamps_s[t * size], 3) for t in tubelets],
            "cosine": series(self.cosine),
            "l1": series(self.l1),
            "mean_cosine": {k: round(float(np.mean(v)), 6) for k, v in self.cosine.items()},
            "copy_source_tubelet": self.copy_source,
            "grid": [self.layout.rows, self.layout.cols],
            "patch_size": self.layout.patch_size,
            "tubelet_size": size,
            "num_frames": self.clip.num_frames,
            "num_tubelets": self.layout.tubelets,
            "num_hidden_tokens": int(len(self.target_ids)),
            "num_context_tokens": int(len(self.context_ids)),
            "target_cache_hit": self.target_cache_hit,
            "from_sweep": self.from_sweep,
            "notes": list(self.notes),
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "checkpoint": self.checkpoint,
        }

    def cosine_table(self):
        return _long_table(self.tube.tubelets, self.cosine, "cosine")

    def surprise_table(self):
        return _long_table(self.tube.tubelets, {k: v for k, v in self.l1.items() if k == SERIES_PREDICTED},
                           "L1 error")


def _long_table(tubelets, series: dict, value_name: str):
    import pandas as pd

    rows = [(int(t), float(v), name) for name, values in series.items() for t, v in zip(tubelets, values, strict=False)]
    return pd.DataFrame(rows, columns=["tubelet", value_name, "series"])


@dataclass
class TubePass:
    """What the GPU function returns: CPU tensors."""

    targets: object | None  # (N, D) torch float32: full-clip targets, when computed (not passed in)
    predicted: object  # (M, D) torch float32: the predictor's output for the tube's tokens
    seconds: dict


# The work estimates (docs/benchmarks.md): on a GPU about 3x bench_gpu's ViT-L pass over 16 frames, growing with
# the power 1.5 of the frames (attention grows faster than the frame count); on the CPU bench_tubes' passes over 8
# and 16 frames (the power 1.35 between them) and its predictor, in bf16 on the development CPU.
GPU_SECONDS_PER_PASS_16_FRAMES = 0.15
REFERENCE_PARAMS_MILLIONS = 326  # vjepa2-vitl, which the estimates here are for
CPU_SECONDS_PER_PASS_8_FRAMES, CPU_PASS_POWER = 2.7, 1.35
CPU_SECONDS_PREDICTOR_8_FRAMES = 0.4


def _scale(frames, checkpoint: str, reference_frames: int, power: float) -> float:
    return (len(frames) / reference_frames) ** power * checkpoints.get(checkpoint).params_millions / REFERENCE_PARAMS_MILLIONS


def _gpu_pass(frames, checkpoint: str) -> float:
    return GPU_SECONDS_PER_PASS_16_FRAMES * _scale(frames, checkpoint, 16, 1.5)


def _cpu_pass(frames, checkpoint: str) -> float:
    return CPU_SECONDS_PER_PASS_8_FRAMES * _scale(frames, checkpoint, 8, CPU_PASS_POWER)


def gpu_seconds(frames, context_ids, target_ids, *, checkpoint: str = CHECKPOINT, targets=None) -> float:
    """The GPU work `encode_and_predict` is estimated at: by frames and checkpoint, one pass fewer with cached targets."""
    return (1 if targets is not None else 2) * _gpu_pass(frames, checkpoint)


def cpu_seconds(frames, context_ids, target_ids, *, checkpoint: str = CHECKPOINT, targets=None) -> float:
    """The CPU work `encode_and_predict` is estimated at."""
    predictor = CPU_SECONDS_PREDICTOR_8_FRAMES * _scale(frames, checkpoint, 8, 1.0)
    return (1 if targets is not None else 2) * _cpu_pass(frames, checkpoint) + predictor


def targets_gpu_seconds(frames, *, checkpoint: str = CHECKPOINT) -> float:
    """The GPU work `encode_targets` is estimated at: one full-clip pass."""
    return _gpu_pass(frames, checkpoint)


def targets_cpu_seconds(frames, *, checkpoint: str = CHECKPOINT) -> float:
    """The CPU work `encode_targets` is estimated at: one full-clip pass."""
    return _cpu_pass(frames, checkpoint)


def _pixels(loaded, frames: np.ndarray):
    return jepa.clip_tensor(loaded.processor, np.array(frames))  # a writable copy: cached frames are read-only


@gpu_task(gpu_seconds=targets_gpu_seconds, cpu_seconds=targets_cpu_seconds)
def encode_targets(frames: np.ndarray, *, checkpoint: str = CHECKPOINT) -> tuple:
    """The model work of preparing a clip: its full-clip targets (N, D) on the CPU, and the seconds they took."""
    loaded = jepa.load(checkpoint)
    start = time.perf_counter()
    targets = jepa.target_features(loaded.model, _pixels(loaded, frames))[0].cpu()
    return targets, time.perf_counter() - start


@gpu_task(gpu_seconds=gpu_seconds, cpu_seconds=cpu_seconds)
def encode_and_predict(frames: np.ndarray, context_ids, target_ids, *, checkpoint: str = CHECKPOINT,
                       targets=None) -> TubePass:
    """The model work: full-clip targets (only when `targets` is None), the context encoder on the
    context tokens alone, and the predictor for the target tokens. frames: (T, S, S, 3) uint8."""
    loaded = jepa.load(checkpoint)
    model = loaded.model
    start = time.perf_counter()
    pixels = _pixels(loaded, frames)
    preprocess = time.perf_counter() - start
    computed, predicted, seconds = jepa.targets_context_predict(model, pixels, context_ids, target_ids,
                                                                need_targets=targets is None)
    seconds = {"targets": seconds.pop("targets"), "preprocess": preprocess, **seconds}
    return TubePass(computed, predicted, seconds)


def cached_targets(loaded, clip: Clip):
    """(targets, PCA basis) of the clip for this model, or None (main process)."""
    return TARGET_CACHE.get((loaded.checkpoint.name, clip.digest), owner=loaded.model)


def keep_targets(loaded, clip: Clip, targets) -> tuple:
    """Cache a clip's full-clip targets with their PCA basis (main process); returns (targets, basis).

    PCA colours are fitted once per clip on its actual features, so they stay comparable as the tube moves.
    """
    entry = (targets, viz.pca_basis(targets[:: max(1, len(targets) // 2048)].numpy()))
    TARGET_CACHE.put((loaded.checkpoint.name, clip.digest), entry, owner=loaded.model)
    return entry


def prepare_targets(clip: Clip, *, checkpoint: str = CHECKPOINT, still_wanted: Callable[[], bool] = lambda: True,
                    ) -> dict:
    """Fill the target cache for a clip ahead of a click (`/tube_prepare`), so `predict_tube` then runs only
    the context encoder and the predictor. Nothing runs when the clip is cached already. `still_wanted()` is
    asked before and after the pass: a clip that is no longer the learner's current one is not encoded, or
    its targets are not kept (they would only push a wanted clip out of the cache).

    Returns plain numbers: `target_cache_hit` (the clip was cached), `targets_computed` (kept now),
    `stale` (given up because no longer wanted), `skipped` (why nothing ran: where a prepare does not pay,
    `zerogpu.worth_preparing`), `seconds` of the pass, frames and digest.
    """
    loaded = jepa.load(checkpoint)
    if clip.size != loaded.model.config.crop_size:
        raise ValueError(f"clip is {clip.size} px, the model wants {loaded.model.config.crop_size}")
    numbers = {"num_frames": clip.num_frames, "clip_digest": clip.digest, "target_cache_hit": False,
               "targets_computed": False, "stale": False, "skipped": "", "seconds": 0.0}
    if cached_targets(loaded, clip) is not None:
        return {**numbers, "target_cache_hit": True}
    if not zerogpu.worth_preparing():
        return {**numbers, "skipped": "on ZeroGPU the click encodes the clip in its own GPU call"}
    if not still_wanted():
        return {**numbers, "stale": True}
    targets, seconds = encode_targets(clip.frames, checkpoint=checkpoint)
    if not still_wanted():
        return {**numbers, "stale": True, "seconds": round(seconds, 3)}
    keep_targets(loaded, clip, targets)
    return {**numbers, "targets_computed": True, "seconds": round(seconds, 3)}


def tube_on_clip(loaded, clip: Clip, top, left, height, width, first_tubelet=0, last_tubelet=None) -> tuple:
    """(layout, grid, tube, notes): the clip's token layout for the model, and the tube fitted to it (`make_tube`)."""
    config = loaded.model.config
    if clip.size != config.crop_size:
        raise ValueError(f"clip is {clip.size} px, the model wants {config.crop_size}")
    layout = jepa.TokenLayout.of(config, clip.num_frames)
    grid = masks.PatchGrid(layout.rows, layout.cols, layout.patch_size)
    return layout, grid, *make_tube(grid, layout.tubelets, top, left, height, width, first_tubelet, last_tubelet)


def tube_tokens(layout: jepa.TokenLayout, grid: masks.PatchGrid, tube: Tube) -> tuple[np.ndarray, np.ndarray]:
    """(target_ids, context_ids): the tokens the tube hides and the others; a tube that hides them all is an error."""
    target_ids = tube.token_ids(grid)
    context_ids = masks.complement(layout.num_tokens, target_ids)
    if len(context_ids) == 0:
        raise UserError("The tube hides the whole clip, so there is nothing left to predict from. "
                        "Make it smaller or hide it for fewer tubelets.")
    return target_ids, context_ids


def score(targets, layout: jepa.TokenLayout, grid: masks.PatchGrid, tube: Tube, target_ids, context_ids, predicted):
    """(actual, cosine, l1, copy source): the predictor's guess and the baselines against the actual features, per
    hidden tubelet (series name -> values). targets: (N, D) torch, the clip's; predicted: (M, D) torch."""
    import torch

    actual = targets[torch.as_tensor(target_ids)]
    hidden_tubelets = len(tube.tubelets)
    guesses = {SERIES_PREDICTED: predicted,
               SERIES_MEAN: mean_context_baseline(targets, context_ids)[None].expand_as(actual)}
    source = copy_source_tubelet(tube, layout.tubelets)
    if source is not None:
        guesses[SERIES_COPY] = copy_baseline(targets, grid, tube.patch_ids(grid), tube.tubelets, source)
    cosine = {name: per_tubelet(jepa.cosine_rows(guess, actual), hidden_tubelets) for name, guess in guesses.items()}
    l1 = {name: per_tubelet(l1_rows(guess, actual), hidden_tubelets) for name, guess in guesses.items()}
    return actual, cosine, l1, source


def predict_tube(clip: Clip, top, left, height, width, first_tubelet=0, last_tubelet=None, *,
                 checkpoint: str = CHECKPOINT, progress: Progress | None = None) -> TubeResult:
    """Hide the tube, encode the rest alone, predict the tube's features and score them over time.

    The model work is the GPU function `encode_and_predict`; the full-clip targets are cached here, in
    the main process, and progress is reported here, around the GPU call.
    """
    progress = progress or (lambda fraction, desc: None)
    loaded = jepa.load(checkpoint)
    layout, grid, tube, notes = tube_on_clip(loaded, clip, top, left, height, width, first_tubelet, last_tubelet)
    target_ids, context_ids = tube_tokens(layout, grid, tube)

    cached = cached_targets(loaded, clip)
    hit = cached is not None
    progress(0.1, f"Encoding the {len(context_ids)} visible tokens alone and predicting the {len(target_ids)} "
                  "hidden ones…" if hit else "Encoding the whole clip once (the targets; cached for this clip), "
                  "then the visible tokens alone, and predicting the hidden ones…")
    start = time.perf_counter()
    device_pass = encode_and_predict(clip.frames, context_ids, target_ids, checkpoint=checkpoint,
                                     targets=cached[0] if hit else None)
    seconds = {**device_pass.seconds, "gpu_call": time.perf_counter() - start}
    progress(0.8, "Scoring the prediction against the actual features…")
    targets, basis = cached if hit else keep_targets(loaded, clip, device_pass.targets)
    predicted = device_pass.predicted

    actual, cosine, l1, source = score(targets, layout, grid, tube, target_ids, context_ids, predicted)
    return TubeResult(clip, tube, layout, target_ids, context_ids, predicted.numpy(), actual.numpy(), cosine, l1,
                      source, hit, basis, notes, seconds, checkpoint)


# ---------------------------------------------------------------------------------------------
# Pictures and video
# ---------------------------------------------------------------------------------------------


def render_video(result: TubeResult, path: str | os.PathLike) -> str:
    """`video_frames` as an H.264 mp4 that plays in every browser."""
    return mp4.write_mp4(video_frames(result), str(path), result.clip.playback_fps)


def video_frames(result: TubeResult) -> np.ndarray:
    """The shaded clip, upscaled for small models, with the prediction over time beside each frame (the tube's
    actual and predicted feature colours and their cosine): (T, H, W, 3) uint8."""
    frames = viz.shade_tube(result.clip.frames, result.tube, result.layout.patch_size,
                            result.tube.frames(result.layout.tubelet_size))
    scale = viz.display_scale(result.clip.size, DISPLAY_MIN_SIDE)
    frames = np.stack([viz.upscale(frame, scale) for frame in frames])
    return viz.tube_panel_frames(frames, result.tube, result.layout.tubelet_size, result.actual, result.predicted,
                                 result.basis, result.cosine[SERIES_PREDICTED])


def _written_at(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:  # another visitor's render pruned it meanwhile
        return -math.inf


def output_video_path(result: TubeResult) -> Path:
    """A path in a private temp folder; the oldest renders beyond OUTPUT_VIDEOS_KEPT are deleted."""
    folder = Path(tempfile.gettempdir()) / "pdr-tubes"
    folder.mkdir(exist_ok=True)
    old = sorted(folder.glob("*.mp4"), key=_written_at)
    for stale in old[: max(0, len(old) - OUTPUT_VIDEOS_KEPT + 1)]:
        stale.unlink(missing_ok=True)
    t = result.tube
    name = (f"tube-{result.clip.digest[:16]}-{t.top}-{t.left}-{t.height}-{t.width}-"
            f"{t.first_tubelet}-{t.last_tubelet}-{os.getpid()}-{threading.get_ident()}.mp4")
    return folder / name


def features_image(result: TubeResult) -> np.ndarray:
    """The hidden pixels, the actual and the predicted features of each hidden tubelet (`viz.tube_features_image`)."""
    return viz.tube_features_image(result.clip.frames, result.tube, result.layout.patch_size,
                                   result.layout.tubelet_size, result.actual, result.predicted, result.basis)
