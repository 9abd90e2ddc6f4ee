"""6.2-6.3 with noise: film grain and JPEG on the picture both models see, and the sweep over its levels."""

import numpy as np
import pytest
import torch
from conftest import EXAMPLE_IMAGES
from PIL import Image

from demos import images, jepa, noise, viz
from demos.compute import mae_vs_jepa, noise_sweep
from demos.errors import UserError
from demos.noise import Noise
from demos.tabs import mae_vs_jepa_text

BLOCK = (2, 3, 3, 2)  # top, left, height, width on the tiny replica's 8x8 grid


def _grey(size: int = 64) -> np.ndarray:
    return np.full((size, size, 3), 128, dtype=np.uint8)


# --- the noise -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, grain, quality, message", [
    ("blur", 24, 10, "must be one of"), ("grain", -1, 10, "at least 0"), ("grain", 65, 10, "at most 64"),
    ("grain", float("nan"), 10, "finite"), ("grain", "lots", 10, "must be a number"), ("jpeg", 24, 0, "at least 1"),
    ("jpeg", 24, 101, "at most 100"), ("jpeg", 24, 2.5, "whole number"), ("none", 24, 500, "at most 100"),
])
def test_absurd_levels_are_clear_errors(kind, grain, quality, message):
    with pytest.raises(UserError, match=message):
        Noise.of(kind, grain, quality)


def test_what_a_learner_asks_for():
    assert Noise.of("grain", 24, 10) == Noise(noise.GRAIN, 24.0)
    assert Noise.of("jpeg", 24, 10) == Noise(noise.JPEG, 10)
    assert Noise.of("none", 24, 10).is_clean and Noise.of("grain", 0, 10).is_clean  # no grain is the clean picture
    assert [Noise().label, Noise(noise.GRAIN, 12.5).label, Noise(noise.JPEG, 40).label] == ["clean", "grain 12.5",
                                                                                             "JPEG q40"]


def test_grain_is_one_fixed_pattern_scaled_by_its_level():
    view = _grey()
    low, high = Noise(noise.GRAIN, 12).apply(view), Noise(noise.GRAIN, 24).apply(view)
    assert np.array_equal(Noise(noise.GRAIN, 24).apply(view), high)  # the same pixels every time: cacheable
    assert np.array_equal(Noise().apply(view), view)
    low_noise, high_noise = low.astype(int) - 128, high.astype(int) - 128
    assert np.all(np.abs(high_noise - 2 * low_noise) <= 1)  # twice the level, twice the grain (up to rounding)
    assert np.array_equal(high[..., 0], high[..., 2])  # luminance grain: the same in every channel
    assert 22 < high_noise.std() < 26 and high.dtype == np.uint8 and high.flags.writeable


def test_jpeg_artefacts_grow_as_the_quality_falls():
    view = np.asarray(Image.open(EXAMPLE_IMAGES[0]).convert("RGB").resize((128, 128)))
    everywhere = np.ones(view.shape[:2], bool)
    errors = [noise.added_noise_mse(view, Noise(noise.JPEG, q).apply(view), everywhere) for q in (90, 40, 5)]
    assert 0 < errors[0] < errors[1] < errors[2]
    assert Noise(noise.JPEG, 40).apply(view).flags.writeable


def test_levels_run_from_the_clean_picture_to_the_learners():
    assert Noise(noise.GRAIN, 24).levels(3) == [Noise(), Noise(noise.GRAIN, 12.0), Noise(noise.GRAIN, 24.0)]
    assert [n.level for n in Noise(noise.JPEG, 10).levels(4)] == [0.0, 70, 40, 10]
    with pytest.raises(UserError, match="film grain"):
        Noise().levels(3)


def test_added_noise_counts_only_the_masked_pixels():
    clean, noisy = _grey(4), _grey(4)
    noisy[0, 0] = 128 + 51  # one pixel 0.2 brighter in every channel
    mask = np.zeros((4, 4), bool)
    mask[:2, :2] = True
    assert noise.added_noise_mse(clean, noisy, mask) == pytest.approx(0.2 ** 2 / 4)


# --- the comparison sees the noise ---------------------------------------------------------------


def test_both_models_see_the_noisy_picture(tiny_hub, example_image):
    grain = Noise(noise.GRAIN, 24)
    clean = mae_vs_jepa.compare(example_image, *BLOCK)
    noisy = mae_vs_jepa.compare(example_image, *BLOCK, noise=grain)
    assert np.array_equal(noisy.view, grain.apply(clean.view))
    assert np.array_equal(noisy.reconstruction.model_view, noisy.view)  # MAE's target is the noisy picture
    assert not noisy.target_cache_hit  # another picture, other targets
    pixels = mae_vs_jepa.block_pixels(noisy.grid, noisy.tokens.patch_ids)
    assert noisy.block_noise_mse == pytest.approx(noise.added_noise_mse(clean.view, noisy.view, pixels))
    assert clean.block_noise_mse == 0.0
    stats = noisy.stats()
    assert stats["noise"] == {"kind": "grain", "level": 24, "label": "grain 24"}
    assert "with **grain 24**" in mae_vs_jepa_text.summary_markdown(noisy)


