"""6.1 masked autoencoder: exact masks, honest pasting, clear errors (tiny offline checkpoints)."""

import dataclasses

import numpy as np
import pytest

import checkpoints
from demos import masks, viz
from demos.compute import mae
from demos.errors import UserError
from demos.tabs import mae as mae_tab


@pytest.mark.parametrize("ratio", [0.0, 0.25, 0.75, 0.95])
@pytest.mark.parametrize("name, patch, grid", [("vit-mae-base", 16, 14), ("vit-mae-huge", 14, 16)])
def test_hidden_count_follows_ratio_and_patch_size(tiny_hub, example_image, ratio, name, patch, grid):
    result = mae.reconstruct(example_image, name, ratio=ratio, seed=1)
    count = grid * grid
    assert (result.grid.rows, result.grid.cols, result.grid.patch_size) == (grid, grid, patch)
    assert len(result.hidden_ids) == count - int(count * (1 - ratio))
    # What the learner sees grey is exactly what the model hid.
    grey = viz.patch_mask_image(masks.hidden_mask(count, result.hidden_ids).reshape(grid, grid), patch)
    assert np.all(result.masked[grey] == viz.HIDDEN_GREY)
    assert np.array_equal(result.masked[~grey], result.model_view[~grey])


def test_same_seed_same_mask_and_output(tiny_hub, example_image):
    a = mae.reconstruct(example_image, ratio=0.75, seed=42)
    b = mae.reconstruct(example_image, ratio=0.75, seed=42)
    c = mae.reconstruct(example_image, ratio=0.75, seed=43)
    assert np.array_equal(a.hidden_ids, b.hidden_ids)
    assert np.array_equal(a.pasted, b.pasted)
    assert not np.array_equal(a.hidden_ids, c.hidden_ids)


def test_pasted_output_is_the_input_on_visible_patches(tiny_hub, example_image):
    result = mae.reconstruct(example_image, ratio=0.6, seed=5)
    g = result.grid
    hidden = viz.patch_mask_image(masks.hidden_mask(g.num_patches, result.hidden_ids).reshape(g.rows, g.cols),
                                  g.patch_size)
    assert np.array_equal(result.pasted[~hidden], result.model_view[~hidden])
    assert np.array_equal(result.pasted[hidden], result.reconstruction[hidden])
    assert result.model_view.shape == (224, 224, 3)


def test_error_numbers_match_the_pixels(tiny_hub, example_image):
    result = mae.reconstruct(example_image, ratio=0.75, seed=2)
    g = result.grid
    first = int(result.hidden_ids[0])
    r, c, p = first // g.cols, first % g.cols, g.patch_size
    patch = lambda img: img[r * p:(r + 1) * p, c * p:(c + 1) * p].astype(np.float64) / 255  # noqa: E731
    expected = ((patch(result.reconstruction) - patch(result.model_view)) ** 2).mean()
    assert result.per_patch_mse[r, c] == pytest.approx(expected, abs=2e-3)  # recon rounded to uint8
    assert np.isnan(result.per_patch_mse).sum() == g.num_patches - len(result.hidden_ids)
    assert result.hidden_mse == pytest.approx(np.nanmean(result.per_patch_mse))


def test_constant_outputs_score_what_painting_one_colour_scores(tiny_hub, example_image):
    result = mae.reconstruct(example_image, ratio=0.75, seed=2)
    g = result.grid
    hidden = viz.patch_mask_image(masks.hidden_mask(g.num_patches, result.hidden_ids).reshape(g.rows, g.cols),
                                  g.patch_size)
    pixels = result.model_view.astype(np.float64) / 255

    def painted_mse(colour):  # the whole picture painted one colour, scored as MAE is: on the hidden patches
        return float(((np.broadcast_to(colour, pixels.shape) - pixels) ** 2).mean(axis=2)[hidden].mean())

    best = pixels[hidden].mean(axis=0)
    assert result.best_constant_mse == pytest.approx(painted_mse(best), rel=1e-5)
    assert result.image_mean_colour_mse == pytest.approx(painted_mse(pixels.reshape(-1, 3).mean(axis=0)), rel=1e-5)
    for nudge in np.eye(3) * 0.02:  # no other colour does better than the hidden pixels' mean
        assert painted_mse(best + nudge) > result.best_constant_mse
    assert result.best_constant_mse == pytest.approx(pixels[hidden].var(axis=0).mean(), rel=1e-5)
    stats = result.stats()
    assert (stats["best_constant_mse"], stats["image_mean_colour_mse"]) == (result.best_constant_mse,
                                                                            result.image_mean_colour_mse)


