"""6.2-6.3's sweep: one block size at every position in one batched pass, answering the comparison exactly."""

import numpy as np
import pytest
from conftest import EXAMPLE_IMAGES, counted_calls

from demos import images, sweeps
from demos.compute import block_sweep, block_sweep_work, mae_vs_jepa, noise_sweep
from demos.dispatcher import DISPATCHER
from demos.noise import GRAIN, Noise

# The claim's numbers: every key of `Comparison.stats` but the times and where the work came from.
NOT_THE_CLAIM = {"seconds", "target_cache_hit", "block_cache_hit", "block_from_sweep"}


def _forget_everything():
    for cache in (mae_vs_jepa.TARGET_CACHE, mae_vs_jepa.BLOCK_CACHE, block_sweep.STORE):
        cache.clear()
    block_sweep.GROWING.clear()


def _numbers_close(sweep_stats: dict, direct_stats: dict, path=""):
    for name, direct in direct_stats.items():
        if name in NOT_THE_CLAIM:
            continue
        value = sweep_stats[name]
        if isinstance(direct, dict):
            _numbers_close(value, direct, f"{path}{name}.")
        elif isinstance(direct, float) or (isinstance(direct, list) and direct and isinstance(direct[0], float)):
            np.testing.assert_allclose(value, direct, atol=1e-5, err_msg=f"{path}{name}")
        else:
            assert value == direct, f"{path}{name}"


@pytest.fixture
def example_image(tiny_hub, tmp_path, monkeypatch):
    """A bundled example, with no sweep anywhere yet; the sweeps this test keeps on disk stay its own."""
    monkeypatch.setenv(sweeps.ENV_SWEEP_DIR, str(tmp_path))
    _forget_everything()
    yield images.load_image(EXAMPLE_IMAGES[0])
    _forget_everything()


@pytest.mark.parametrize(("height", "width", "noise", "blocks"), [
    (4, 4, Noise(), [(0, 0), (2, 3), (4, 4)]),
    (2, 3, Noise(GRAIN, 12), [(0, 5), (6, 0), (3, 2)]),
])
def test_sweep_answers_exactly_as_the_direct_computation(example_image, height, width, noise, blocks):
    direct = {block: mae_vs_jepa.compare(example_image, *block, height, width, noise=noise) for block in blocks}
    mae_vs_jepa.BLOCK_CACHE.clear()  # the blocks below must come from the sweep, not from the comparisons above

    *steps, sweep = block_sweep_work.grow(block_sweep_work.request(example_image, height, width, noise=noise))
    grid = direct[blocks[0]].grid
    assert sweep.complete and len(sweep.positions) == (grid.rows - height + 1) * (grid.cols - width + 1)
    for block, expected in direct.items():
        answered = mae_vs_jepa.compare(example_image, *block, height, width, noise=noise)
        assert answered.block_from_sweep and not expected.block_from_sweep
        _numbers_close(answered.stats(), expected.stats())
        for name in mae_vs_jepa.IMAGE_ORDER:
            got, want = answered.images[name], expected.images[name]
            assert got.shape == want.shape, name
            # float rounding of a batched pass can move a colour by a level
            assert np.abs(got.astype(int) - want.astype(int)).max() <= 2, name


def test_a_covered_block_runs_no_device_call(example_image, monkeypatch):
    *_, sweep = block_sweep_work.grow(block_sweep_work.request(example_image, 4, 4))
    assert sweep.complete
    mae_vs_jepa.TARGET_CACHE.clear()
    mae_vs_jepa.BLOCK_CACHE.clear()

    def no_device(*args, **kwargs):
        raise AssertionError("a covered block ran a device call")

    monkeypatch.setattr(DISPATCHER, "run", no_device)
    result = mae_vs_jepa.compare(example_image, 1, 2, 4, 4)
    assert result.block_from_sweep and result.stats()["block_cache_hit"]


def test_a_bundled_example_is_kept_on_disk_and_an_upload_in_memory_only(example_image, monkeypatch):
    bundled = block_sweep_work.request(example_image, 4, 4)
    upload = block_sweep_work.request(np.ascontiguousarray(example_image[::-1]), 4, 4)
    assert bundled.kept_on_disk and not upload.kept_on_disk
    for asked in (bundled, upload):
        *_, sweep = block_sweep_work.grow(asked)
    assert block_sweep.STORE.path(bundled.key).is_file() and not block_sweep.STORE.path(upload.key).exists()

    _forget_everything()  # a restart: the bundled sweep is read back, arrays and JSON
    monkeypatch.setattr(DISPATCHER, "run", lambda *a, **k: pytest.fail("the kept sweep was computed again"))
    (read,) = block_sweep_work.grow(bundled)
    assert read.complete
    np.testing.assert_array_equal(read.mae_pixels, block_sweep.STORE.find(bundled.key).mae_pixels)


