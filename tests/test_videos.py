"""demos.videos and demos.mp4: videos probed and sampled by seeking, and clips written for the browser.

All videos are generated here, in temporary folders, with PyAV: nothing is downloaded.
"""

import time
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from demos import mp4, uploads, videos
from demos.errors import UserError


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def grey_clip(count: int, height: int = 48, width: int = 64) -> np.ndarray:
    """Frame i is a flat grey of level 4*i: the frame index can be read back from the pixels."""
    levels = (np.arange(count) * 4 % 256).astype(np.uint8)
    return np.broadcast_to(levels[:, None, None, None], (count, height, width, 3)).copy()


def frame_index(frame: np.ndarray) -> int:
    return int(round(float(frame.mean()) / 4))


def encode(path, frames, *, fps=30, codec="libx264", fmt=None, rotation=None, options=None,
           container_options=None) -> str:
    """Write frames with PyAV; lossless-ish H.264 (crf 0) by default so grey levels survive."""
    with av.open(str(path), "w", format=fmt, options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.options = options if options is not None else (
            {"preset": "ultrafast", "crf": "0"} if codec == "libx264" else {})
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for pixels in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")))
        container.mux(stream.encode(None))
    return str(path)


@pytest.fixture(scope="module")
def clip30(tmp_path_factory):
    """2 s at 30 fps, 64x48, frame i has grey level 4*i."""
    return encode(tmp_path_factory.mktemp("v") / "clip30.mp4", grey_clip(60))


def has_encoder(name: str) -> bool:
    return name in av.codecs_available


def test_limits_are_named_constants():
    assert videos.MAX_FRAME_SIDE == 512 and videos.MAX_FRAMES == 64


# ---------------------------------------------------------------------------------------------
# writing videos
# ---------------------------------------------------------------------------------------------
def test_write_mp4_round_trip(tmp_path):
    frames = np.random.default_rng(1).integers(0, 255, (7, 33, 47, 3), dtype=np.uint8)  # odd sizes
    path = mp4.write_mp4(frames, tmp_path / "out.mp4", fps=12)
    assert path == str(tmp_path / "out.mp4")
    with av.open(path) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert float(stream.average_rate) == 12
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        assert stream.codec_context.pix_fmt == "yuv420p"
    assert len(decoded) == 7
    assert decoded[0].shape == (34, 48, 3)
    with open(path, "rb") as handle:  # faststart: the index ('moov') precedes the media data
        head = handle.read(4096)
    assert head.find(b"moov") != -1 and (head.find(b"mdat") == -1 or head.find(b"moov") < head.find(b"mdat"))


def test_write_mp4_clamps_fps_and_validates(tmp_path):
    path = mp4.write_mp4(grey_clip(2), tmp_path / "fast.mp4", fps=1000)
    with av.open(path) as container:
        assert float(container.streams.video[0].average_rate) == mp4.MAX_WRITE_FPS
    with pytest.raises(UserError):
        mp4.write_mp4(np.zeros((0, 4, 4, 3), np.uint8), tmp_path / "none.mp4", fps=10)


# ---------------------------------------------------------------------------------------------
# probing and sampling videos
# ---------------------------------------------------------------------------------------------
def test_probe(clip30):
    info = videos.probe_video(clip30)
    assert info.duration_s == pytest.approx(2.0, abs=0.05)
    assert info.fps == pytest.approx(30)
    assert (info.width, info.height, info.rotation) == (64, 48, 0)
    assert info.num_frames_estimate == 60


def test_sample_with_frame_step(clip30):
    sample = videos.sample_frames(clip30, num_frames=8, frame_step=4)
    assert sample.frames.shape == (8, 48, 64, 3) and sample.frames.dtype == np.uint8
    assert [frame_index(f) for f in sample.frames] == list(range(0, 32, 4))
    assert sample.timestamps_s == pytest.approx([i * 4 / 30 for i in range(8)], abs=1e-3)
    assert sample.notes == []


def test_sample_with_fps_and_start(clip30):
    sample = videos.sample_frames(clip30, start_s=0.5, num_frames=5, frame_step=None, fps=10)
    assert sample.timestamps_s == pytest.approx([0.5, 0.6, 0.7, 0.8, 0.9], abs=1e-3)
    assert [frame_index(f) for f in sample.frames] == [15, 18, 21, 24, 27]
    # fps wins over frame_step when both are given
    both = videos.sample_frames(clip30, start_s=0.5, num_frames=5, frame_step=4, fps=10)
    assert both.timestamps_s == sample.timestamps_s


def test_start_moved_back_when_clip_is_short(clip30):
    sample = videos.sample_frames(clip30, start_s=1.5, num_frames=8, frame_step=4)
    # 8 frames at step 4 need 28 frames after the start; the last frame is 59 -> start at frame 31
    assert [frame_index(f) for f in sample.frames] == list(range(31, 60, 4))
    assert len(sample.notes) == 1 and "Start moved" in sample.notes[0]
    late = videos.sample_frames(clip30, start_s=1000, num_frames=2, frame_step=1)
    assert [frame_index(f) for f in late.frames] == [58, 59]


def test_short_clip_is_padded_with_note(clip30):
    sample = videos.sample_frames(clip30, num_frames=20, frame_step=4)  # needs 77 frames, has 60
    assert sample.frames.shape[0] == 20
    assert [frame_index(f) for f in sample.frames] == list(range(0, 60, 4)) + [56] * 5
    assert sample.timestamps_s[-1] == sample.timestamps_s[14]
    assert any("Only 15 frames available at step 4" in note and "repeated to make 20" in note
               for note in sample.notes)


def test_one_frame_video(tmp_path):
    path = mp4.write_mp4(grey_clip(1), tmp_path / "one.mp4", fps=25)
    sample = videos.sample_frames(path, num_frames=16, frame_step=4)
    assert sample.frames.shape == (16, 48, 64, 3)
    assert np.all(sample.frames == sample.frames[0]) and sample.timestamps_s == [0.0] * 16
    assert sample.notes and "repeated" in sample.notes[-1]


def test_one_pixel_video(tmp_path):
    path = mp4.write_mp4(np.full((3, 1, 1, 3), 200, np.uint8), tmp_path / "dot.mp4", fps=10)
    info = videos.probe_video(path)
    assert (info.width, info.height) == (2, 2)  # padded to even size when written
    sample = videos.sample_frames(path, num_frames=3, frame_step=1)
    assert sample.frames.shape == (3, 2, 2, 3)
    assert np.all(np.abs(sample.frames.astype(int) - 200) <= 3)


def test_large_frames_are_downscaled(tmp_path):
    frames = np.zeros((3, 720, 1280, 3), np.uint8)
    frames[:, :, :640] = 255
    path = encode(tmp_path / "hd.mp4", frames, options={"preset": "ultrafast"})
    sample = videos.sample_frames(path, num_frames=2, frame_step=1)
    assert sample.frames.shape == (2, 512, 910, 3)
    assert sample.frames[0, :, :400].mean() > 240 and sample.frames[0, :, 510:].mean() < 15


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_rotated_video_stands_upright(tmp_path, rotation):
    frames = np.zeros((4, 48, 64, 3), np.uint8)
    frames[:, :24, :32] = [0, 255, 0]  # green top-left quadrant, as stored
    path = encode(tmp_path / "phone.mp4", frames, rotation=rotation)
    info = videos.probe_video(path)
    assert info.rotation == rotation % 360
    upright = np.rot90(frames[0], k=(rotation % 360) // 90)  # the display matrix turns counter-clockwise
    assert (info.height, info.width) == upright.shape[:2]
    sample = videos.sample_frames(path, num_frames=2, frame_step=1)
    assert sample.frames.shape[1:3] == upright.shape[:2]
    green = sample.frames[0, ..., 1] > 128
    assert np.mean(green == (upright[..., 1] > 128)) > 0.97


@pytest.mark.parametrize("codec", ["libvpx", "libvpx-vp9"])
@pytest.mark.parametrize("live", [False, True])
def test_webm_without_frame_count(tmp_path, codec, live):
    if not has_encoder(codec):
        pytest.skip(f"this PyAV wheel has no {codec} encoder")
    # live=1 writes no duration and no cues, like a browser's MediaRecorder (webcam) WebM
    path = encode(tmp_path / "cam.webm", grey_clip(45), fps=30, codec=codec, fmt="webm",
                  options={"lossless": "1"} if codec == "libvpx-vp9" else {"crf": "4", "b:v": "0"},
                  container_options={"live": "1"} if live else None)
    with av.open(path) as container:
        assert container.streams.video[0].frames == 0  # WebM never says how many frames it holds
        assert (container.duration is None) == live
    info = videos.probe_video(path)
    assert info.duration_s == pytest.approx(1.5, abs=0.05) and info.num_frames_estimate == 45
    sample = videos.sample_frames(path, start_s=0.2, num_frames=6, frame_step=3)
    assert sample.timestamps_s == pytest.approx([0.2 + i * 0.1 for i in range(6)], abs=2e-3)
    assert [frame_index(f) for f in sample.frames] == list(range(6, 24, 3))


def test_png_renamed_mp4(tmp_path):
    path = tmp_path / "photo.mp4"
    Image.new("RGB", (32, 32), (1, 2, 3)).save(path, format="PNG")
    with pytest.raises(UserError, match="still image"):
        videos.probe_video(path)
    with pytest.raises(UserError, match="still image"):
        videos.sample_frames(path)


def test_text_file_is_not_a_video(tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"hello " * 1000)
    with pytest.raises(UserError, match="not a video"):
        videos.sample_frames(path)


@pytest.mark.parametrize("path", [None, ""])
def test_no_video(path):
    with pytest.raises(UserError, match="No video"):
        videos.probe_video(path)
    with pytest.raises(UserError, match="No video"):
        videos.sample_frames(path)


def test_missing_and_zero_byte_video(tmp_path):
    with pytest.raises(UserError, match="no longer on the server"):
        videos.probe_video(tmp_path / "gone.mp4")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(UserError, match="empty"):
        videos.probe_video(empty)
    with pytest.raises(UserError, match="empty"):
        videos.sample_frames(empty)


@pytest.mark.parametrize("faststart", [True, False])
def test_truncated_mp4(tmp_path, faststart):
    frames = np.random.default_rng(2).integers(0, 255, (30, 48, 64, 3), dtype=np.uint8)
    full = tmp_path / "full.mp4"
    if faststart:
        mp4.write_mp4(frames, full, fps=30)
    else:  # the index ('moov') at the end: cutting the file loses it
        encode(full, frames, options={"preset": "ultrafast"})
    data = full.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    for request in (dict(num_frames=8, frame_step=4), dict(num_frames=2, frame_step=1)):
        try:
            sample = videos.sample_frames(cut, **request)
        except UserError as error:
            assert "damaged" in str(error) or "not a video" in str(error)
        else:
            assert sample.frames.shape == (request["num_frames"], 48, 64, 3)
            assert len(sample.timestamps_s) == request["num_frames"]
    if faststart:  # the first frames survive the cut: a short request still gets them
        assert videos.sample_frames(cut, num_frames=2, frame_step=1).frames.shape[0] == 2
    else:
        with pytest.raises(UserError):
            videos.probe_video(cut)


def test_cut_file_says_it_is_damaged(tmp_path):
    frames = np.random.default_rng(3).integers(0, 255, (60, 48, 64, 3), dtype=np.uint8)
    full = tmp_path / "full.mp4"
    mp4.write_mp4(frames, full, fps=30)
    data = full.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.3)])
    with pytest.raises(UserError, match="damaged"):
        videos.sample_frames(cut, num_frames=16, frame_step=4)  # most of the frames are gone