def test_a_one_colour_image_needs_no_model(tiny_hub):
    flat = np.full((300, 300, 3), 90, dtype=np.uint8)
    result = mae.reconstruct(flat, ratio=0.75, seed=0)
    assert result.best_constant_mse == pytest.approx(0.0, abs=1e-12)
    assert result.image_mean_colour_mse == pytest.approx(0.0, abs=1e-12)
    assert "all one colour" in mae_tab.summary_markdown(result)


def test_the_summary_ties_the_numbers_to_the_chapter(tiny_hub, example_image):
    result = mae.reconstruct(example_image, ratio=0.75, seed=2)
    best = result.best_constant_mse
    for mse, claim in ((best / 4, "a constant output can't possibly rebuild different patches"),
                       (best * 2, "here MAE does no better than a single colour")):
        text = mae_tab.summary_markdown(dataclasses.replace(result, hidden_mse=mse))
        assert "**147 of 196 patches hidden.**" in text and f"**{mse:.4f}**" in text and f"**{best:.4f}**" in text
        assert f"{mse / best:.0%} of the constant's" in text and claim in text


def test_nothing_hidden_reports_no_error(tiny_hub, example_image):
    result = mae.reconstruct(example_image, ratio=0.0, seed=0)
    assert len(result.hidden_ids) == 0 and result.hidden_mse is None and result.model_loss is None
    assert result.best_constant_mse is None and result.image_mean_colour_mse is None
    assert np.array_equal(result.pasted, result.model_view)


def test_exact_hidden_ids_at_another_resolution(tiny_hub, example_image):
    # The JEPA comparison runs MAE on V-JEPA 2's 256-pixel view: a 16x16 grid of 16-pixel patches.
    block = masks.block_ids(masks.PatchGrid(16, 16, 16), 4, 5, 3, 2)
    result = mae.reconstruct(example_image, hidden_ids=block, image_size=256)
    assert result.model_view.shape == (256, 256, 3)
    assert list(result.hidden_ids) == sorted(block)


@pytest.mark.parametrize("name", ["vit-mae-base", "vit-mae-huge"])
def test_masked_forward_is_transformers_forward_with_that_mask(tiny_hub, name):
    """Our kept ids give what ViT-MAE's own forward gives when its ratio and noise select the same patches.
    (At another size, the reference is the model built for that size: tests/test_mae_positions.py.)"""
    import torch
    from test_mae_positions import forward_with_mask

    loaded = mae.load(name)
    size = loaded.model.config.image_size
    grid = masks.PatchGrid.square(size, loaded.model.config.patch_size)
    hidden = masks.hidden_mask(grid.num_patches, masks.random_hidden_ids(grid.num_patches, 0.6, 4))
    pixels = torch.randn(1, 3, size, size)
    with torch.inference_mode():
        logits, loss = mae.masked_forward(loaded.model, pixels, hidden, loaded.position_layouts)
    reference = forward_with_mask(loaded.model, pixels, hidden)
    torch.testing.assert_close(logits, reference.logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(loss, reference.loss, rtol=1e-4, atol=1e-6)


def test_missing_checkpoint_names_itself_and_the_fix(tiny_hub, tmp_path, example_image):
    checkpoints.use_cache_dir(tmp_path)  # an empty cache, and the Hub is offline
    try:
        with pytest.raises(checkpoints.CheckpointUnavailable) as info:
            mae.reconstruct(example_image, "vit-mae-large")
        assert "facebook/vit-mae-large" in str(info.value)
        assert "python checkpoints.py download vit-mae-large" in str(info.value)
    finally:
        checkpoints.use_cache_dir(None)


def test_unknown_checkpoint_and_bad_values(tiny_hub, example_image):
    with pytest.raises(UserError):
        mae.validate_checkpoint("vjepa2-vitl")
    with pytest.raises(UserError):
        masks.validate_ratio(1.2)
    with pytest.raises(UserError):
        masks.validate_seed(-3)


@pytest.mark.parametrize("shape", [(1, 1, 3), (3000, 40, 3), (17, 5000, 3)])
def test_odd_shapes_give_a_full_model_view(tiny_hub, shape):
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    result = mae.reconstruct(image, ratio=0.5, seed=0)
    assert result.model_view.shape == (224, 224, 3)
