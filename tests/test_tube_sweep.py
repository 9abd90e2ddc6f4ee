"""6.4's sweep: every position of a tube in one batched pass, answers from it equal to the direct computation,
kept once (on disk for a bundled example), played back in the page."""

import base64
import io

import gradio as gr
import numpy as np
import PIL.Image
import pytest

import checkpoints
from demos import jepa, masks, sweeps
from demos.compute import tube_clips, tube_sweep, tubes
from demos.errors import UserError
from demos.tabs import tubes as tab


@pytest.fixture(scope="module")
def vjepa(tiny_hub):
    return jepa.load()


@pytest.fixture(autouse=True)
def fresh_caches():
    """Each test computes its own sweep and targets (other tests' clips must never be answered from these)."""
    caches = (tube_sweep.SWEEPS, tube_sweep.GROWING, tubes.TARGET_CACHE)
    for cache in caches:
        cache.clear()
    yield
    for cache in caches:
        cache.clear()


def _clip(vjepa, seed: int = 3, count: int = 8):
    size = vjepa.model.config.crop_size
    frames = np.random.default_rng(seed).integers(0, 256, (count, size, size, 3), dtype=np.uint8)
    return tube_clips.clip_from_frames(frames, size)


def _whole(clip, *args, **kwargs):
    *_, (sweep, computed) = tube_sweep.stream_sweep(clip, *args, **kwargs)
    return sweep, computed


def _device_calls(monkeypatch) -> list:
    """Records every model call of 6.4 (a click's and a sweep's)."""
    calls = []
    for name in ("encode_and_predict", "encode_targets"):
        original = getattr(tubes, name)
        monkeypatch.setattr(tubes, name, lambda *a, _o=original, _n=name, **k: calls.append(_n) or _o(*a, **k))
    original = tube_sweep.predict_positions
    monkeypatch.setattr(tube_sweep, "predict_positions",
                        lambda *a, **k: calls.append("predict_positions") or original(*a, **k))
    return calls


def test_contexts_batched_over_places_equal_one_pass_per_place(vjepa):
    clip = _clip(vjepa)
    model = vjepa.model
    layout = jepa.TokenLayout.of(model.config, clip.num_frames)
    grid = masks.PatchGrid(layout.rows, layout.cols, layout.patch_size)
    ids = [tubes.tube_tokens(layout, grid, tubes.Tube(top, left, 2, 3, 1, 2)) for top, left in [(0, 0), (3, 4), (6, 5)]]
    targets, contexts = np.stack([t for t, _ in ids]), np.stack([c for _, c in ids])
    pixels = jepa.clip_tensor(vjepa.processor, np.array(clip.frames))
    batched = jepa.predict(model, jepa.context_features(model, pixels, contexts), contexts, targets, layout.num_tokens)
    for row, (target_ids, context_ids) in enumerate(ids):
        one = jepa.predict(model, jepa.context_features(model, pixels, context_ids), context_ids, target_ids,
                           layout.num_tokens)
        np.testing.assert_allclose(batched[row].numpy(), one[0].numpy(), atol=1e-5)


@pytest.mark.parametrize("span", [(0, None), (1, 2)])
def test_answers_from_the_sweep_equal_the_direct_computation(vjepa, monkeypatch, span):
    clip = _clip(vjepa)
    sweep, computed = _whole(clip, 2, 3, 3, 3, *span)
    rows = cols = vjepa.model.config.crop_size // vjepa.model.config.patch_size
    assert computed and sweep.complete and len(sweep.positions) == (rows - 2) * (cols - 2)
    assert tuple(sweep.positions[0]) == (2, 3)  # the hand's position first
    for top, left in [(0, 0), (2, 3), (5, 5), (1, 4)]:
        calls = _device_calls(monkeypatch)
        swept = tube_sweep.predict_tube(clip, top, left, 3, 3, *span)
        assert calls == [] and swept.from_sweep
        monkeypatch.undo()
        direct = tubes.predict_tube(clip, top, left, 3, 3, *span)
        assert not direct.from_sweep
        a, b = swept.numbers(), direct.numbers()
        for key in ("tube", "tubelets", "frames", "num_hidden_tokens", "num_context_tokens", "copy_source_tubelet",
                    "notes", "target_cache_hit"):
            assert a[key] == b[key], key
        for series in b["cosine"]:
            np.testing.assert_allclose(a["cosine"][series], b["cosine"][series], atol=1e-5)
            np.testing.assert_allclose(a["l1"][series], b["l1"][series], atol=1e-5)
        np.testing.assert_array_equal(swept.target_ids, direct.target_ids)
        # The same pictures: colours from the same coordinates (a colour may round the other way by one level).
        for draw in (tubes.features_image, tubes.video_frames):
            picture, expected = draw(swept).astype(int), draw(direct).astype(int)
            assert picture.shape == expected.shape and np.abs(picture - expected).max() <= 1
            assert (picture != expected).mean() < 0.01