def test_audio_only_file(tmp_path):
    path = tmp_path / "voice.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        stream.layout = "mono"
        for index in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, index * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(UserError, match="sound but no picture"):
        videos.probe_video(path)


def test_too_long_and_too_big(clip30, monkeypatch):
    monkeypatch.setattr(videos, "MAX_VIDEO_SECONDS", 1)
    with pytest.raises(UserError, match="long; the limit"):
        videos.probe_video(clip30)
    monkeypatch.undo()
    monkeypatch.setattr(uploads, "MAX_UPLOAD_BYTES", 100)
    with pytest.raises(UserError, match="limit"):
        videos.sample_frames(clip30)


@pytest.mark.parametrize("kwargs", [
    dict(num_frames=0), dict(num_frames=videos.MAX_FRAMES + 1), dict(num_frames=2.5), dict(num_frames="many"),
    dict(frame_step=0), dict(frame_step=65), dict(frame_step=None),
    dict(fps=0), dict(fps=-1), dict(fps=61), dict(fps=float("inf")), dict(fps=float("nan")),
    dict(start_s=-1), dict(start_s=float("nan")), dict(start_s=float("inf")), dict(start_s="soon"),
])
def test_absurd_sampling_values(clip30, kwargs):
    with pytest.raises(UserError):
        videos.sample_frames(clip30, **kwargs)


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    """60 s of 640x360 at 24 fps (1440 frames): a bar moves one column per frame."""
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    fps, count = 24, 60 * 24
    started = time.perf_counter()
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "35"}
        base = np.full((360, 640, 3), 40, np.uint8)
        for index in range(count):
            pixels = base.copy()
            pixels[:, index % 640] = 255
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode(None))
    print(f"\nlong video: {count} frames written in {time.perf_counter() - started:.1f} s")
    return str(path), fps, count


