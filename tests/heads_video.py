"""A synthetic test clip for the 6.5 tests: each frame's grey level tells its index."""

from pathlib import Path


def write_counting_video(path: Path, num_frames: int = 80, fps: int = 20, size: tuple[int, int] = (96, 64)) -> str:
    """H.264 clip whose frame i is a uniform grey of level 20 + 2*i (so frames can be identified after decoding)."""
    import av
    import numpy as np

    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "0", "preset": "ultrafast"}
        for i in range(num_frames):
            frame = np.full((height, width, 3), 20 + 2 * i, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return str(path)
