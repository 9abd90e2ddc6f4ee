"""`demos.sweeps`: a sweep computed once however many ask at once, kept on disk as data, its pictures in one sheet."""

import io
import threading
import time

import numpy as np
import PIL.Image
import pytest

from demos import sweeps


def _codec():
    return sweeps.Codec(encode=lambda value: ({"values": value}, {"shape": list(value.shape)}),
                        decode=lambda arrays, meta: arrays["values"].reshape(meta["shape"]))


def test_visitors_asking_at_once_share_one_computation():
    store, runs = sweeps.SweepStore("test-once", 4), []

    def compute():
        runs.append(1)
        time.sleep(0.2)
        return "sweep"

    answers = []
    threads = [threading.Thread(target=lambda: answers.append(store.get_or_compute("key", compute))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(runs) == 1
    assert sorted(computed for _, computed in answers) == [False] * 7 + [True]
    assert {value for value, _ in answers} == {"sweep"}


def test_a_bundled_sweep_is_read_back_from_disk_after_a_restart(tmp_path, monkeypatch):
    monkeypatch.setenv(sweeps.ENV_SWEEP_DIR, str(tmp_path))
    value = np.arange(12, dtype=np.float32).reshape(3, 4)
    first = sweeps.SweepStore("test-disk", 4, _codec())
    assert first.get_or_compute(("image", 1), lambda: value, keep_on_disk=True)[1]
    restarted = sweeps.SweepStore("test-disk", 4, _codec())
    found, computed = restarted.get_or_compute(("image", 1), lambda: pytest.fail("computed again"), keep_on_disk=True)
    assert not computed and np.array_equal(found, value)
    # Another key, or a sweep not kept on disk (an upload), computes.
    assert restarted.get_or_compute(("image", 2), lambda: value, keep_on_disk=True)[1]
    assert sweeps.SweepStore("test-disk", 4, _codec()).get_or_compute(("upload",), lambda: value)[1]
    assert len(list((tmp_path / "test-disk").glob("*.npz"))) == 2


def test_a_damaged_or_foreign_file_is_computed_again(tmp_path, monkeypatch):
    monkeypatch.setenv(sweeps.ENV_SWEEP_DIR, str(tmp_path))
    store = sweeps.SweepStore("test-damaged", 4, _codec())
    value = np.ones((2, 2), np.float32)
    store.path(("k",)).parent.mkdir(parents=True)
    store.path(("k",)).write_bytes(b"not an npz")
    assert store.get_or_compute(("k",), lambda: value, keep_on_disk=True)[1]
    sweeps.save_arrays(store.path(("other",)), {"values": value}, {"shape": [2, 2], "key": repr(("not other",))})
    assert sweeps.SweepStore("test-damaged", 4, _codec()).get_or_compute(("other",), lambda: value,
                                                                          keep_on_disk=True)[1]


def test_memory_keeps_the_most_recent():
    store = sweeps.SweepStore("test-lru", 2)
    for key in "abc":
        store.put(key, key.upper())
    assert store.get("a") is None and store.get("c") == "C"


def test_the_sprite_sheet_holds_every_tile_exactly():
    rng = np.random.default_rng(0)
    cells = [[rng.integers(0, 256, (24, 40, 3), dtype=np.uint8) for _ in range(2)] for _ in range(29)]
    data, layout = sweeps.sprite_sheet(cells)
    sheet = np.asarray(PIL.Image.open(io.BytesIO(data)).convert("RGB"))
    w, h = layout["tile"]
    assert (w, h) == (40, 24) and layout["per_cell"] == 2
    for index, pictures in enumerate(cells):
        row, column = divmod(index, layout["columns"])
        for slot, picture in enumerate(pictures):
            x = (column * layout["per_cell"] + slot) * w
            assert np.array_equal(sheet[row * h:(row + 1) * h, x:x + w], picture)  # lossless
    assert max(sheet.shape[:2]) <= sweeps.SPRITE_MAX_SIDE


def test_a_playback_says_how_far_the_sweep_is():
    tile = np.zeros((8, 8, 3), np.uint8)
    payload = sweeps.Playback(settings=[[0.0], [0.05]], pictures={"masked": [tile, tile]},
                              texts={"summary": ["<p>a</p>", "<p>b</p>"]}, total=20, note="2 of 20").payload()
    assert payload["done"] == 2 and payload["total"] == 20 and payload["pictures"] == ["masked"]
    assert payload["sprite"].startswith("data:image/webp;base64,") and payload["sprite_bytes"] > 0
