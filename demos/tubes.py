"""6.4 V-JEPA tube masking: hide a spatio-temporal tube of a clip, predict its features over time.

V-JEPA hides *tubes*: the same patches in every frame (or in a span of frames). With frame-by-frame
random masks a model could copy a hidden patch from the next frame; a tube takes that shortcut away,
so the predictor has to carry objects and motion through time from what it can see.

The computation (no gradio in it):
- `load_clip(path, ...)` decodes only the frames asked for (`media.sample_frames`), crops them to the
  model's square and caches the result per file and sampling, so moving the tube does not decode again.
- `make_tube(...)` turns plain numbers (patches, tubelets) into a `Tube` that fits the clip, with notes
  saying what was adjusted.
- `predict_tube(clip, tube)` encodes the context (every token outside the tube) alone, predicts the
  tube's tokens (`demos.jepa`), and scores them against the layer-normalised features of the full clip,
  which are cached per clip (`TARGET_CACHE`): moving the tube reruns only context encoder + predictor.
- `copy_baseline`, `mean_context_baseline`, `per_tubelet` are the baselines and reductions, on tensors.
- `render_video`, `features_image`, `preview_image` draw what the learner sees.

`build_tab` wires it into the page and names the endpoints `/tube_predict` and `/tube_preview`.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import checkpoints
from demos import jepa, masks, media, viz
from demos.cache import LRUCache
from demos.errors import UserError, number, whole_number

log = logging.getLogger(__name__)

CHECKPOINT = jepa.CHECKPOINT
EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples" / "videos"

DEFAULT_FRAMES = 16  # what V-JEPA 2's probes were evaluated on (SSv2: 16 frames, frame step 4)
DEFAULT_FRAME_STEP = 4
FRAME_STEP_SLIDER_MAX = 32  # the API accepts up to media.MAX_FRAME_STEP
GRID_SLIDER_MAX = 16  # the real checkpoint's grid: 256 px / 16-pixel patches; other grids are clamped
TARGET_CACHE_SIZE = 4  # full-clip target features kept (ViT-L, 16 frames: 8 MB each)
CLIP_CACHE_SIZE = 4  # decoded clips kept (16 frames at 256 px: 3 MB each)
DISPLAY_MIN_SIDE = 256  # the output video and preview are upscaled to at least this (tiny models: 128 px)
OUTPUT_VIDEOS_KEPT = 64  # rendered mp4s kept in the temp folder before the oldest are deleted
TUBE_COLOR = (255, 220, 0)
SERIES_PREDICTED = "predictor"
SERIES_MEAN = "mean of visible tokens"
SERIES_COPY = "copy last visible tubelet"

Progress = Callable[[float, str], None]


TARGET_CACHE = LRUCache(TARGET_CACHE_SIZE)  # per (model, clip)
CLIP_CACHE = LRUCache(CLIP_CACHE_SIZE)  # decoded clips per (file, sampling)


# ---------------------------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------------------------


def sampling(num_frames, frame_step, sample_fps, tubelet_size: int = 2):
    """Validated (num_frames, frame_step or None, fps or None, notes).

    `sample_fps` > 0 samples at that rate and ignores the frame step; 0 or None uses the frame step.
    The frame count is rounded up to a whole number of tubelets (V-JEPA 2 reads frames in pairs).
    """
    notes = []
    count = whole_number("The number of frames", num_frames, minimum=1, maximum=media.MAX_FRAMES)
    if count % tubelet_size:
        rounded = count + tubelet_size - count % tubelet_size
        if rounded > media.MAX_FRAMES:
            rounded -= tubelet_size
        notes.append(f"V-JEPA 2 reads frames in tubelets of {tubelet_size}, so {count} frames became {rounded}.")
        count = rounded
    fps = None if sample_fps in (None, "") else number("The sampling rate (fps)", sample_fps, minimum=0,
                                                         maximum=media.MAX_SAMPLE_FPS)
    if fps:
        return count, None, fps, notes
    step = whole_number("The frame step", frame_step, minimum=1, maximum=media.MAX_FRAME_STEP)
    return count, step, None, notes


# ---------------------------------------------------------------------------------------------
# Clips
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clip:
    """Frames exactly as the model sees them: (T, S, S, 3) uint8, T a multiple of the tubelet size."""

    frames: np.ndarray
    timestamps_s: tuple[float, ...]
    notes: tuple[str, ...]
    digest: str
    source: object = None  # media.VideoInfo when decoded from a file

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    @property
    def size(self) -> int:
        return self.frames.shape[1]

    @property
    def playback_fps(self) -> float:
        """The rate the frames were sampled at, so the shaded clip plays at the source's speed."""
        if len(self.timestamps_s) > 1:
            gaps = np.diff(np.asarray(self.timestamps_s, dtype=np.float64))
            gaps = gaps[gaps > 0]
            if len(gaps):
                return float(np.clip(1.0 / np.median(gaps), 1.0, 30.0))
        return 8.0


