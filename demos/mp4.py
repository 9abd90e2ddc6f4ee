"""Writing frames as an H.264 MP4 every browser plays (yuv420p, even size, index first)."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np

from demos.errors import UserError
from demos.images import array_to_rgb

MIN_WRITE_FPS, MAX_WRITE_FPS = 1.0, 60.0  # frame rates `write_mp4` accepts (others are clamped)


def write_mp4(frames, path, fps: float, *, crf: int = 20, preset: str = "veryfast") -> str:
    """Write frames as a browser-playable H.264 MP4 (yuv420p, even size); return the path.

    frames: a (T, H, W[, C]) array, or any iterable of (H, W[, C]) frames (a generator writes a clip too
    long to hold in memory). Grey, alpha and float frames are converted to RGB.
    crf: x264's quality (0 lossless, 20 visually clean, 51 worst); preset: x264's speed ("ultrafast"...).
    """
    import av  # imported here: image-only demos should not pay for it

    if isinstance(frames, np.ndarray) and frames.ndim not in (3, 4):
        raise UserError(f"A video needs frames shaped (T, H, W, 3); got {frames.shape}.")
    rgb_frames = (_even_size(array_to_rgb(frame)) for frame in frames)
    first = next(rgb_frames, None)
    if first is None:
        raise UserError("A video needs at least one frame.")
    path = str(path)
    # faststart puts the index first, so a browser can play while downloading.
    with av.open(path, mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=_write_rate(fps))
        stream.width, stream.height = first.shape[1], first.shape[0]
        stream.pix_fmt = "yuv420p"  # the only pixel format every browser decodes
        stream.options = {"crf": str(int(crf)), "preset": preset}
        for index, pixels in enumerate(itertools.chain([first], rgb_frames)):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))  # flush the encoder's delayed frames
    return path


def _even_size(frame: np.ndarray) -> np.ndarray:
    """Pad an odd height or width by repeating the edge pixel: yuv420p needs even sizes."""
    pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2
    if pad_h or pad_w:
        frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return frame


def _write_rate(fps) -> Fraction:
    try:
        value = float(fps)
    except (TypeError, ValueError):
        value = 25.0
    if not math.isfinite(value):
        value = 25.0
    value = min(max(value, MIN_WRITE_FPS), MAX_WRITE_FPS)
    return Fraction(value).limit_denominator(1001)  # 29.97 -> 30000/1001

