"""6.1's sweep: every ratio of the slider in one device call, each exactly the ratio computed alone, and the
endpoint answering from it."""

import numpy as np
import PIL.Image
import pytest
from conftest import counted_calls

import checkpoints
from demos import examples, images, masks, sweeps
from demos.compute import mae, mae_sweep
from demos.tabs import mae as mae_tab


@pytest.fixture(autouse=True)
def fresh_sweeps(tmp_path, monkeypatch):
    """No sweep, kept playback or shared result from earlier tests: in memory, on disk (a folder of this test's own)."""
    from demos.tabs import actions

    monkeypatch.setenv(sweeps.ENV_SWEEP_DIR, str(tmp_path))
    for cache in (mae_sweep.SWEEPS, mae_tab.PLAYBACKS, actions.RESULTS):
        cache.clear()
    yield
    mae_sweep.SWEEPS.clear()


def test_the_slider_steps():
    ratios = mae_sweep.slider_ratios()
    assert ratios[0] == 0.0 and ratios[-1] == masks.MAX_MASK_RATIO and len(ratios) == 20
    assert mae_sweep.on_slider(0.15000000000000002) and not mae_sweep.on_slider(0.33)


@pytest.mark.parametrize("name", ["vit-mae-base", "vit-mae-huge"])
def test_the_sweep_is_each_ratio_computed_alone(tiny_hub, example_image, name):
    swept, computed = mae_sweep.sweep(example_image, name, seed=3)
    assert computed and list(swept) == mae_sweep.slider_ratios()
    for ratio in (0.0, 0.35, 0.75, 0.95):
        alone = mae.reconstruct(example_image, name, ratio=ratio, seed=3)
        got = swept[ratio]
        assert got.stats() == alone.stats()
        for picture in ("model_view", "masked", "reconstruction", "pasted", "error_map"):
            assert np.array_equal(getattr(got, picture), getattr(alone, picture)), picture


def test_a_swept_ratio_needs_no_device_call(tiny_hub, example_image, monkeypatch):
    mae_sweep.sweep(example_image, "vit-mae-base", seed=0)
    direct = counted_calls(monkeypatch, mae, "reconstruct")
    swept = counted_calls(monkeypatch, mae_sweep, "reconstruct_ratios")
    assert mae_sweep.cached(example_image, "vit-mae-base", 0.45, 0) is not None
    assert mae_sweep.cached(example_image, "vit-mae-base", 0.45, 1) is None  # another seed: another sweep
    assert mae_sweep.cached(example_image, "vit-mae-base", 0.33, 0) is None  # off the slider's steps
    assert direct == [] and swept == []


def test_the_endpoint_answers_the_example_from_one_sweep_for_everyone(tiny_hub, monkeypatch):
    path = examples.images()[0]
    direct = counted_calls(monkeypatch, mae, "reconstruct")
    swept = counted_calls(monkeypatch, mae_sweep, "reconstruct_ratios")
    answers = {ratio: mae_tab.mae_reconstruct(path, ratio, 0, "vit-mae-base") for ratio in (0.75, 0.5, 0.9, 0.75)}
    assert direct == [] and len(swept) == 1  # one device call for every ratio the slider reaches
    alone = mae.reconstruct.plain(images.load_image(path), "vit-mae-base", ratio=0.5, seed=0)
    numbers = answers[0.5][-1]
    assert {key: numbers[key] for key in alone.stats()} == alone.stats()
    assert np.array_equal(answers[0.5][3], alone.pasted)


def test_another_seed_or_checkpoint_is_answered_alone(tiny_hub, monkeypatch):
    """Only the sweep every learner drags over (the page's seed and checkpoint) is computed for a script's call."""
    direct = counted_calls(monkeypatch, mae, "reconstruct")
    swept = counted_calls(monkeypatch, mae_sweep, "reconstruct_ratios")
    mae_tab.mae_reconstruct(examples.images()[0], 0.75, 5, "vit-mae-base")
    mae_tab.mae_reconstruct(examples.images()[0], 0.75, 0, "vit-mae-large")
    assert len(direct) == 2 and swept == []


def test_an_upload_is_answered_alone_and_swept_after(tiny_hub, tmp_path, monkeypatch):
    picture = np.random.default_rng(1).integers(0, 256, (120, 90, 3), dtype=np.uint8)
    path = tmp_path / "upload.png"
    PIL.Image.fromarray(picture).save(path)
    direct = counted_calls(monkeypatch, mae, "reconstruct")
    swept = counted_calls(monkeypatch, mae_sweep, "reconstruct_ratios")
    mae_tab.mae_reconstruct(str(path), 0.75, 0, "vit-mae-base")
    assert len(direct) == 1 and swept == []  # the learner's click first
    players = list(mae_tab.play_sweep(str(path), 0, "vit-mae-base"))
    assert len(swept) == 1
    masks_first, live = players[0].props["sweep"], players[-1].props["sweep"]
    assert masks_first["pictures"] == ["masked"] and live["pictures"] == ["masked", "pasted"]
    assert live["done"] == live["total"] == 20 and "Live" in live["note"]
    before = len(direct)
    mae_tab.mae_reconstruct(str(path), 0.3, 0, "vit-mae-base")
    assert len(direct) == before and len(swept) == 1  # the next ratio from the sweep
    assert not mae_sweep.SWEEPS.path(mae_sweep.key(images.load_image(str(path)), "vit-mae-base", 0)).exists()


def test_the_playback_is_what_the_page_shows_after_a_run(tiny_hub, example_image):
    swept, _ = mae_sweep.sweep(example_image, "vit-mae-base", seed=0)
    payload = mae_tab.playback(swept).payload()
    index = mae_sweep.slider_ratios().index(0.6)
    assert payload["settings"][index] == [0.6]
    result = swept[0.6]
    assert payload["texts"]["summary"][index].startswith("<p><strong>")
    assert f"{result.stats()['num_hidden']} of 196 patches hidden" in payload["texts"]["summary"][index]
    assert payload["alts"]["masked"][index] == mae_tab.picture_descriptions(result.stats())[1]


def test_a_bundled_sweep_survives_a_restart_and_new_weights_do_not_reuse_it(tiny_hub, monkeypatch):
    image = images.load_image(examples.images()[0])
    mae_sweep.sweep(image, "vit-mae-base", 0, keep_on_disk=True)
    mae_sweep.SWEEPS.clear()
    swept = counted_calls(monkeypatch, mae_sweep, "reconstruct_ratios")
    again, computed = mae_sweep.sweep(image, "vit-mae-base", 0, keep_on_disk=True)
    assert not computed and swept == []
    assert again[0.75].stats() == mae.reconstruct.plain(image, "vit-mae-base", ratio=0.75, seed=0).stats()
    # The same checkpoint id with other weights (a new snapshot) names another sweep.
    loaded = checkpoints.load("vit-mae-base")
    monkeypatch.setattr(loaded, "weights_digest", "other weights")
    mae_sweep.SWEEPS.clear()
    assert mae_sweep.sweep(image, "vit-mae-base", 0, keep_on_disk=True)[1]