def test_long_video_is_sampled_by_seeking(long_video):
    path, fps, count = long_video
    info = videos.probe_video(path)
    assert info.duration_s == pytest.approx(60, abs=0.1)
    started = time.perf_counter()
    sample = videos.sample_frames(path, start_s=45.0, num_frames=16, frame_step=4)
    elapsed = time.perf_counter() - started
    print(f"16 frames (step 4) from 45 s of a 60 s 640x360 clip: {elapsed:.2f} s, "
          f"{sample.decoded_frames} frames decoded")
    expected = [45.0 + i * 4 / fps for i in range(16)]
    assert sample.timestamps_s == pytest.approx(expected, abs=1e-3)
    columns = [int(np.argmax(frame[180, :, 0])) for frame in sample.frames]
    assert columns == [round(t * fps) % 640 for t in expected]
    assert sample.decoded_frames < count // 4  # seeked: far from decoding the whole file
    assert sample.notes == []


def test_long_video_sparse_fps_reseeks(long_video):
    path, fps, count = long_video
    sample = videos.sample_frames(path, start_s=1.0, num_frames=6, frame_step=None, fps=0.1)
    assert sample.timestamps_s == pytest.approx([1.0, 11.0, 21.0, 31.0, 41.0, 51.0], abs=1e-3)
    assert sample.decoded_frames < count  # keyframes every ~10 s let it skip between targets