def test_a_tube_the_sweep_does_not_cover_runs_the_model(vjepa, monkeypatch):
    clip = _clip(vjepa)
    _whole(clip, 0, 0, 2, 2)
    calls = _device_calls(monkeypatch)
    other_size = tube_sweep.predict_tube(clip, 0, 0, 3, 2)
    other_span = tube_sweep.predict_tube(clip, 0, 0, 2, 2, 1, 1)
    assert calls == ["encode_and_predict", "encode_and_predict"]
    assert not other_size.from_sweep and not other_span.from_sweep


def test_the_sweep_is_computed_once_in_one_device_call_and_reuses_the_targets(vjepa, monkeypatch):
    clip = _clip(vjepa)
    tubes.predict_tube(clip, 0, 0, 2, 2)  # the click's targets, cached
    calls = _device_calls(monkeypatch)
    partial = list(tube_sweep.stream_sweep(clip, 3, 3, 2, 2))
    assert calls == ["predict_positions"]
    assert all(computed for _, computed in partial) and partial[-1][0].complete
    assert [sweep.done for sweep, _ in partial] == sorted(sweep.done for sweep, _ in partial)
    again = list(tube_sweep.stream_sweep(clip, 5, 1, 2, 2))
    assert len(again) == 1 and again[0][0] is partial[-1][0] and not again[0][1]
    assert calls == ["predict_positions"]


def test_a_slow_device_streams_the_sweep_by_chunks(vjepa, monkeypatch):
    clip = _clip(vjepa)
    monkeypatch.setattr(tube_sweep, "CPU_TOKENS_PER_CHUNK", 1)  # one position a chunk
    monkeypatch.setattr(tube_sweep, "GPU_TOKENS_PER_CHUNK", 1)
    steps = [sweep for sweep, _ in tube_sweep.stream_sweep(clip, 0, 0, 4, 4)]
    assert [sweep.done for sweep in steps] == list(range(1, 26))
    first = steps[0]
    assert first.index(0, 0) == 0 and first.index(1, 1) is None and not first.complete


def test_a_bundled_example_sweep_is_kept_on_disk_as_arrays_and_json(vjepa, monkeypatch, tmp_path):
    monkeypatch.setenv(sweeps.ENV_SWEEP_DIR, str(tmp_path))
    clip = _clip(vjepa)
    sweep, computed = _whole(clip, 0, 0, 2, 2, keep_on_disk=True)
    files = list((tmp_path / "tubes").glob("*.npz"))
    assert computed and len(files) == 1
    with np.load(files[0], allow_pickle=False) as data:  # plain arrays, no pickle
        assert "predicted" in data.files
    tube_sweep.SWEEPS.clear()  # a restart: read from disk, nothing computed
    calls = _device_calls(monkeypatch)
    result = tube_sweep.predict_tube(clip, 3, 4, 2, 2)
    assert calls == [] and result.from_sweep
    (read, computed), = list(tube_sweep.stream_sweep(clip, 0, 0, 2, 2, keep_on_disk=True))
    assert not computed and calls == []
    np.testing.assert_array_equal(read.predicted, sweep.predicted)
    assert read.cosine.keys() == sweep.cosine.keys()


def test_the_key_names_clip_span_size_and_weights(vjepa):
    clip, other = _clip(vjepa, 1), _clip(vjepa, 2)
    loaded = jepa.load()
    tube = tubes.Tube(0, 0, 2, 2, 0, 3)
    key = tube_sweep.sweep_key(loaded, clip, tube)
    assert key != tube_sweep.sweep_key(loaded, other, tube)
    assert key != tube_sweep.sweep_key(loaded, clip, tubes.Tube(0, 0, 2, 3, 0, 3))
    assert key != tube_sweep.sweep_key(loaded, clip, tubes.Tube(0, 0, 2, 2, 1, 3))
    assert key == tube_sweep.sweep_key(loaded, clip, tubes.Tube(4, 4, 2, 2, 0, 3))
    weights = checkpoints.weights_id(tubes.CHECKPOINT)
    assert weights.startswith("facebook/vjepa2-vitl-fpc64-256@") and "@?" not in weights


def test_bad_tubes_are_clear_errors(vjepa):
    clip = _clip(vjepa, count=2)
    with pytest.raises(UserError, match="whole clip"):
        _whole(clip, 0, 0, 99, 99)
    with pytest.raises(UserError, match="top row"):
        _whole(clip, -1, 0, 2, 2)


def _sweep_of(update) -> dict:
    return update._constructor_args[0]["sweep"]  # what the page receives: the update names the sweep only


