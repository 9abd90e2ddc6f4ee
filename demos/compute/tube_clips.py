"""The clip 6.4 hides a tube in: frames sampled from a video, cropped to the model's square, whole tubelets.

- `load_clip(path, ...)` decodes only the frames asked for (`videos.sample_frames`), crops them to the model's
  square and caches the result per file and sampling (`CLIP_CACHE`), so moving the tube does not decode again.
- `clip_from_frames(frames, size)` does the same for frames already in memory.
- `sampling(...)` validates the frame count, step and rate a learner asked for.
- `default_frames()`: 8 frames on a CPU, 16 on a GPU, chosen without loading a model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from demos import devices, images, videos
from demos.cache import LRUCache
from demos.errors import UserError, number, whole_number

# Frames per clip by device (`default_frames`): 16 is what V-JEPA 2's probes were evaluated on (SSv2: 16
# frames, frame step 4). On a CPU 8 frames (4 tubelets) keep a click within seconds: half the tokens, and less
# than half the encoder's time (attention grows faster than the tokens; docs/benchmarks.md).
GPU_FRAMES = 16
CPU_FRAMES = 8
DEFAULT_FRAME_STEP = 4
CLIP_CACHE_SIZE = 4  # decoded clips kept (16 frames at 256 px: 3 MB each)

CLIP_CACHE = LRUCache(CLIP_CACHE_SIZE)  # decoded clips per (file, sampling)


def default_frames() -> int:
    """Frames per clip on this device (`devices.models_on_gpu`: known without loading a model)."""
    return GPU_FRAMES if devices.models_on_gpu() else CPU_FRAMES


def sampling(num_frames, frame_step, sample_fps, tubelet_size: int = 2):
    """Validated (num_frames, frame_step or None, fps or None, notes).

    `sample_fps` > 0 samples at that rate and ignores the frame step; 0 or None uses the frame step.
    The frame count is rounded up to a whole number of tubelets (V-JEPA 2 reads frames in pairs).
    """
    notes = []
    count = whole_number("The number of frames", num_frames, minimum=1, maximum=videos.MAX_FRAMES)
    if count % tubelet_size:
        rounded = count + tubelet_size - count % tubelet_size
        if rounded > videos.MAX_FRAMES:
            rounded -= tubelet_size
        notes.append(f"V-JEPA 2 reads frames in tubelets of {tubelet_size}, so {count} frames became {rounded}.")
        count = rounded
    fps = None if sample_fps in (None, "") else number("The sampling rate (fps)", sample_fps, minimum=0,
                                                         maximum=videos.MAX_SAMPLE_FPS)
    if fps:
        return count, None, fps, notes
    step = whole_number("The frame step", frame_step, minimum=1, maximum=videos.MAX_FRAME_STEP)
    return count, step, None, notes


@dataclass(frozen=True)
class Clip:
    """Frames exactly as the model sees them: (T, S, S, 3) uint8, T a multiple of the tubelet size."""

    frames: np.ndarray
    timestamps_s: tuple[float, ...]
    notes: tuple[str, ...]
    digest: str

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


def clip_from_frames(frames: np.ndarray, size: int, *, timestamps_s=None, notes=(), tubelet_size: int = 2) -> Clip:
    """Crop frames (T, H, W, 3) to the model's square and pad to whole tubelets (repeating the last frame)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise UserError("The video gave no frames that could be read.")
    notes = list(notes)
    square = np.stack([images.center_square(frame, size) for frame in frames])
    timestamps = list(timestamps_s) if timestamps_s is not None else [i / 8.0 for i in range(len(frames))]
    if len(square) % tubelet_size:
        missing = tubelet_size - len(square) % tubelet_size
        square = np.concatenate([square, np.repeat(square[-1:], missing, axis=0)])
        timestamps += [timestamps[-1]] * missing
        notes.append(f"The last frame was repeated {missing} time(s) to complete a tubelet of {tubelet_size} frames.")
    square = np.ascontiguousarray(square)
    square.setflags(write=False)
    return Clip(square, tuple(float(t) for t in timestamps), tuple(notes), images.image_digest(square))


def load_clip(path, *, start_s=0.0, num_frames=None, frame_step=DEFAULT_FRAME_STEP, sample_fps=None,
              size: int = 256, tubelet_size: int = 2) -> Clip:
    """Decode only the frames asked for (None: `default_frames()`), crop them to the model's square; cached
    per file and sampling."""
    if path is None or str(path) == "":
        raise UserError("No video yet: upload a clip, record one with the webcam, or pick an example.")
    num_frames = default_frames() if num_frames is None else num_frames
    start = number("The start time", start_s if start_s not in (None, "") else 0.0, minimum=0)
    count, step, fps, notes = sampling(num_frames, frame_step, sample_fps, tubelet_size)
    path = os.path.realpath(str(path))
    try:
        stat = os.stat(path)
    except OSError:
        raise UserError("The video file could not be found on the server; please upload it again.") from None
    key = (path, stat.st_size, stat.st_mtime_ns, start, count, step, fps, size, tubelet_size)

    def decode() -> Clip:
        sample = videos.sample_frames(path, start_s=start, num_frames=count, frame_step=step, fps=fps)
        return clip_from_frames(sample.frames, size, timestamps_s=sample.timestamps_s,
                                notes=[*notes, *sample.notes], tubelet_size=tubelet_size)

    clip, _ = CLIP_CACHE.get_or_compute(key, decode)
    return clip