def test_a_stopped_sweep_is_taken_up_where_it_stopped(example_image, monkeypatch):
    monkeypatch.setattr(block_sweep_work, "CPU_POSITIONS_PER_CALL", 7)
    upload = np.ascontiguousarray(example_image[:, ::-1])  # not on disk from another test
    asked = block_sweep_work.request(upload, 4, 4)  # 25 positions on the tiny 8x8 grid
    calls = iter([True, True, False])
    steps = list(block_sweep_work.grow(asked, still_wanted=lambda: next(calls)))
    assert [len(s.positions) for s in steps] == [7, 14]
    covered = tuple(steps[-1].positions[-1])
    assert mae_vs_jepa.compare(upload, *covered, 4, 4).block_from_sweep  # a growing sweep answers too
    steps = list(block_sweep_work.grow(asked))
    assert [len(s.positions) for s in steps] == [14, 21, 25] and steps[-1].complete


def test_keys_name_what_a_sweep_depends_on(example_image):
    keys = {block_sweep_work.request(example_image, *size, noise=noise).key
            for size in ((4, 4), (4, 3)) for noise in (Noise(), Noise(GRAIN, 12))}
    assert len(keys) == 4
    key = block_sweep_work.request(example_image, 4, 4).key
    assert any("@" in str(part) for part in key)  # the weights' snapshot, not the model object


def test_the_store_writes_arrays_and_json_never_pickle(tmp_path, monkeypatch):
    monkeypatch.setenv(sweeps.ENV_SWEEP_DIR, str(tmp_path))
    codec = sweeps.Codec(lambda sweep: ({"a": sweep}, {"n": 1}), lambda arrays, meta: arrays["a"])
    store = sweeps.SweepStore("test", 2, codec)
    computed, fresh = store.get_or_compute("k", lambda: np.arange(3), keep_on_disk=True)
    assert fresh
    with np.load(store.path("k"), allow_pickle=False) as data:
        assert set(data.files) == {"a", "__json__"}
    store.clear()
    again, fresh = store.get_or_compute("k", lambda: pytest.fail("computed again"), keep_on_disk=True)
    assert not fresh and np.array_equal(again, computed)


def test_the_noise_sweep_reads_its_clean_level_from_the_sweep(example_image):
    *_, sweep = block_sweep_work.grow(block_sweep_work.request(example_image, 4, 4))
    mae_vs_jepa.TARGET_CACHE.clear()
    mae_vs_jepa.BLOCK_CACHE.clear()
    result = noise_sweep.sweep(example_image, 2, 1, 4, 4, Noise(GRAIN, 12), 2)
    assert [level.block_cache_hit for level in result.levels] == [True, False]
    direct = mae_vs_jepa.compare(example_image, 2, 1, 4, 4)
    assert result.levels[0].mae_pixel_mse == pytest.approx(direct.reconstruction.hidden_mse, abs=1e-6)


def test_two_visitors_asking_at_once_compute_it_once(example_image, monkeypatch):
    import threading

    calls, real = [], block_sweep_work.predict_positions
    monkeypatch.setattr(block_sweep_work, "predict_positions", lambda *a, **k: calls.append(1) or real(*a, **k))
    asked = block_sweep_work.request(example_image, 3, 3)
    finals = []
    visitors = [threading.Thread(target=lambda: finals.append(list(block_sweep_work.grow(asked))[-1]))
                for _ in range(2)]
    for visitor in visitors:
        visitor.start()
    for visitor in visitors:
        visitor.join()
    assert all(sweep.complete for sweep in finals) and finals[0] is finals[1]
    assert len(calls) == -(-36 // block_sweep_work.CPU_POSITIONS_PER_CALL)  # 6x6 positions, computed once


def test_a_script_on_the_example_sweeps_it_first_where_one_gpu_call_does(example_image, monkeypatch):
    """The endpoint on a bundled example at the page's size: on a GPU the sweep every learner drags over comes first
    (one call), and this and every later comparison read it; on a CPU (minutes of work) the comparison runs alone."""
    from demos import devices
    from demos.tabs import mae_vs_jepa as tab

    swept = counted_calls(monkeypatch, block_sweep_work, "predict_positions")
    alone = counted_calls(monkeypatch, mae_vs_jepa, "predict_block")
    path = EXAMPLE_IMAGES[0]
    tab.compare_pixels_embeddings(path, 0, 0, 4, 4)  # this CPU: alone, no sweep
    assert (len(swept), len(alone)) == (0, 1)
    monkeypatch.setattr(devices, "models_on_gpu", lambda: True)
    first = tab.compare_pixels_embeddings(path, 1, 2, 4, 4)[-2]
    later = tab.compare_pixels_embeddings(path, 3, 0, 4, 4)[-2]
    assert (len(swept), len(alone)) == (1, 1)
    assert first["block_from_sweep"] and later["block_from_sweep"]
    tab.compare_pixels_embeddings(path, 1, 1, 2, 2)  # another size: alone
    tab.compare_pixels_embeddings(path, 1, 2, 4, 4, "grain", 12)  # noise: alone
    assert (len(swept), len(alone)) == (1, 3)
