"""6.2-6.3's live block: the page's player gets each position's close-ups and captions as the comparison returns them."""

import base64
import io

import numpy as np
import pytest
from conftest import EXAMPLE_IMAGES
from PIL import Image

from demos import images, sweeps
from demos.compute import block_sweep, block_sweep_work, mae_vs_jepa
from demos.noise import NONE
from demos.tabs import mae_vs_jepa_live
from demos.tabs.mae_vs_jepa_text import jepa_caption, mae_caption


@pytest.fixture
def fresh(tiny_hub, tmp_path, monkeypatch):
    monkeypatch.setenv(sweeps.ENV_SWEEP_DIR, str(tmp_path))
    for cache in (mae_vs_jepa.TARGET_CACHE, mae_vs_jepa.BLOCK_CACHE, block_sweep.STORE, mae_vs_jepa_live.PAYLOADS):
        cache.clear()
    block_sweep.GROWING.clear()


def _tile(payload: dict, setting: int, slot: int) -> np.ndarray:
    sheet = np.asarray(Image.open(io.BytesIO(base64.b64decode(payload["sprite"].split(",", 1)[1]))).convert("RGB"))
    layout, (w, h) = payload["layout"], payload["layout"]["tile"]
    row, column = divmod(setting, layout["columns"])
    x = (column * layout["per_cell"] + slot) * w
    return sheet[row * h:(row + 1) * h, x:x + w]


def test_the_player_gets_what_the_comparison_returns(fresh, monkeypatch):
    monkeypatch.setattr(block_sweep_work, "CPU_POSITIONS_PER_CALL", 10)
    monkeypatch.setattr(mae_vs_jepa_live, "PARTIAL_EVERY_S", 0.0)
    args = (EXAMPLE_IMAGES[0], 1, 2, 4, 4, NONE, 10, 50)
    updates = list(mae_vs_jepa_live.live_sweep(*args, "another picture's sweep"))
    cleared, *payloads = [update.props["sweep"] for update in updates]
    assert "settings" not in cleared  # the sweep played before is gone while this one grows
    done = [p["done"] for p in payloads]  # the partials as often as packing them allows
    assert done[0] == 10 and done[-1] == 25 and done == sorted(set(done)) and all(p["total"] == 25 for p in payloads)
    assert payloads[0]["note"] == "Live: 10 of 25 positions so far…"
    assert payloads[-1]["note"] == "Live: drag the block, all 25 positions are ready."

    final = payloads[-1]
    index = final["settings"].index([3, 1, 4, 4])
    result = mae_vs_jepa.compare(images.load_image(EXAMPLE_IMAGES[0]), 3, 1, 4, 4)
    numbers = result.stats()
    assert final["texts"]["mae_score"][index] == sweeps.markdown_html(mae_caption(numbers))
    assert final["texts"]["jepa_score"][index] == sweeps.markdown_html(jepa_caption(numbers))
    for slot, name in enumerate(final["pictures"]):
        np.testing.assert_array_equal(_tile(final, index, slot), result.images[name])  # lossless, same size

    # The page plays it already: nothing is sent again; another page gets it packed once.
    assert list(mae_vs_jepa_live.live_sweep(*args, updates[-1].value)) == [mae_vs_jepa_live.gr.skip()]
    (again,) = mae_vs_jepa_live.live_sweep(*args, "")
    assert again.props["sweep"] is final


def test_a_block_that_does_not_fit_turns_the_player_off(fresh):
    (update,) = mae_vs_jepa_live.live_sweep(EXAMPLE_IMAGES[0], 0, 0, 8, 8, NONE, 10, 50, "")
    assert update.props["sweep"]["note"].startswith("Live: off (")


def test_on_the_spaces_cpu_the_player_says_it_is_off(fresh, monkeypatch):
    monkeypatch.setattr(mae_vs_jepa_live.zerogpu, "cpu_reason", lambda: "the GPU quota is used up")
    (update,) = mae_vs_jepa_live.live_sweep(EXAMPLE_IMAGES[0], 1, 2, 4, 4, NONE, 10, 50, "")
    assert "Live: off, the Space's CPU runs this page now (the GPU quota is used up)" in update.props["sweep"]["note"]
    assert not block_sweep.GROWING and block_sweep.STORE.get(block_sweep_work.request(
        images.load_image(EXAMPLE_IMAGES[0]), 4, 4).key) is None