# --- the sweep -----------------------------------------------------------------------------------


def test_each_level_is_the_comparison_at_that_level(tiny_hub, example_image):
    """The sweep's numbers are what `compare` finds at each level: MAE's error, the predictor's cosine, and the
    cosine of the noisy picture's targets with the clean picture's."""
    jpeg = Noise(noise.JPEG, 20)
    result = noise_sweep.sweep(example_image, *BLOCK, jpeg, 3)
    assert [level.noise for level in result.levels] == jpeg.levels(3)
    mae_vs_jepa.BLOCK_CACHE.clear()  # each comparison below runs its own context encoder, predictor and MAE
    clean = mae_vs_jepa.compare(example_image, *BLOCK)
    for level in result.levels:
        mae_vs_jepa.BLOCK_CACHE.clear()
        same = mae_vs_jepa.compare(example_image, *BLOCK, noise=level.noise)
        assert same.target_cache_hit and not same.block_cache_hit  # the sweep cached this level's targets
        assert level.mae_pixel_mse == pytest.approx(same.reconstruction.hidden_mse, rel=1e-5)
        assert level.predictor_cosine == pytest.approx(float(same.cosines.mean()), abs=1e-5)
        assert level.target_cosine == pytest.approx(float(jepa.cosine_rows(same.actual, clean.actual).mean()), abs=1e-5)
        assert level.noise_mse == pytest.approx(same.block_noise_mse)
    assert result.levels[0].noise_mse == 0.0 and result.levels[0].target_cosine == pytest.approx(1.0)
    assert result.levels[-1].noise_mse > 0 and result.levels[-1].target_cosine < 1


def test_the_sweep_after_a_comparison_does_not_run_its_level_again(tiny_hub, monkeypatch):
    """The page compares at the learner's level, then sweeps: that level's model work comes from the block cache."""
    image = np.random.default_rng(8).integers(0, 256, (120, 140, 3), dtype=np.uint8)
    grain = Noise(noise.GRAIN, 24)
    compared = mae_vs_jepa.compare(image, *BLOCK, noise=grain)
    assert not compared.block_cache_hit
    passes = []
    real = jepa.context_features
    monkeypatch.setattr(jepa, "context_features", lambda *a, **k: passes.append(1) or real(*a, **k))
    result = noise_sweep.sweep(image, *BLOCK, grain, 3)
    assert [level.block_cache_hit for level in result.levels] == [False, False, True] and len(passes) == 2
    assert result.levels[-1].mae_pixel_mse == compared.reconstruction.hidden_mse
    assert result.levels[-1].predictor_cosine == pytest.approx(float(compared.cosines.mean()), abs=1e-6)
    again = mae_vs_jepa.compare(image, *BLOCK, noise=Noise(noise.GRAIN, 12))  # a level the sweep ran
    assert again.block_cache_hit and len(passes) == 2
    assert again.stats()["seconds"]["context_encoder"] == 0.0  # nothing ran now, and the times say so
    moved = mae_vs_jepa.compare(image, 0, 0, 2, 2, noise=grain)  # another block: its own pass
    assert not moved.block_cache_hit and moved.target_cache_hit and len(passes) == 3


def test_targets_are_cached_per_image_and_level(tiny_hub, monkeypatch):
    image = np.random.default_rng(7).integers(0, 256, (150, 170, 3), dtype=np.uint8)
    calls = []
    real = jepa.target_features
    monkeypatch.setattr(jepa, "target_features", lambda *a, **k: calls.append(1) or real(*a, **k))
    grain = Noise(noise.GRAIN, 30)
    first = noise_sweep.sweep(image, *BLOCK, grain, 4)
    assert len(calls) == 4 and not any(level.target_cache_hit for level in first.levels)
    moved = noise_sweep.sweep(image, 0, 0, 2, 2, grain, 4)  # another block: every target from the cache
    assert len(calls) == 4 and all(level.target_cache_hit for level in moved.levels)
    assert [level.noise.level for level in moved.levels] == [0, 10, 20, 30]
    noise_sweep.sweep(image, *BLOCK, Noise(noise.GRAIN, 20), 3)  # clean, 10 and 20: all cached
    assert len(calls) == 4
    noise_sweep.sweep(image, *BLOCK, Noise(noise.GRAIN, 24), 3)  # clean cached; grain 12 and 24 are new
    assert len(calls) == 6


