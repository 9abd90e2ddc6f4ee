"""6.4 tube masking: token mapping, baselines, no leak, the target cache, video in and out, bad input, API."""

from pathlib import Path

import av
import numpy as np
import pytest
import torch

from demos import examples, jepa, masks, mp4, videos
from demos.compute import tube_clips, tubes
from demos.errors import UserError

EXAMPLE_VIDEOS = examples.videos()


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vjepa(tiny_hub):
    return jepa.load()


def _frames(seed: int, count: int, height: int, width: int | None = None) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, height, width or height, 3), dtype=np.uint8)


def _moving_square(count: int, height: int, width: int) -> np.ndarray:
    frames = np.full((count, height, width, 3), 40, np.uint8)
    for i in range(count):
        x = (i * 7) % max(1, width - 20)
        frames[i, height // 3:height // 3 + 20, x:x + 20] = (230, 60, 60)
    return frames


def _write(path: Path, frames: np.ndarray, fps: int = 24, codec: str = "libx264", pix_fmt: str = "yuv420p",
           container: str | None = None) -> Path:
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = pix_fmt
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _decoded_frame_count(path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


# ---------------------------------------------------------------------------------------------
# The tube as token ids
# ---------------------------------------------------------------------------------------------


def test_tube_maps_to_tokens_over_its_time_span():
    grid = masks.PatchGrid(8, 8, 16)
    tube = tubes.Tube(top=1, left=2, height=2, width=3, first_tubelet=2, last_tubelet=4)
    expected = [t * 64 + r * 8 + c for t in (2, 3, 4) for r in (1, 2) for c in (2, 3, 4)]
    assert list(tube.token_ids(grid)) == expected
    assert list(tube.frames(2)) == [4, 5, 6, 7, 8, 9]
    assert tube.pixel_box(16) == (16, 32, 48, 80)
    context = masks.complement(8 * 64, tube.token_ids(grid))
    assert len(context) == 8 * 64 - 18 and not set(context) & set(expected)


def test_make_tube_fits_the_grid_and_says_so():
    grid = masks.PatchGrid(8, 8, 16)
    tube, notes = tubes.make_tube(grid, 8, 6, 7, 4, 3, 0, 99)
    assert (tube.top, tube.left, tube.height, tube.width) == (4, 5, 4, 3)
    assert (tube.first_tubelet, tube.last_tubelet) == (0, 7)
    assert any("moved" in n for n in notes) and any("ends at 7" in n for n in notes)
    tube, notes = tubes.make_tube(grid, 8, 0, 0, 20, 2, 5, 3)
    assert (tube.height, tube.first_tubelet, tube.last_tubelet) == (8, 3, 5)
    assert any("shrunk" in n for n in notes) and any("swapped" in n for n in notes)
    tube, notes = tubes.make_tube(grid, 8, 2, 2, 2, 2, 1, None)
    assert (tube.first_tubelet, tube.last_tubelet, notes) == (1, 7, [])


@pytest.mark.parametrize("args, message", [
    ((-1, 0, 2, 2), "top row"), ((0, 0, 0, 2), "height"), ((0, 0, 2, 2.5), "whole"),
    ((float("nan"), 0, 2, 2), "finite"), (("abc", 0, 2, 2), "number"),
])
def test_make_tube_rejects_absurd_numbers(args, message):
    with pytest.raises(UserError, match=message):
        tubes.make_tube(masks.PatchGrid(8, 8, 16), 8, *args)


def test_click_centres_the_tube():
    grid = masks.PatchGrid(8, 8, 16)
    at = lambda *args: (masks.block_at_pixel(grid, *args).top, masks.block_at_pixel(grid, *args).left)
    assert at(8, 8, 1, 1) == (0, 0)
    assert at(64, 64, 2, 2) == (3, 3)
    assert at(127, 127, 3, 3) == (5, 5)  # clamped into the grid


def test_sampling_rounds_to_whole_tubelets_and_rejects_absurd_counts():
    assert tube_clips.sampling(16, 4, 0) == (16, 4, None, [])
    count, step, fps, notes = tube_clips.sampling(15, 2, None)
    assert (count, step, fps) == (16, 2, None) and "15 frames became 16" in notes[0]
    assert tube_clips.sampling(8, 4, 12.5)[:3] == (8, None, 12.5)
    for bad in (0, -3, videos.MAX_FRAMES + 1, 10**9, float("inf"), "many"):
        with pytest.raises(UserError, match="number of frames"):
            tube_clips.sampling(bad, 4, 0)
    with pytest.raises(UserError, match="frame step"):
        tube_clips.sampling(16, 0, 0)


# ---------------------------------------------------------------------------------------------
# Baselines on known tensors
# ---------------------------------------------------------------------------------------------


def test_copy_source_tubelet():
    assert tubes.copy_source_tubelet(tubes.Tube(0, 0, 1, 1, 3, 5), 8) == 2  # last visible before
    assert tubes.copy_source_tubelet(tubes.Tube(0, 0, 1, 1, 0, 2), 8) == 3  # first visible after
    assert tubes.copy_source_tubelet(tubes.Tube(0, 0, 1, 1, 0, 7), 8) is None  # hidden all the time


def test_baselines_on_known_tensors():
    grid = masks.PatchGrid(2, 2, 16)  # 4 patches per tubelet, 3 tubelets
    features = torch.arange(12, dtype=torch.float32)[:, None].repeat(1, 3)  # token i has features [i, i, i]
    patch_ids, hidden_tubelets = [1, 3], [1, 2]
    copied = tubes.copy_baseline(features, grid, patch_ids, hidden_tubelets, source_tubelet=0)
    assert copied[:, 0].tolist() == [1, 3, 1, 3]  # tubelet 0's patches 1 and 3, once per hidden tubelet
    copied_np = tubes.copy_baseline(features.numpy(), grid, patch_ids, hidden_tubelets, 0)
    assert copied_np[:, 0].tolist() == [1, 3, 1, 3]
    context = masks.complement(12, masks.spatiotemporal_ids(grid, patch_ids, hidden_tubelets))
    assert tubes.mean_context_baseline(features, context).tolist() == [np.mean(context)] * 3
    assert tubes.per_tubelet([1, 3, 5, 7], 2).tolist() == [2.0, 6.0]
    assert tubes.l1_rows([[1.0, 2.0]], [[0.0, 4.0]]).tolist() == [1.5]


# ---------------------------------------------------------------------------------------------
# The model: no leak, cache, scores
# ---------------------------------------------------------------------------------------------


def test_pixels_inside_the_tube_do_not_change_the_prediction(vjepa):
    size, p = vjepa.model.config.crop_size, vjepa.model.config.patch_size
    frames = _frames(0, 8, size)
    tube_args = (2, 3, 3, 2, 1, 2)  # rows 2-4, columns 3-4, tubelets 1-2 = frames 2-5
    base = tubes.predict_tube(tube_clips.clip_from_frames(frames, size), *tube_args)

    inside = frames.copy()
    inside[2:6, 2 * p:5 * p, 3 * p:5 * p] = 255 - inside[2:6, 2 * p:5 * p, 3 * p:5 * p]
    repainted = tubes.predict_tube(tube_clips.clip_from_frames(inside, size), *tube_args)
    assert np.array_equal(repainted.predicted, base.predicted)
    assert not np.allclose(repainted.actual, base.actual)  # the targets do see the new pixels

    outside = frames.copy()
    outside[0:2, 2 * p:5 * p, 3 * p:5 * p] = 0  # the same patches one tubelet earlier are context
    assert not np.allclose(tubes.predict_tube(tube_clips.clip_from_frames(outside, size), *tube_args).predicted,
                           base.predicted)


def test_scores_and_numbers(vjepa):
    size = vjepa.model.config.crop_size
    clip = tube_clips.clip_from_frames(_moving_square(16, size, size), size)
    result = tubes.predict_tube(clip, 2, 2, 3, 3, 2, 5)
    n = result.numbers()
    assert n["tubelets"] == [2, 3, 4, 5] and n["frames"][0] == [4, 5]
    assert n["num_hidden_tokens"] == 4 * 9 and n["num_context_tokens"] == 8 * 64 - 36
    assert set(n["cosine"]) == {tubes.SERIES_PREDICTED, tubes.SERIES_MEAN, tubes.SERIES_COPY}
    assert n["copy_source_tubelet"] == 1
    assert all(len(v) == 4 and all(-1 <= x <= 1 for x in v) for v in n["cosine"].values())
    # The predictor's numbers are what the arrays say.
    cos = jepa.cosine_rows(result.predicted, result.actual).reshape(4, 9).mean(1)
    np.testing.assert_allclose(n["cosine"][tubes.SERIES_PREDICTED], cos, atol=1e-5)
    table = result.cosine_table()
    assert list(table.columns) == ["tubelet", "cosine", "series"] and len(table) == 3 * 4
    assert list(result.surprise_table()["series"].unique()) == [tubes.SERIES_PREDICTED]
    # A tube over all time has no copy baseline; a tube over everything is a clear error.
    assert tubes.SERIES_COPY not in tubes.predict_tube(clip, 0, 0, 2, 2).cosine
    with pytest.raises(UserError, match="whole clip"):
        tubes.predict_tube(clip, 0, 0, 99, 99)


def test_moving_the_tube_reuses_the_full_clip_targets(vjepa, monkeypatch):
    size = vjepa.model.config.crop_size
    clip = tube_clips.clip_from_frames(_frames(7, 4, size), size)
    calls = []
    original = jepa.target_features
    monkeypatch.setattr(jepa, "target_features", lambda *a, **k: calls.append(1) or original(*a, **k))
    first = tubes.predict_tube(clip, 0, 0, 2, 2)
    moved = tubes.predict_tube(clip, 4, 4, 3, 3, 1, 1)
    assert len(calls) == 1 and not first.target_cache_hit and moved.target_cache_hit
    other = tube_clips.clip_from_frames(_frames(8, 4, size), size)
    assert not tubes.predict_tube(other, 4, 4, 3, 3).target_cache_hit and len(calls) == 2


def test_rendered_mp4_decodes_back_with_every_frame(vjepa, tmp_path):
    size = vjepa.model.config.crop_size
    clip = tube_clips.clip_from_frames(_moving_square(10, size, size), size)
    result = tubes.predict_tube(clip, 1, 1, 2, 2, 1, 3)
    path = tubes.render_video(result, tmp_path / "shaded.mp4")
    with av.open(path) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(frames) == 10 and frames[0].shape[:2] == (256, 256 + 128)  # the clip, then the prediction panel
    # Frame 2 is hidden under the tube (grey), frame 0 is not.
    scale = 256 // size
    top, left, bottom, right = (v * scale for v in result.tube.pixel_box(result.layout.patch_size))
    inner = (slice(top + 6, bottom - 6), slice(left + 6, right - 6))
    assert abs(frames[2][inner].mean() - 128) < 15
    image = tubes.features_image(result)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[1] > image.shape[0]


# ---------------------------------------------------------------------------------------------
# Video in: sampling and bad input
# ---------------------------------------------------------------------------------------------


def test_example_clips_are_small_and_sample_to_16_frames():
    assert len(EXAMPLE_VIDEOS) >= 3
    for path in EXAMPLE_VIDEOS:
        assert Path(path).stat().st_size < 300_000
    clip = tube_clips.load_clip(EXAMPLE_VIDEOS[0], num_frames=16, frame_step=4, size=128)
    assert clip.frames.shape == (16, 128, 128, 3)
    np.testing.assert_allclose(np.diff(clip.timestamps_s), 4 / 24, atol=1e-3)
    assert tube_clips.load_clip(EXAMPLE_VIDEOS[0], num_frames=16, frame_step=4, size=128) is clip  # cached


def test_sampling_by_fps_start_and_odd_counts(tmp_path):
    path = mp4.write_mp4(_moving_square(48, 96, 128), str(tmp_path / "clip.mp4"), 24)
    clip = tube_clips.load_clip(path, start_s=0.5, num_frames=7, sample_fps=6, size=64)
    assert clip.num_frames == 8 and any("7 frames became 8" in n for n in clip.notes)
    assert clip.timestamps_s[0] == pytest.approx(0.5, abs=0.05)
    np.testing.assert_allclose(np.diff(clip.timestamps_s[:4]), 1 / 6, atol=0.03)


def test_short_clip_is_padded_and_says_so(tmp_path):
    path = mp4.write_mp4(_moving_square(6, 64, 64), str(tmp_path / "short.mp4"), 24)
    clip = tube_clips.load_clip(path, num_frames=16, frame_step=4, size=64)
    assert clip.num_frames % 2 == 0 and clip.num_frames >= 2
    assert clip.notes  # what was trimmed or padded is said


def test_webm_without_a_frame_count(tmp_path):
    path = _write(tmp_path / "webcam.webm", _moving_square(30, 96, 96), fps=30, codec="libvpx", container="webm")
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 0  # the container does not say how many
    clip = tube_clips.load_clip(path, num_frames=8, frame_step=2, size=64)
    assert clip.frames.shape == (8, 64, 64, 3)


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    zero = tmp_path / "zero.mp4"
    zero.write_bytes(b"")
    png = tmp_path / "picture.mp4"
    from PIL import Image

    Image.new("RGB", (32, 32), (255, 0, 0)).save(png, format="PNG")
    good = mp4.write_mp4(_moving_square(24, 64, 64), str(tmp_path / "good.mp4"), 24)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(Path(good).read_bytes()[:1500])
    audio = tmp_path / "audio.m4a"
    with av.open(str(audio), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=16000)
        samples = np.zeros((1, 1024 * 20), np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return {"zero-byte": zero, "png renamed": png, "truncated": truncated, "audio only": audio}


def test_bad_files_are_clear_errors(tmp_path):
    for name, path in _bad_files(tmp_path).items():
        with pytest.raises(UserError) as error:
            tube_clips.load_clip(path, num_frames=8, size=64)
        assert len(str(error.value)) > 20, name
    with pytest.raises(UserError, match="No video"):
        tube_clips.load_clip(None)


def test_one_frame_and_one_pixel_videos_give_a_result(tmp_path, vjepa):
    one_frame = mp4.write_mp4(_moving_square(1, 64, 64), str(tmp_path / "one.mp4"), 24)
    clip = tube_clips.load_clip(one_frame, num_frames=16, size=vjepa.model.config.crop_size)
    assert clip.num_frames >= 2 and clip.notes
    assert tubes.predict_tube(clip, 0, 0, 2, 2).numbers()["num_hidden_tokens"] == 4 * (clip.num_frames // 2)
    one_pixel = _write(tmp_path / "pixel.mkv", np.full((4, 1, 1, 3), 200, np.uint8), codec="ffv1", pix_fmt="bgr0",
                       container="matroska")
    try:
        clip = tube_clips.load_clip(one_pixel, num_frames=4, size=64)
    except UserError as error:  # a clear refusal is as good as a result
        assert "pixel" in str(error).lower() or "small" in str(error).lower()
    else:
        assert clip.frames.shape == (4, 64, 64, 3)


def test_4k_video_is_downscaled_before_the_model(tmp_path):
    frames = np.zeros((4, 2160, 3840, 3), np.uint8)
    frames[:, 1000:1200, 1800:2000] = 255
    path = mp4.write_mp4(frames, str(tmp_path / "uhd.mp4"), 2)
    clip = tube_clips.load_clip(path, num_frames=4, frame_step=1, size=64)
    assert clip.frames.shape == (4, 64, 64, 3) and clip.frames[:, 30:34, 30:34].mean() > 200


# ---------------------------------------------------------------------------------------------
# End to end through gradio_client
# ---------------------------------------------------------------------------------------------


def test_tube_predict_endpoint(client):
    from gradio_client import handle_file

    args = [handle_file(str(EXAMPLE_VIDEOS[0])), 0.0, 16, 4, 0]
    video, cosine, surprise, image, summary, numbers = client.predict(*args, 2, 2, 3, 3, 2, 5,
                                                                      api_name="/tube_predict")
    video_path = video["video"] if isinstance(video, dict) else video
    assert str(video_path).endswith(".mp4") and _decoded_frame_count(video_path) == 16
    assert numbers["tubelets"] == [2, 3, 4, 5] and numbers["grid"] == [8, 8]
    assert numbers["copy_source_tubelet"] == 1 and len(numbers["cosine"]["predictor"]) == 4
    assert "3×3 patches" in summary and str(image).endswith(".png")
    assert len(cosine["data"]) == 12 and len(surprise["data"]) == 4
    moved = client.predict(*args, 4, 4, 2, 2, 0, 7, api_name="/tube_predict")[-1]
    assert moved["target_cache_hit"] and "copy_source_tubelet" in moved and moved["copy_source_tubelet"] is None
    preview, text = client.predict(*args, 4, 4, 2, 2, 0, 7, api_name="/tube_preview")
    assert str(preview).endswith(".png") and "16 frames" in text


# Out-of-range slider values are refused before the handler runs, naming the parameter and the slider's range.
@pytest.mark.parametrize("frames, top, message", [
    (10**9, 0, f'num_frames \\("Frames"\\) must be a number from 2 to {videos.MAX_FRAMES}'),
    (-2, 0, "num_frames .* from 2 to"), (16, -5, 'top \\("Top row"\\) must be a number from 0 to'), (16, 2.5, "whole number")])
def test_absurd_numbers_through_the_api(client, frames, top, message):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=message):
        client.predict(handle_file(str(EXAMPLE_VIDEOS[0])), 0.0, frames, 4, 0, top, 0, 2, 2, 0, 7,
                       api_name="/tube_predict")


def test_bad_upload_is_a_clear_error_and_the_server_keeps_serving(client, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    for path in _bad_files(tmp_path).values():
        with pytest.raises(AppError):
            client.predict(handle_file(str(path)), 0.0, 8, 4, 0, 0, 0, 2, 2, 0, 3, api_name="/tube_predict")
    with pytest.raises(AppError, match="No video"):
        client.predict(None, 0.0, 8, 4, 0, 0, 0, 2, 2, 0, 3, api_name="/tube_predict")
    numbers = client.predict(handle_file(str(EXAMPLE_VIDEOS[1])), 0.0, 8, 4, 0, 0, 0, 2, 2, 0, 3,
                             api_name="/tube_predict")[-1]
    assert numbers["num_frames"] == 8


# ---------------------------------------------------------------------------------------------
# The page's opening
# ---------------------------------------------------------------------------------------------


def test_the_example_tube_keeps_its_place_on_any_grid():
    from demos.tabs import tubes as tab

    assert tab.example_tube() == tab.example_tube(16) == tab.EXAMPLE_TUBE  # the published grid's opening, as set
    assert tab.example_tube(8) == (4, 5, 2, 2)
    for side in range(1, 33):
        top, left, height, width = tab.example_tube(side)
        assert 0 <= top <= side - height and 0 <= left <= side - width and height >= 1 and width >= 1, side


def _opening(tiny_hub, query: dict | None = None) -> dict:
    """The 6.4 page's opening outputs (at the setting `query` asks for), by component elem_id or label."""
    import gradio as gr

    from demos.tabs import tubes as tab

    with gr.Blocks():
        ready = tab.build_tab(endpoints=False)
    progress = lambda *args, **kwargs: None  # noqa: E731
    if query:
        values, problems = ready.link.read(query)
        assert not problems, problems
        result = ready.run(values, progress)
    else:
        result = ready.compute(progress)
    return {output.elem_id or output.label: value for output, value in zip(ready.outputs, result, strict=True)}


def test_the_page_opens_on_a_tube_that_fits_the_models_grid(tiny_hub):
    """The tiny replica's grid is 8x8: the opening tube is placed for it, so nothing was moved, and the tube's
    controls, the picker and the result all show the same tube."""
    from demos.tabs import tubes as tab

    opened = _opening(tiny_hub)
    numbers = opened["Numbers (what the API returns)"]
    assert numbers["grid"] == [8, 8] and not numbers["notes"], numbers
    assert "moved" not in opened["tubes-summary"] and "moved" not in opened["tubes-preview-text"]
    tube = numbers["tube"]
    expected = dict(zip(tab.BLOCK_KEYS, tab.example_tube(8), strict=True))
    assert {key: tube[key] for key in tab.BLOCK_KEYS} == expected
    sliders = {"tubes-top": "top", "tubes-left": "left", "Height": "height", "Width": "width",
               "Hidden from tubelet": "first_tubelet", "to tubelet (tubelet t = frames 2t, 2t+1)": "last_tubelet"}
    assert {key: opened[name] for name, key in sliders.items()} == tube
    assert opened["tube-picture"].value == expected  # the picker's tube


def test_a_link_past_the_grids_edge_opens_on_the_tube_the_result_hid(tiny_hub):
    opened = _opening(tiny_hub, {"top": "7", "left": "2"})
    numbers = opened["Numbers (what the API returns)"]
    assert (numbers["tube"]["top"], numbers["tube"]["left"]) == (6, 2)  # a 2-patch-high tube on 8 rows starts by row 6
    assert "moved to row 6, column 2" in opened["tubes-summary"]  # the page says what it did with the link's row
    assert (opened["tubes-top"], opened["tubes-left"], opened["Height"]) == (6, 2, 2)  # and its controls show it