def clip_from_frames(frames: np.ndarray, size: int, *, timestamps_s=None, notes=(), tubelet_size: int = 2,
                     source=None) -> Clip:
    """Crop frames (T, H, W, 3) to the model's square and pad to whole tubelets (repeating the last frame)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise UserError("The video gave no frames that could be read.")
    notes = list(notes)
    square = np.stack([media.center_square(frame, size) for frame in frames])
    timestamps = list(timestamps_s) if timestamps_s is not None else [i / 8.0 for i in range(len(frames))]
    if len(square) % tubelet_size:
        missing = tubelet_size - len(square) % tubelet_size
        square = np.concatenate([square, np.repeat(square[-1:], missing, axis=0)])
        timestamps += [timestamps[-1]] * missing
        notes.append(f"The last frame was repeated {missing} time(s) to complete a tubelet of {tubelet_size} frames.")
    square = np.ascontiguousarray(square)
    square.setflags(write=False)
    return Clip(square, tuple(float(t) for t in timestamps), tuple(notes), media.image_digest(square), source)


def load_clip(path, *, start_s=0.0, num_frames=DEFAULT_FRAMES, frame_step=DEFAULT_FRAME_STEP, sample_fps=None,
              size: int = 256, tubelet_size: int = 2) -> Clip:
    """Decode only the frames asked for, crop them to the model's square; cached per file and sampling."""
    if path is None or str(path) == "":
        raise UserError("No video yet: upload a clip, record one with the webcam, or pick an example.")
    start = number("The start time", start_s if start_s not in (None, "") else 0.0, minimum=0)
    count, step, fps, notes = sampling(num_frames, frame_step, sample_fps, tubelet_size)
    path = os.path.realpath(str(path))
    try:
        stat = os.stat(path)
    except OSError:
        raise UserError("The video file could not be found on the server; please upload it again.") from None
    key = (path, stat.st_size, stat.st_mtime_ns, start, count, step, fps, size, tubelet_size)

    def decode() -> Clip:
        info = media.probe_video(path)
        sample = media.sample_frames(path, start_s=start, num_frames=count, frame_step=step, fps=fps)
        return clip_from_frames(sample.frames, size, timestamps_s=sample.timestamps_s,
                                notes=[*notes, *sample.notes], tubelet_size=tubelet_size, source=info)

    clip, _ = CLIP_CACHE.get_or_compute(key, decode)
    return clip


