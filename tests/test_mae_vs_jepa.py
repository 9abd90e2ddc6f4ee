"""6.2-6.3 pixels vs embeddings: no leak, exact geometry, honest scores, cache, endpoint (tiny offline models)."""

import numpy as np
import pytest
import torch
from conftest import EXAMPLE_IMAGES
from PIL import Image

from demos import devices, images, jepa, masks, zerogpu
from demos.compute import mae_vs_jepa
from demos.errors import UserError
from demos.tabs import mae_vs_jepa_text


@pytest.fixture(scope="module")
def vjepa(tiny_hub):
    return jepa.load()


@pytest.fixture(scope="module")
def crop(vjepa):
    return vjepa.model.config.crop_size  # 128 on the tiny replica: an 8x8 grid of 16-px patches


def _square(seed: int, size: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


# --- no leak -------------------------------------------------------------------------------------


def test_prediction_ignores_the_hidden_pixels_and_follows_the_context(tiny_hub, crop):
    image = _square(0, crop)  # already the model's square: the view is the image itself
    top, left, height, width = 2, 3, 3, 2
    base = mae_vs_jepa.compare(image, top, left, height, width)
    assert np.array_equal(base.view, image)
    p = base.grid.patch_size

    inside = image.copy()
    inside[top * p:(top + height) * p, left * p:(left + width) * p] ^= 0xFF  # repaint the whole hidden block
    changed = mae_vs_jepa.compare(inside, top, left, height, width)
    assert torch.equal(changed.predicted, base.predicted)
    assert not torch.equal(changed.actual, base.actual)  # ... while the thing to predict did change
    # MAE gets the same context, so its painting of the block is the same too.
    block = np.s_[top * p:(top + height) * p, left * p:(left + width) * p]
    assert np.array_equal(changed.reconstruction.reconstruction[block], base.reconstruction.reconstruction[block])

    outside = image.copy()
    outside[:p, :p] ^= 0xFF  # repaint one context patch
    assert not torch.allclose(mae_vs_jepa.compare(outside, top, left, height, width).predicted, base.predicted)


# --- token geometry ------------------------------------------------------------------------------


@pytest.mark.parametrize("num_frames", [1, 2, 4, 16])
def test_every_block_of_every_size_maps_to_time_major_tokens(num_frames):
    config = type("Config", (), {"crop_size": 128, "patch_size": 16, "tubelet_size": 2})()
    layout = jepa.TokenLayout.of(config, num_frames)
    grid = masks.PatchGrid(layout.rows, layout.cols, layout.patch_size)
    per_tubelet = layout.tokens_per_tubelet
    for height in range(1, grid.rows + 1):
        for width in range(1, grid.cols + 1):
            if height * width == grid.num_patches:
                continue
            corners = {(0, 0), (0, grid.cols - width), (grid.rows - height, 0), (grid.rows - height, grid.cols - width)}
            for top, left in corners:
                patches = mae_vs_jepa.block_patch_ids(grid, top, left, height, width)
                tokens = mae_vs_jepa.BlockTokens.of(layout, patches)
                expected = [t * per_tubelet + (top + r) * grid.cols + left + c
                            for t in range(layout.tubelets) for r in range(height) for c in range(width)]
                assert list(tokens.target_ids) == expected
                assert len(np.intersect1d(tokens.target_ids, tokens.context_ids)) == 0
                assert len(tokens.target_ids) + len(tokens.context_ids) == layout.num_tokens
                # Every tubelet hides the same patches: the MAE mask.
                assert all(np.array_equal(np.sort(ids % per_tubelet), np.sort(patches))
                           for ids in tokens.target_ids.reshape(layout.tubelets, -1))


@pytest.mark.parametrize("block, message", [
    ((0, 0, 8, 8), "no context"), ((0, 0, 9, 1), "1 to 8"), ((5, 0, 4, 1), "does not fit"),
    ((-1, 0, 2, 2), "does not fit"), ((0, 0, 0, 2), "1 to 8"), ((1.5, 0, 2, 2), "whole number"),
    (("a", 0, 2, 2), "top row must be a number"), ((float("nan"), 0, 2, 2), "finite"),
    ((None, 0, 2, 2), "must be a number"),
])
def test_impossible_blocks_are_clear_errors(block, message):
    with pytest.raises(UserError, match=message):
        mae_vs_jepa.block_patch_ids(masks.PatchGrid(8, 8, 16), *block)


def test_almost_everything_hidden_still_works(tiny_hub, crop):
    grid_side = crop // 16
    result = mae_vs_jepa.compare(_square(3, crop), 0, 0, grid_side, grid_side - 1)  # one column of context
    assert result.stats()["num_context_tokens"] == grid_side
    with pytest.raises(UserError, match="no context"):
        mae_vs_jepa.compare(_square(3, crop), 0, 0, grid_side, grid_side)


def test_mae_mask_is_exactly_the_jepa_block(tiny_hub, example_image, crop):
    result = mae_vs_jepa.compare(example_image, 1, 4, 3, 2)
    tokens = result.tokens
    assert result.reconstruction.grid == result.grid
    assert np.array_equal(result.reconstruction.model_view, result.view)
    assert result.view.shape == (crop, crop, 3)
    assert np.array_equal(result.reconstruction.hidden_ids, np.sort(tokens.patch_ids))
    assert np.array_equal(np.unique(tokens.target_ids % tokens.layout.tokens_per_tubelet), np.sort(tokens.patch_ids))
    # Outside the block the pasted MAE image is the view, pixel for pixel.
    pixel_block = np.zeros(result.view.shape[:2], bool)
    pixel_block[16:64, 64:96] = True
    assert np.array_equal(result.reconstruction.pasted[~pixel_block], result.view[~pixel_block])


def test_more_frames_hide_the_block_in_every_tubelet(tiny_hub, example_image):
    result = mae_vs_jepa.compare(example_image, 0, 0, 2, 2, num_frames=4)
    assert result.tokens.layout.tubelets == 2 and result.stats()["num_frames"] == 4
    assert list(result.tokens.target_ids) == [0, 1, 8, 9, 64, 65, 72, 73]
    assert result.predicted.shape[0] == 8 and len(result.stats()["cosine_per_patch"]) == 4


# --- the frames follow the device -----------------------------------------------------------------


def test_a_gpu_feeds_16_frames_a_cpu_2_and_a_zerogpu_fallback_the_cpus(monkeypatch):
    monkeypatch.setenv(devices.ENV_DEVICE, "cuda")  # models on a GPU, decided without touching CUDA
    assert devices.models_on_gpu() and mae_vs_jepa.default_frames() == mae_vs_jepa.GPU_FRAMES == 16
    assert "as V-JEPA 2's image evaluation" in mae_vs_jepa.frames_reason(16)
    with zerogpu.on_cpu("no GPU was free within a minute"):  # ZeroGPU refused: the action runs on the Space's CPU
        assert mae_vs_jepa.default_frames() == mae_vs_jepa.CPU_FRAMES == 2
        reason = mae_vs_jepa.frames_reason(2)
        assert reason.startswith("2 frames (1 tubelet) on the Space's CPU (no GPU was free within a minute)")
        assert "8x fewer tokens" in reason
    monkeypatch.setenv(devices.ENV_DEVICE, "cpu")
    assert mae_vs_jepa.default_frames() == 2 and "on this CPU" in mae_vs_jepa.frames_reason(2)
    # On ZeroGPU (no device asked for) the action is planned for a GPU, until ZeroGPU sends it to the Space's CPU.
    monkeypatch.delenv(devices.ENV_DEVICE)
    monkeypatch.setattr(zerogpu, "ON_ZERO_GPU", True)
    assert mae_vs_jepa.default_frames() == 16
    with zerogpu.on_cpu("your ZeroGPU quota is used up for now"):
        assert mae_vs_jepa.default_frames() == 2
    assert "as asked" in mae_vs_jepa.frames_reason(4, asked=True)


def test_the_work_estimates_follow_the_frames():
    for estimate in (mae_vs_jepa.gpu_work_seconds, mae_vs_jepa.cpu_work_seconds):
        for cached in (False, True):
            assert estimate(16, cached) > estimate(2, cached) > 0
        assert estimate(16, False) > estimate(16, True)
    # 2 frames on a CPU: bench_mae_vs_jepa's comparison, with and without cached targets.
    assert mae_vs_jepa.cpu_work_seconds(2, False) == pytest.approx(1.47)
    assert mae_vs_jepa.cpu_work_seconds(2, True) == pytest.approx(0.92)
    assert mae_vs_jepa.cpu_work_seconds(16, True) > 5 * mae_vs_jepa.cpu_work_seconds(2, True)
    # The GPU function's estimates read the frames it is called with.
    args = (None, [0], [1], [0])
    assert mae_vs_jepa.cpu_seconds(*args, 16) == mae_vs_jepa.cpu_work_seconds(16, False)
    assert mae_vs_jepa.gpu_seconds(*args, 2, targets="cached") == mae_vs_jepa.gpu_work_seconds(2, True)


def test_the_comparison_on_a_gpu_is_a_16_frame_clip(tiny_hub, example_image, monkeypatch):
    monkeypatch.setattr(devices, "models_on_gpu", lambda: True)  # the tiny models stay on this CPU
    stats = mae_vs_jepa.compare(example_image, 1, 1, 2, 2).stats()
    assert stats["num_frames"] == 16 and stats["tubelets"] == 8 and len(stats["target_token_ids"]) == 8 * 4
    assert "image evaluation" in stats["frames_reason"]
    monkeypatch.setattr(devices, "models_on_gpu", lambda: False)
    stats = mae_vs_jepa.compare(example_image, 1, 1, 2, 2).stats()
    assert stats["num_frames"] == 2 and stats["tubelets"] == 1 and "on this CPU" in stats["frames_reason"]
    asked = mae_vs_jepa.compare(example_image, 1, 1, 2, 2, num_frames=16).stats()
    assert asked["num_frames"] == 16 and "as V-JEPA 2's image evaluation" in asked["frames_reason"]


# --- scores on known tensors ---------------------------------------------------------------------


def _toy():
    """A 3x3 grid, one tubelet, the centre hidden; context embeddings chosen by hand."""
    layout = jepa.TokenLayout(tubelets=1, rows=3, cols=3, tubelet_size=2, patch_size=16)
    x, y, z = torch.eye(3)
    features = torch.stack([x, y, x, z, y, z, x, z, x])  # id 4 (the centre, hidden) is y; so is id 1
    return layout, features, np.array([4]), np.array([0, 1, 2, 3, 5, 6, 7, 8])


def test_baselines_on_known_tensors():
    layout, features, target, context = _toy()
    # Copying the nearest visible patch: 1, 3, 5 and 7 are all one step away; the lowest id (1) wins.
    assert list(mae_vs_jepa.nearest_context_ids(layout, context, target)) == [1]
    np.testing.assert_allclose(mae_vs_jepa.nearest_context_cosines(features, layout, context, target), [1.0])
    # Mean of the context: (4x + 1y + 3z) / 8, compared with y.
    expected = 1 / np.sqrt(4 ** 2 + 1 + 3 ** 2)
    np.testing.assert_allclose(mae_vs_jepa.context_mean_cosines(features, context, target), [expected], rtol=1e-6)


def test_nearest_context_stays_in_the_same_tubelet():
    layout = jepa.TokenLayout(tubelets=2, rows=3, cols=3, tubelet_size=2, patch_size=16)
    target = np.array([4, 13])  # the centre, in both tubelets
    context = masks.complement(layout.num_tokens, target)
    assert list(mae_vs_jepa.nearest_context_ids(layout, context, target)) == [1, 10]
    corner = np.array([0, 1, 3, 4])  # a 2x2 block in the corner: nearest of 0 is 2 (two steps) vs 6: tie, lower id
    ctx = masks.complement(9, corner)
    assert list(mae_vs_jepa.nearest_context_ids(jepa.TokenLayout(1, 3, 3, 2, 16), ctx, corner)) == [2, 2, 6, 5]


def _patchwork(colours, patch_size=2) -> np.ndarray:
    """A picture of flat patches: colours (rows, cols, 3) in 0..255, each patch_size pixels wide."""
    return np.repeat(np.repeat(np.asarray(colours, np.uint8), patch_size, axis=0), patch_size, axis=1)


def test_the_pixels_baselines_on_a_hand_made_picture():
    grid = masks.PatchGrid(3, 3, 2)
    black, white, grey = [0, 0, 0], [255, 255, 255], [51, 51, 51]
    # The centre (hidden) is white, and so is patch 1 above it: the nearest visible patch (lowest id of four).
    view = _patchwork([[black, white, black], [black, white, black], [grey, black, grey]])
    scores = mae_vs_jepa.pixel_baselines(view, grid, [4])
    assert scores["nearest_context_patch"] == 0.0
    # The visible pixels' mean colour: (1 white + 2 grey (0.2) + 5 black) / 8 = 0.175 in every channel.
    assert scores["context_mean_colour"] == pytest.approx((1 - 0.175) ** 2)
    # A block with one patch copied wrongly: hide the centre column; 1 copies 0 (black, lowest id), 4 copies 3
    # (black), 7 copies 6 (grey, lower id than 8).
    scores = mae_vs_jepa.pixel_baselines(view, grid, [1, 4, 7])
    assert scores["nearest_context_patch"] == pytest.approx((1 + 1 + 0.2 ** 2) / 3)
    visible = (2 * 0.2) / 6
    assert scores["context_mean_colour"] == pytest.approx((2 * (1 - visible) ** 2 + visible ** 2) / 3)


def test_the_pixels_baselines_are_scored_as_mae_is(tiny_hub, example_image):
    result = mae_vs_jepa.compare(example_image, 2, 1, 3, 2)
    stats = result.stats()
    assert set(stats["mae_baselines"]) == {"context_mean_colour", "nearest_context_patch"}
    assert stats["mae_baselines"] == mae_vs_jepa.pixel_baselines(result.view, result.grid, result.tokens.patch_ids)
    # Same definition as MAE's error: MAE's own painting, scored by the same function, gives its error.
    painted = np.where(mae_vs_jepa.block_pixels(result.grid, result.tokens.patch_ids)[..., None],
                       result.reconstruction.reconstruction, result.view)
    hidden = mae_vs_jepa.block_pixels(result.grid, result.tokens.patch_ids)
    mse = float(((painted[hidden] / 255 - result.view[hidden] / 255) ** 2).mean())
    assert stats["mae_pixel_mse"] == pytest.approx(mse, abs=2e-5)  # MAE's error uses its unrounded pixels


def test_cosines_and_neighbours_on_known_tensors():
    predicted = torch.tensor([[1.0, 0.0], [1.0, 2.0], [0.0, -3.0]])
    actual = torch.tensor([[2.0, 0.0], [-1.0, -1.0], [0.0, 1.0]])
    np.testing.assert_allclose(jepa.cosine_rows(predicted, actual), [1.0, -3 / np.sqrt(10), -1.0], atol=1e-6)
    index, best = mae_vs_jepa.nearest_patches(predicted, actual)
    assert list(index) == [0, 2, 1]
    np.testing.assert_allclose(best, [1.0, 2 / np.sqrt(5), np.sqrt(0.5)], atol=1e-6)


def test_reported_numbers_match_the_tensors(tiny_hub, example_image):
    result = mae_vs_jepa.compare(example_image, 2, 2, 2, 3)
    stats = result.stats()
    np.testing.assert_allclose(stats["cosine_per_patch"], jepa.cosine_rows(result.predicted, result.actual), atol=1e-5)
    assert stats["mean_cosine"] == pytest.approx(float(np.mean(stats["cosine_per_patch"])), abs=1e-5)
    assert stats["block_patch_ids"] == [18, 19, 20, 26, 27, 28]
    assert stats["mae_pixel_mse"] == pytest.approx(np.mean(stats["mae_pixel_mse_per_patch"]), rel=1e-4)
    assert set(stats["baselines"]) == {"context_mean", "nearest_context_patch"}
    assert all(-1 <= v <= 1 for v in [stats["mean_cosine"], *stats["baselines"].values()])
    assert 0 <= stats["neighbour_in_block"] <= 1 and len(stats["nearest_neighbour_ids"]) == 6
    for name in mae_vs_jepa.IMAGE_ORDER:
        image = result.images[name]
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3, name
    assert "| **V-JEPA 2 predictor**" in mae_vs_jepa_text.summary_markdown(result)


# --- cache ---------------------------------------------------------------------------------------


def test_moving_the_block_reuses_the_target_features(tiny_hub, example_image, monkeypatch):
    calls = []
    real = jepa.target_features
    monkeypatch.setattr(jepa, "target_features", lambda *a, **k: calls.append(1) or real(*a, **k))
    mae_vs_jepa.TARGET_CACHE.clear()
    first = mae_vs_jepa.compare(example_image, 0, 0, 2, 2)
    second = mae_vs_jepa.compare(example_image, 4, 5, 3, 3)
    assert len(calls) == 1
    assert not first.target_cache_hit and second.target_cache_hit
    assert second.stats()["seconds"]["target_encoder"] == 0.0
    mae_vs_jepa.compare(example_image[::-1].copy(), 0, 0, 2, 2)  # another image: encoded once more
    assert len(calls) == 2


# --- clicks and nudges ---------------------------------------------------------------------------


def test_click_centres_the_block_and_clamps_at_the_edges():
    grid = masks.PatchGrid(16, 16, 16)
    at = lambda *args: tuple(vars(masks.block_at_pixel(*args)).values())
    assert at(grid, 8 * 16 + 3, 4 * 16 + 1, 3, 3) == (3, 7, 3, 3)
    assert at(grid, 0, 0, 4, 4) == (0, 0, 4, 4)
    assert at(grid, 255, 255, 4, 4) == (12, 12, 4, 4)
    assert at(grid, -50, 9000, 2, 5) == (14, 0, 2, 5)  # beside the picture
    assert at(masks.PatchGrid(8, 8, 16), 10, 10, 16, 16) == (0, 0, 8, 8)
    with pytest.raises(UserError):
        masks.block_at_pixel(grid, float("nan"), 3, 2, 2)


def test_nudges_stay_inside_the_grid():
    grid = masks.PatchGrid(8, 8, 16)
    assert mae_vs_jepa.nudge("up", grid, 0, 3, 2, 2) == (0, 3)
    assert mae_vs_jepa.nudge("down", grid, 5, 3, 2, 2) == (6, 3)
    assert mae_vs_jepa.nudge("down", grid, 6, 3, 2, 2) == (6, 3)
    assert mae_vs_jepa.nudge("left", grid, 1, 0, 2, 2) == (1, 0)
    assert mae_vs_jepa.nudge("right", grid, 1, 5, 2, 3) == (1, 5)


# --- odd images ----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 1, 3), (3000, 40, 3), (17, 5000, 3), (130, 129, 3)])
def test_odd_shapes_give_a_full_square_view(tiny_hub, crop, shape):
    image = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    result = mae_vs_jepa.compare(image, 1, 1, 2, 2)
    assert result.view.shape == (crop, crop, 3)
    assert np.isfinite(result.stats()["mean_cosine"])


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16"])
def test_image_files_in_other_modes(tiny_hub, tmp_path, mode):
    path = tmp_path / f"picture-{mode.replace(';', '')}.png"
    Image.open(EXAMPLE_IMAGES[0]).convert("RGB").convert(mode if mode != "I;16" else "I").resize((90, 70)).save(path)
    result = mae_vs_jepa.compare(images.load_image(str(path)), 0, 0, 2, 2)
    assert result.view.shape[2] == 3


def test_not_an_image_is_a_clear_error(tiny_hub, tmp_path):
    fake = tmp_path / "photo.jpg"
    fake.write_bytes(b"definitely not a jpeg")
    with pytest.raises(UserError):
        images.load_image(str(fake))


# --- end to end through gradio_client ------------------------------------------------------------


def test_endpoint_end_to_end(client, crop):
    from gradio_client import handle_file

    *images, summary, numbers = client.predict(handle_file(str(EXAMPLE_IMAGES[1])), 1, 2, 3, 2,
                                               api_name="/compare_pixels_embeddings")
    assert len(images) == len(mae_vs_jepa.IMAGE_ORDER) == 8 and all(str(path).endswith(".png") for path in images)
    arrays = [np.asarray(Image.open(path).convert("RGB")) for path in images]
    assert arrays[0].shape == (crop, crop, 3)
    assert arrays[7].shape == arrays[2].shape  # the embeddings' close-up, last, the size of MAE's
    assert numbers["num_frames"] == 2 and "on this CPU" in numbers["frames_reason"]
    assert set(numbers["mae_baselines"]) == {"context_mean_colour", "nearest_context_patch"}
    assert numbers["block"] == {"top": 1, "left": 2, "height": 3, "width": 2}
    assert numbers["block_patch_ids"] == [10, 11, 18, 19, 26, 27]
    assert len(numbers["cosine_per_patch"]) == 6 and numbers["mae_pixel_mse"] >= 0
    assert "3×2 patches at row 1, column 2" in summary


def test_endpoint_errors_are_readable(client, crop):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    side = crop // 16
    with pytest.raises(AppError, match="no context"):
        client.predict(handle_file(str(EXAMPLE_IMAGES[0])), 0, 0, side, side, api_name="/compare_pixels_embeddings")
    with pytest.raises(AppError, match="does not fit"):
        client.predict(handle_file(str(EXAMPLE_IMAGES[0])), side - 1, 0, 3, 3, api_name="/compare_pixels_embeddings")
    with pytest.raises(AppError, match="(?i)no image"):
        client.predict(None, 0, 0, 2, 2, api_name="/compare_pixels_embeddings")