@pytest.mark.parametrize("levels, message", [(1, "at least 2"), (7, "at most 6"), (2.5, "whole number")])
def test_bad_sweeps_are_clear_errors(tiny_hub, example_image, levels, message):
    with pytest.raises(UserError, match=message):
        noise_sweep.sweep(example_image, *BLOCK, Noise(noise.GRAIN, 24), levels)


def test_a_clean_picture_has_no_sweep(tiny_hub, example_image):
    with pytest.raises(UserError, match="film grain"):
        noise_sweep.sweep(example_image, *BLOCK, Noise(), 3)


def test_the_plot_draws_every_series():
    plot = viz.noise_sweep_plot(["clean", "grain 12", "grain 24"], [0.01, 0.015, 0.02], [0.0, 0.002, 0.009],
                                [1.0, 0.95, 0.9], [0.5, 0.45, 0.4])
    assert plot.dtype == np.uint8 and plot.ndim == 3 and plot.shape[2] == 3
    for colour in (viz.MAE_COLOR, viz.NOISE_COLOR, viz.TARGET_COLOR, viz.PREDICTOR_COLOR):
        assert (plot == colour).all(axis=2).sum() > 50, colour


def test_the_sweep_summary_reads_the_numbers(tiny_hub, example_image):
    result = noise_sweep.sweep(example_image, *BLOCK, Noise(noise.GRAIN, 24), 3)
    text = mae_vs_jepa_text.sweep_markdown(result)
    last = result.levels[-1]
    assert "**grain 24**" in text and f"**{last.target_cosine:.3f}**" in text and f"{last.noise_mse:.4f}" in text


# --- end to end through gradio_client ------------------------------------------------------------


def test_noise_sweep_endpoint(client):
    from gradio_client import handle_file

    plot, summary, numbers = client.predict(handle_file(str(EXAMPLE_IMAGES[1])), 1, 2, 3, 2, "grain", 24, 10, 3,
                                            api_name="/noise_sweep")
    assert str(plot).endswith(".png") and np.asarray(Image.open(plot)).ndim == 3
    assert [level["label"] for level in numbers["levels"]] == ["clean", "grain 12", "grain 24"]
    assert all(len(numbers[name]) == 3 for name in ("mae_pixel_mse", "noise_mse", "target_cosine", "predictor_cosine"))
    assert numbers["noise_mse"][0] == 0 < numbers["noise_mse"][1] < numbers["noise_mse"][2]
    assert numbers["block"] == {"top": 1, "left": 2, "height": 3, "width": 2}
    assert numbers["num_frames"] == 2  # the comparison's input on this CPU
    assert "**grain 24**" in summary


def test_compare_takes_the_noise_and_keeps_its_five_argument_call(client):
    from gradio_client import handle_file

    image = handle_file(str(EXAMPLE_IMAGES[1]))
    *_, numbers = client.predict(image, 1, 2, 3, 2, api_name="/compare_pixels_embeddings")
    assert numbers["noise"]["kind"] == "none" and numbers["block_noise_mse"] == 0
    *_, numbers = client.predict(image, 1, 2, 3, 2, "jpeg", 24, 15, api_name="/compare_pixels_embeddings")
    assert numbers["noise"] == {"kind": "jpeg", "level": 15, "label": "JPEG q15"} and numbers["block_noise_mse"] > 0


@pytest.mark.parametrize("args, message", [  # what the sliders and the radio cannot show is refused by name; we the rest
    (("grain", 500, 10, 3), "^grain_level .* from 1 to 64"), (("jpeg", 24, 0, 3), "^jpeg_quality .* from 1 to"),
    (("blur", 24, 10, 3), '^noise .* must be one of "none", "grain", "jpeg"'), (("grain", 24, 10, 9), "^levels .* from 2 to 6"),
    (("jpeg", 24, 7.5, 3), "whole number"), (("none", 24, 10, 3), "film grain"),
])
def test_noise_sweep_errors_are_readable(client, args, message):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=message):
        client.predict(handle_file(str(EXAMPLE_IMAGES[0])), 1, 1, 2, 2, *args, api_name="/noise_sweep")


def test_the_clean_target_is_the_cached_comparison(tiny_hub, example_image):
    """The sweep's clean level and a plain comparison share one cache entry (the same key)."""
    mae_vs_jepa.TARGET_CACHE.clear()
    mae_vs_jepa.compare(example_image, *BLOCK)
    result = noise_sweep.sweep(example_image, *BLOCK, Noise(noise.GRAIN, 8), 2)
    assert [level.target_cache_hit for level in result.levels] == [True, False]
    assert torch.is_tensor(mae_vs_jepa.TARGET_CACHE.get(
        mae_vs_jepa.target_key(images.image_digest(example_image), Noise(noise.GRAIN, 8.0), jepa.load(), 2),
        owner=jepa.load().model).targets)