# ---------------------------------------------------------------------------------------------
# The tube
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tube:
    """A rectangle of patches hidden over a span of tubelets (both ends included)."""

    top: int
    left: int
    height: int
    width: int
    first_tubelet: int
    last_tubelet: int

    @property
    def tubelets(self) -> range:
        return range(self.first_tubelet, self.last_tubelet + 1)

    def patch_ids(self, grid: masks.PatchGrid) -> np.ndarray:
        return masks.block_ids(grid, self.top, self.left, self.height, self.width)

    def token_ids(self, grid: masks.PatchGrid) -> np.ndarray:
        """Time-major V-JEPA 2 token ids, sorted: tubelet by tubelet, row-major within each."""
        return masks.spatiotemporal_ids(grid, self.patch_ids(grid), self.tubelets)

    def frames(self, tubelet_size: int) -> range:
        """The frame indices the tube hides."""
        return range(self.first_tubelet * tubelet_size, (self.last_tubelet + 1) * tubelet_size)

    def pixel_box(self, patch_size: int) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) in pixels of the model view, bottom/right exclusive."""
        return (self.top * patch_size, self.left * patch_size,
                (self.top + self.height) * patch_size, (self.left + self.width) * patch_size)

    def as_dict(self) -> dict:
        return {"top": self.top, "left": self.left, "height": self.height, "width": self.width,
                "first_tubelet": self.first_tubelet, "last_tubelet": self.last_tubelet}


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
    if height > grid.rows or width > grid.cols:
        notes.append(f"The tube was {height}×{width} patches; the grid is {grid.rows}×{grid.cols}, so it was "
                     f"shrunk to {min(height, grid.rows)}×{min(width, grid.cols)}.")
        height, width = min(height, grid.rows), min(width, grid.cols)
    fitted_top, fitted_left = min(top, grid.rows - height), min(left, grid.cols - width)
    if (fitted_top, fitted_left) != (top, left):
        notes.append(f"The tube reached past the edge of the {grid.rows}×{grid.cols} grid, so it was moved to "
                     f"row {fitted_top}, column {fitted_left}.")
    if first > last:
        first, last = last, first
        notes.append("The first tubelet came after the last one, so the two were swapped.")
    if last > num_tubelets - 1:
        last = num_tubelets - 1
        notes.append(f"The clip has {num_tubelets} tubelets (0 to {num_tubelets - 1}), so the tube ends at {last}.")
    if first > last:
        first = last
    return Tube(fitted_top, fitted_left, height, width, first, last), notes


def tube_from_click(grid: masks.PatchGrid, x: float, y: float, height: int, width: int) -> tuple[int, int]:
    """Top-left patch of a tube centred on a click at pixel (x, y) of the model view."""
    height, width = min(max(int(height), 1), grid.rows), min(max(int(width), 1), grid.cols)
    return masks.clamp_block(grid, y / grid.patch_size - 0.5, x / grid.patch_size - 0.5, height, width)


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


@checkpoints.gpu_task
def predict_tube(clip: Clip, top, left, height, width, first_tubelet=0, last_tubelet=None, *,
                 checkpoint: str = CHECKPOINT, progress: Progress | None = None) -> TubeResult:
    """Hide the tube, encode the rest alone, predict the tube's features and score them over time."""
    import torch

    progress = progress or (lambda fraction, desc: None)
    loaded = jepa.load(checkpoint)
    model, processor = loaded.model, loaded.processor
    config = model.config
    if clip.size != config.crop_size:
        raise ValueError(f"clip is {clip.size} px, the model wants {config.crop_size}")
    layout = jepa.TokenLayout.of(config, clip.num_frames)
    grid = masks.PatchGrid(layout.rows, layout.cols, layout.patch_size)
    tube, notes = make_tube(grid, layout.tubelets, top, left, height, width, first_tubelet, last_tubelet)
    target_ids = tube.token_ids(grid)
    context_ids = masks.complement(layout.num_tokens, target_ids)
    if len(context_ids) == 0:
        raise UserError("The tube hides the whole clip, so there is nothing left to predict from. "
                        "Make it smaller or hide it for fewer tubelets.")
    seconds = {}

    start = time.perf_counter()
    pixels = jepa.clip_tensor(processor, np.array(clip.frames))  # a writable copy: the cached frames are read-only
    seconds["preprocess"] = time.perf_counter() - start

    def full_clip_targets():
        progress(0.1, "Encoding the whole clip once (the targets; cached for this clip)…")
        targets = jepa.target_features(model, pixels)[0].cpu()
        # PCA colours are fitted once per clip on its actual features, so they stay comparable as the tube moves.
        sample = targets[:: max(1, len(targets) // 2048)].numpy()
        return targets, viz.pca_basis(sample)

    start = time.perf_counter()
    (targets, basis), hit = TARGET_CACHE.get_or_compute((loaded.checkpoint.name, clip.digest), full_clip_targets,
                                                       owner=loaded.model)
    seconds["targets"] = time.perf_counter() - start

    progress(0.5, f"Encoding the {len(context_ids)} visible tokens alone…")
    start = time.perf_counter()
    context = jepa.context_features(model, pixels, context_ids)
    seconds["context_encoder"] = time.perf_counter() - start
    progress(0.75, f"Predicting the {len(target_ids)} hidden tokens…")
    start = time.perf_counter()
    predicted = jepa.predict(model, context, context_ids, target_ids, layout.num_tokens)[0].cpu()
    seconds["predictor"] = time.perf_counter() - start

    actual = targets[torch.as_tensor(target_ids)]
    hidden_tubelets = len(tube.tubelets)
    guesses = {SERIES_PREDICTED: predicted,
               SERIES_MEAN: mean_context_baseline(targets, context_ids)[None].expand_as(actual)}
    source = copy_source_tubelet(tube, layout.tubelets)
    if source is not None:
        guesses[SERIES_COPY] = copy_baseline(targets, grid, tube.patch_ids(grid), tube.tubelets, source)
    cosine = {name: per_tubelet(jepa.cosine_rows(guess, actual), hidden_tubelets) for name, guess in guesses.items()}
    l1 = {name: per_tubelet(l1_rows(guess, actual), hidden_tubelets) for name, guess in guesses.items()}
    return TubeResult(clip, tube, layout, target_ids, context_ids, predicted.numpy(), actual.numpy(), cosine, l1,
                      source, hit, basis, notes, seconds, checkpoint)


# ---------------------------------------------------------------------------------------------
# Pictures and video
# ---------------------------------------------------------------------------------------------


def _display_scale(size: int) -> int:
    return max(1, -(-DISPLAY_MIN_SIDE // size))


def _upscale(image: np.ndarray, scale: int) -> np.ndarray:
    return image if scale == 1 else np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)


def shade_frames(clip: Clip, tube: Tube, patch_size: int, tubelet_size: int) -> np.ndarray:
    """The clip with the tube shaded grey on the frames it hides and outlined thinly on the others."""
    top, left, bottom, right = tube.pixel_box(patch_size)
    hidden_frames = set(tube.frames(tubelet_size))
    box = np.zeros(clip.frames.shape[1:3], dtype=bool)
    box[top:bottom, left:right] = True
    grey = np.full(clip.frames.shape[1:], viz.HIDDEN_GREY, dtype=np.uint8)
    out = []
    for index, frame in enumerate(clip.frames):
        if index in hidden_frames:
            frame = viz.draw_rectangle(viz.blend(frame, grey, 0.85, where=box), top, left, bottom, right,
                                       TUBE_COLOR, thickness=2)
        else:
            frame = viz.draw_rectangle(frame, top, left, bottom, right, (255, 255, 255), thickness=1)
        out.append(frame)
    return np.stack(out)


def render_video(result: TubeResult, path: str | os.PathLike) -> str:
    """The shaded clip as an H.264 mp4 (plays in every browser), upscaled for small models."""
    frames = shade_frames(result.clip, result.tube, result.layout.patch_size, result.layout.tubelet_size)
    scale = _display_scale(result.clip.size)
    frames = np.stack([_upscale(frame, scale) for frame in frames])
    return media.write_mp4(frames, str(path), result.clip.playback_fps)


def output_video_path(result: TubeResult) -> Path:
    """A path in a private temp folder; the oldest renders beyond OUTPUT_VIDEOS_KEPT are deleted."""
    folder = Path(tempfile.gettempdir()) / "pdr-tubes"
    folder.mkdir(exist_ok=True)
    old = sorted(folder.glob("*.mp4"), key=lambda p: p.stat().st_mtime)
    for stale in old[: max(0, len(old) - OUTPUT_VIDEOS_KEPT + 1)]:
        stale.unlink(missing_ok=True)
    t = result.tube
    name = (f"tube-{result.clip.digest[:16]}-{t.top}-{t.left}-{t.height}-{t.width}-"
            f"{t.first_tubelet}-{t.last_tubelet}-{os.getpid()}-{threading.get_ident()}.mp4")
    return folder / name


def _font():
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=13)
    except TypeError:  # older Pillow
        return ImageFont.load_default()


def features_image(result: TubeResult) -> np.ndarray:
    """One picture, columns = hidden tubelets: the hidden pixels, the actual features, the predicted features.

    Features are coloured by their top 3 principal components, fitted on the whole clip's actual features,
    so the same colour means the same direction in both rows.
    """
    from PIL import Image, ImageDraw

    tube, layout = result.tube, result.layout
    p, size = layout.patch_size, layout.tubelet_size
    columns = len(tube.tubelets)
    patch_px = max(2, min(32, 112 // max(tube.height, tube.width), 1400 // max(1, columns * tube.width)))
    cell_h, cell_w = tube.height * patch_px, tube.width * patch_px
    gap, margin_left, margin_top = 6, 84, 22
    rows = [("hidden pixels", None), ("actual", result.actual), ("predicted", result.predicted)]
    width = margin_left + columns * (cell_w + gap)
    height = margin_top + len(rows) * (cell_h + gap)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = _font()
    top, left, bottom, right = tube.pixel_box(p)
    per_tubelet_tokens = tube.height * tube.width
    for c, t in enumerate(tube.tubelets):
        x = margin_left + c * (cell_w + gap)
        label = f"t{t} (f{t * size}-{t * size + size - 1})" if cell_w >= 80 else f"t{t}"
        draw.text((x, 4), label, fill=(0, 0, 0), font=font)
        for r, (_row_label, feats) in enumerate(rows):
            y = margin_top + r * (cell_h + gap)
            if feats is None:
                crop = result.clip.frames[t * size, top:bottom, left:right]
                cell = Image.fromarray(crop).resize((cell_w, cell_h), Image.Resampling.BILINEAR)
            else:
                block = feats[c * per_tubelet_tokens:(c + 1) * per_tubelet_tokens]
                colours = viz.pca_colors(block, result.basis).reshape(tube.height, tube.width, 3)
                cell = Image.fromarray(viz.upsample_patches(colours, patch_px))
            canvas.paste(cell, (x, y))
    for r, (label, _) in enumerate(rows):
        draw.text((4, margin_top + r * (cell_h + gap) + cell_h // 2 - 7), label, fill=(0, 0, 0), font=font)
    return np.asarray(canvas)


def preview_image(clip: Clip, tube: Tube | None, patch_size: int, tubelet_size: int) -> np.ndarray:
    """The first frame the tube hides, with the patch grid and the tube, upscaled like the output video."""
    frame_index = tube.first_tubelet * tubelet_size if tube is not None else 0
    frame = viz.draw_grid(clip.frames[min(frame_index, clip.num_frames - 1)], patch_size)
    if tube is not None:
        top, left, bottom, right = tube.pixel_box(patch_size)
        box = np.zeros(frame.shape[:2], dtype=bool)
        box[top:bottom, left:right] = True
        grey = np.full(frame.shape, viz.HIDDEN_GREY, dtype=np.uint8)
        frame = viz.draw_rectangle(viz.blend(frame, grey, 0.6, where=box), top, left, bottom, right, TUBE_COLOR)
    return frame


def summary_markdown(result: TubeResult) -> str:
    n = result.numbers()
    tube = result.tube
    frames = tube.frames(result.layout.tubelet_size)
    whole_time = tube.first_tubelet == 0 and tube.last_tubelet == result.layout.tubelets - 1
    span = ("in every frame" if whole_time else
            f"in frames {frames.start}–{frames.stop - 1} (tubelets {tube.first_tubelet}–{tube.last_tubelet})")
    lines = [
        f"**Tube: {tube.height}×{tube.width} patches at row {tube.top}, column {tube.left}, hidden {span}** — "
        f"{n['num_hidden_tokens']} of {n['num_hidden_tokens'] + n['num_context_tokens']} tokens hidden; the "
        f"context encoder saw the other {n['num_context_tokens']} alone.",
        "",
        "| guess | mean cosine with the actual features |",
        "| --- | --- |",
    ]
    for name, value in n["mean_cosine"].items():
        lines.append(f"| {name} | {value:.3f} |")
    worst = int(np.argmax(result.l1[SERIES_PREDICTED]))
    lines += ["", f"Biggest surprise (prediction error, L1) at tubelet {list(tube.tubelets)[worst]}: "
                  f"{result.l1[SERIES_PREDICTED][worst]:.3f}."]
    if n["target_cache_hit"]:
        lines.append("Full-clip targets came from the cache: only the context encoder and predictor ran.")
    notes = [*result.clip.notes, *result.notes]
    if notes:
        lines += ["", "**Notes:** " + " ".join(notes)]
    return "\n".join(lines)


EXPLANATION = """
### What you are looking at
V-JEPA 2 cuts the clip into **tubelets**: 16×16-pixel patches over 2 frames. The yellow tube is hidden:
the **context encoder sees only the tokens outside it** (the hidden pixels never enter its attention),
and the **predictor** guesses the tube's *features*, token by token, from that context. The target is
what the encoder says about the full clip there (layer-normalised, as in training). Nothing is painted
back: the picture on the right shows actual and predicted features as colours (the same 3 principal
directions for both), so similar colours mean similar features.

### Why tubes?
If each frame were masked at random, the model could peek at the same patch in the next frame and
copy it. Hiding the *same* region through time takes that shortcut away: to predict the tube the model
has to know what is there and how it moves. Hide a region **for a moment only** (a short time span)
and watch the *copy the last visible tubelet* baseline: when nothing changes, copying wins easily;
when something moves or appears behind the tube, only a model of the scene can keep up.

### Surprise
The prediction error over time is a **surprise** signal: V-JEPA work uses it to spot physically
implausible events (an object vanishing behind an occluder, say): error spikes where the world did
not do what the model expected.
"""


# ---------------------------------------------------------------------------------------------
# The tab
# ---------------------------------------------------------------------------------------------


def example_videos() -> list[str]:
    return sorted(str(p) for p in EXAMPLES_DIR.glob("*.mp4"))


def build_tab() -> None:
    """The 6.4 tab: video and tube controls, outputs, explanation; endpoints /tube_predict and /tube_preview."""
    import gradio as gr

    from demos import ui

    def model_geometry(progress):
        ui.ensure_loaded([CHECKPOINT], progress)
        config = jepa.load().model.config
        return config.crop_size, config.patch_size, config.tubelet_size

    def clip_for(video, start_s, num_frames, frame_step, sample_fps, progress):
        crop, patch, tubelet = model_geometry(progress)
        progress(0.05, desc="Decoding the frames…")
        clip = load_clip(video, start_s=start_s, num_frames=num_frames, frame_step=frame_step,
                         sample_fps=sample_fps, size=crop, tubelet_size=tubelet)
        return clip, patch, tubelet

    @ui.gradio_errors
    def tube_predict(video, start_s: float, num_frames: int, frame_step: int, sample_fps: float, top: int,
                     left: int, height: int, width: int, first_tubelet: int, last_tubelet: int,
                     progress=gr.Progress()):
        """Hide a tube (patches top/left/height/width, tubelets first..last inclusive) and predict its features.

        Samples `num_frames` frames from `start_s` seconds, every `frame_step`-th frame (or at
        `sample_fps` frames per second when it is above 0). Returns the clip with the tube shaded (mp4),
        the cosine-over-time table, the surprise (L1 error) table, the actual-vs-predicted feature image,
        a summary and the numbers (cosine and l1 per series and tubelet, tube, grid, notes, ...).
        """
        clip, patch, tubelet = clip_for(video, start_s, num_frames, frame_step, sample_fps, progress)
        result = predict_tube(clip, top, left, height, width, first_tubelet, last_tubelet,
                              progress=lambda f, d: progress(0.1 + 0.8 * f, desc=d))
        progress(0.92, desc="Rendering the video and pictures…")
        start = time.perf_counter()
        video_path = render_video(result, output_video_path(result))
        image = features_image(result)
        result.seconds["render"] = time.perf_counter() - start
        return (video_path, result.cosine_table(), result.surprise_table(), image, summary_markdown(result),
                result.numbers())

    @ui.gradio_errors
    def tube_preview(video, start_s: float, num_frames: int, frame_step: int, sample_fps: float, top: int,
                     left: int, height: int, width: int, first_tubelet: int, last_tubelet: int,
                     progress=gr.Progress()):
        """The first frame the tube hides, as the model sees it, with the patch grid and the tube; and notes."""
        if video is None:
            return None, ""
        clip, patch, tubelet = clip_for(video, start_s, num_frames, frame_step, sample_fps, progress)
        grid = masks.PatchGrid.square(clip.size, patch)
        tube, notes = make_tube(grid, clip.num_frames // tubelet, top, left, height, width, first_tubelet,
                                last_tubelet)
        frames = tube.frames(tubelet)
        text = (f"{clip.num_frames} frames at {clip.playback_fps:.1f} fps "
                f"({clip.timestamps_s[0]:.2f}–{clip.timestamps_s[-1]:.2f} s), {grid.rows}×{grid.cols} patches, "
                f"{clip.num_frames // tubelet} tubelets. Showing frame {frames.start}, the first the tube hides. "
                "Click the frame to move the tube.")
        all_notes = [*clip.notes, *notes]
        if all_notes:
            text += "\n\n**Notes:** " + " ".join(all_notes)
        return _upscale(preview_image(clip, tube, patch, tubelet), _display_scale(clip.size)), text

    @ui.gradio_errors
    @ui.receives_click
    def move_tube(height, width, evt: gr.SelectData):
        """A click only sets the tube's position; the computation is the separate /tube_predict endpoint."""
        if not checkpoints.is_loaded(CHECKPOINT) or evt is None or evt.index is None:
            return gr.skip(), gr.skip()
        config = jepa.load().model.config
        scale = _display_scale(config.crop_size)
        grid = masks.PatchGrid.square(config.crop_size, config.patch_size)
        x, y = evt.index[0] / scale, evt.index[1] / scale
        top, left = tube_from_click(grid, x, y, height, width)
        return top, left


    def tubelet_limits(num_frames, first, last):
        try:
            tubelets = max(1, -(-int(num_frames) // 2))
        except (TypeError, ValueError):
            return gr.skip(), gr.skip()
        return (gr.update(maximum=tubelets - 1, value=min(first, tubelets - 1)),
                gr.update(maximum=tubelets - 1, value=min(last, tubelets - 1)))

    default_tubelets = DEFAULT_FRAMES // 2
    with gr.Row():
        with gr.Column(scale=1):
            # include_audio=True: dropping audio would need an ffmpeg binary, which a Space may not have.
            video = ui.VideoInput(label="Video", sources=["upload", "webcam"], include_audio=True, height=280,
                               elem_id="tubes-video")
            gr.Examples(examples=example_videos(), inputs=video, cache_examples=False)
            with gr.Accordion("Sampling", open=True):
                with gr.Row():
                    start_s = gr.Number(value=0.0, minimum=0, label="Start (s)", precision=2)
                    num_frames = gr.Slider(2, media.MAX_FRAMES, value=DEFAULT_FRAMES, step=2, label="Frames",
                                           info="Whole tubelets of 2 frames.")
                with gr.Row():
                    frame_step = gr.Slider(1, FRAME_STEP_SLIDER_MAX, value=DEFAULT_FRAME_STEP, step=1,
                                           label="Frame step", info="Take every n-th frame.")
                    sample_fps = gr.Number(value=0, minimum=0, maximum=media.MAX_SAMPLE_FPS, label="Or fps",
                                           info="Above 0: sample at this rate instead of the frame step.")
            with gr.Accordion("The tube (in patches and tubelets)", open=True):
                with gr.Row():
                    top = gr.Slider(0, GRID_SLIDER_MAX - 1, value=5, step=1, label="Top row", elem_id="tubes-top")
                    left = gr.Slider(0, GRID_SLIDER_MAX - 1, value=5, step=1, label="Left column",
                                     elem_id="tubes-left")
                with gr.Row():
                    height = gr.Slider(1, GRID_SLIDER_MAX, value=5, step=1, label="Height")
                    width = gr.Slider(1, GRID_SLIDER_MAX, value=5, step=1, label="Width")
                with gr.Row():
                    first_tubelet = gr.Slider(0, default_tubelets - 1, value=0, step=1, label="Hidden from tubelet")
                    last_tubelet = gr.Slider(0, default_tubelets - 1, value=default_tubelets - 1, step=1,
                                             label="to tubelet", info="Both included; tubelet t = frames 2t, 2t+1.")
            run = gr.Button("Hide the tube and predict", variant="primary", elem_id="tubes-run")
        with gr.Column(scale=2):
            with gr.Row():
                preview = gr.Image(label="Click to place the tube", type="numpy", format="png",
                                   interactive=False, height=300, elem_id="tubes-preview")
                shaded = gr.Video(label="The clip with the tube hidden", autoplay=True, loop=True, height=300,
                                  interactive=False, elem_id="tubes-shaded")
            preview_text = gr.Markdown(elem_id="tubes-preview-text")
            with gr.Row():
                cosine_plot = gr.LinePlot(x="tubelet", y="cosine", color="series", y_lim=[-1, 1],
                                          label="Cosine with the actual features, per tubelet",
                                          x_title="tubelet (2 frames)", elem_id="tubes-cosine")
                surprise_plot = gr.LinePlot(x="tubelet", y="L1 error", color="series",
                                            label="Surprise: the predictor's error (L1) over time",
                                            x_title="tubelet (2 frames)", elem_id="tubes-surprise")
            features = ui.output_image("Tube features over time (PCA colours): actual vs predicted",
                                       elem_id="tubes-features")
            summary = gr.Markdown(elem_id="tubes-summary")
            numbers = gr.JSON(label="Numbers", visible=False)
    gr.Markdown(EXPLANATION)

    sampling_inputs = [video, start_s, num_frames, frame_step, sample_fps]
    tube_inputs = [top, left, height, width, first_tubelet, last_tubelet]
    outputs = [shaded, cosine_plot, surprise_plot, features, summary, numbers]
    run.click(tube_predict, sampling_inputs + tube_inputs, outputs, api_name="tube_predict",
              concurrency_id=ui.MODEL_CONCURRENCY_ID)

    preview_args = dict(fn=tube_preview, inputs=sampling_inputs + tube_inputs, outputs=[preview, preview_text],
                        concurrency_id=ui.MODEL_CONCURRENCY_ID, trigger_mode="always_last")
    video.change(api_name="tube_preview", **preview_args)
    for control in (start_s, sample_fps):
        control.submit(api_name=False, **preview_args)
    for control in (frame_step, top, left, height, width, first_tubelet, last_tubelet):
        control.release(api_name=False, **preview_args)
    num_frames.release(tubelet_limits, [num_frames, first_tubelet, last_tubelet], [first_tubelet, last_tubelet],
                       api_name=False).then(api_name=False, **preview_args)
    preview.select(move_tube, [height, width], [top, left], api_name=False).then(api_name=False, **preview_args)
