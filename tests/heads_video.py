"""A synthetic test clip for the 6.5 tests: each frame's grey level tells its index."""

from pathlib import Path


def write_counting_video(path: Path, num_frames: int = 80, fps: int = 20, size: tuple[int, int] = (96, 64)) -> str:
    """Lossless H.264 clip whose frame i is a uniform grey of level 20 + 2*i (frames can be identified after decoding)."""
    import numpy as np

    from demos import mp4

    width, height = size
    levels = (20 + 2 * np.arange(num_frames)).astype(np.uint8)
    frames = np.broadcast_to(levels[:, None, None, None], (num_frames, height, width, 3))
    return mp4.write_mp4(frames, path, fps, crf=0)