def test_variable_frame_rate_picks_first_frame_at_or_after_each_time(tmp_path):
    path = tmp_path / "vfr.mkv"
    times_ms = [0, 100, 150, 400, 450, 500, 900, 1000]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.options = {"preset": "ultrafast", "crf": "0"}
        for index, ms in enumerate(times_ms):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), index * 20, np.uint8), format="rgb24")
            frame.pts, frame.time_base = ms, Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    sample = videos.sample_frames(path, num_frames=6, frame_step=None, fps=5)  # 0, 0.2, ... 1.0 s
    assert sample.timestamps_s == pytest.approx([0.0, 0.4, 0.4, 0.9, 0.9, 1.0], abs=1e-3)
    assert [int(round(frame.mean() / 20)) for frame in sample.frames] == [0, 3, 3, 6, 6, 7]


def test_animated_gif_is_a_video(tmp_path):
    path = tmp_path / "anim.gif"
    pictures = [Image.new("RGB", (30, 20), (i * 20,) * 3) for i in range(10)]
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=100, loop=0)
    info = videos.probe_video(path)
    assert info.fps == pytest.approx(10) and info.duration_s == pytest.approx(1.0)
    sample = videos.sample_frames(path, num_frames=4, frame_step=2)
    assert sample.timestamps_s == pytest.approx([0.0, 0.2, 0.4, 0.6])
    assert [int(round(frame.mean() / 20)) for frame in sample.frames] == [0, 2, 4, 6]


def test_legacy_rotate_tag(tmp_path):
    """Old remuxers left only a clockwise 'rotate' tag (here in Matroska, which keeps it as ROTATE)."""
    frames = np.zeros((3, 48, 64, 3), np.uint8)
    frames[:, :24, :32] = [0, 255, 0]
    path = tmp_path / "tagged.mkv"
    with av.open(str(path), "w", format="matroska") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.metadata["rotate"] = "90"
        for pixels in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode(None))
    info = videos.probe_video(path)
    assert (info.rotation, info.width, info.height) == (270, 48, 64)
    upright = np.rot90(frames[0], k=-1)  # 90 degrees clockwise
    green = videos.sample_frames(path, num_frames=1).frames[0, ..., 1] > 128
    assert np.mean(green == (upright[..., 1] > 128)) > 0.97