def test_the_page_plays_back_the_endpoints_pictures_and_texts(vjepa):
    clip = _clip(vjepa)
    sweep, _ = _whole(clip, 0, 0, 2, 2)
    playback = tab.playback(sweep, clip, {})
    payload = playback.payload()
    assert payload["done"] == payload["total"] == len(sweep.positions) and "Live: all" in payload["note"]
    sheet = np.asarray(PIL.Image.open(io.BytesIO(base64.b64decode(payload["sprite"].split(",")[1]))))
    (tile_w, tile_h), columns = payload["layout"]["tile"], payload["layout"]["columns"]
    for i in [0, 7, len(sweep.positions) - 1]:
        top, left, height, width = playback.settings[i]
        result = tube_sweep.predict_tube(clip, top, left, height, width)  # what /tube_predict answers there
        still = tubes.video_frames(result)[0]
        np.testing.assert_array_equal(playback.pictures["still"][i], still)
        row, column = divmod(i, columns)
        np.testing.assert_array_equal(sheet[row * tile_h:(row + 1) * tile_h, column * tile_w:(column + 1) * tile_w],
                                      still)  # lossless
        assert playback.texts["summary"][i] == sweeps.markdown_html(tab.summary_markdown(result))
        assert f"row {top}, column {left}" in playback.alts["still"][i]


def test_the_players_event_grows_the_sweep_a_step_a_call_then_sends_it_once(vjepa, monkeypatch):
    monkeypatch.setattr(tube_sweep, "CPU_TOKENS_PER_CHUNK", 1)  # a CPU's step: one place
    monkeypatch.setattr(tube_sweep.devices, "models_on_gpu", lambda: False)
    args = list(tab.example_call())
    args[5:9] = [0, 0, 6, 6]  # 9 places on the tiny 8x8 grid
    sent, shown, calls = [], None, 0
    while shown is None or "step" in shown:  # the page: each new `shown` calls the event again
        (update, shown), = list(tab.sweep_playback(*args, shown, progress=lambda *a, **k: None))
        sent.append(_sweep_of(update))
        calls += 1
    assert calls == 9 and [s["done"] for s in sent] == list(range(1, 10)) and all(s["total"] == 9 for s in sent)
    assert "Getting live: 1 of 9" in sent[0]["note"] and "Live: all 9" in sent[-1]["note"]
    assert list(tab.sweep_playback(*args, shown, progress=lambda *a, **k: None)) == [(gr.skip(), gr.skip())]
    other_page = list(tab.sweep_playback(*args, None, progress=lambda *a, **k: None))
    assert _sweep_of(other_page[0][0]) is sent[-1]  # sent as kept, not drawn again


def test_a_sweep_computed_a_few_places_a_call_equals_one_computed_at_once(vjepa, monkeypatch):
    clip = _clip(vjepa)
    calls = _device_calls(monkeypatch)
    steps = []
    while not steps or not steps[-1].complete:
        steps.append(list(tube_sweep.stream_sweep(clip, 2, 2, 3, 3, max_places=7))[-1][0])
    assert [step.done for step in steps] == [7, 14, 21, 28, 35, 36] and calls == ["predict_positions"] * 6
    assert tube_sweep.SWEEPS.find(tube_sweep.sweep_key(jepa.load(), clip, tubes.Tube(0, 0, 3, 3, 0, 3))) is steps[-1]
    tube_sweep.SWEEPS.clear()
    tube_sweep.GROWING.clear()
    whole, _ = _whole(clip, 2, 2, 3, 3)
    np.testing.assert_array_equal(whole.positions, steps[-1].positions)
    np.testing.assert_allclose(whole.predicted, steps[-1].predicted, atol=1e-5)
    for series in whole.cosine:
        np.testing.assert_allclose(whole.cosine[series], steps[-1].cosine[series], atol=1e-5)


def test_the_players_event_says_why_a_setting_is_not_live(vjepa):
    args = list(tab.example_call())
    args[5:9] = [0, 0, 99, 99]  # the whole clip hidden
    (update, shown), = list(tab.sweep_playback(*args, None, progress=lambda *a, **k: None))
    assert shown is None and _sweep_of(update)["settings"] == []
    assert _sweep_of(update)["note"].startswith("Not live: The tube hides the whole clip")


@pytest.mark.parametrize("on_gpu", [True, False])
def test_the_api_computes_a_bundled_examples_sweep_where_one_gpu_call_does(vjepa, monkeypatch, tmp_path, on_gpu):
    monkeypatch.setenv(sweeps.ENV_SWEEP_DIR, str(tmp_path))
    video, start_s, frames, step, fps, _, _, height, width, first, last = tab.opening_call(None)
    monkeypatch.setattr(tube_sweep.devices, "models_on_gpu", lambda: on_gpu)
    calls = _device_calls(monkeypatch)
    quiet = dict(progress=lambda *a, **k: None)
    first_numbers = tab.tube_predict(video, start_s, frames, step, fps, 1, 2, height, width, first, last, **quiet)[-1]
    again = tab.tube_predict(video, start_s, frames, step, fps, 3, 1, height, width, first, last, **quiet)[-1]
    if on_gpu:  # the whole sweep in the first call, kept on disk; the second call runs nothing
        assert calls == ["predict_positions"] and first_numbers["from_sweep"] and again["from_sweep"]
        assert len(list((tmp_path / "tubes").glob("*.npz"))) == 1
    else:  # a CPU would take minutes: each call predicts its own tube, and the page grows the sweep in steps
        assert calls.count("predict_positions") == 0 and not first_numbers["from_sweep"] and not again["from_sweep"]
