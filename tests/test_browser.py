"""The real page in headless Chromium: the MAE tab (fixture `browser_page` in conftest.py)."""

import pytest
from concept_pages import wait_until_idle
from conftest import EXAMPLE_IMAGES

from demos.tabs import mae

pytestmark = pytest.mark.browser


def test_upload_reconstruct_and_see_outputs(browser_page, artifacts_dir):
    page = browser_page
    page.get_by_role("tab", name=mae.CONCEPT.title).click()
    page.get_by_text("Another picture, another mask, a larger model").filter(visible=True).click()
    page.locator("#mae-image input[type=file]").set_input_files(str(EXAMPLE_IMAGES[0]))
    page.locator("#mae-image img").first.wait_for(timeout=30_000)
    page.locator("#mae-run").click()
    page.locator("#mae-pasted img").first.wait_for(timeout=60_000)
    assert "147 of 196 patches hidden" in page.locator("#mae-summary").inner_text(timeout=30_000)
    page.screenshot(path=artifacts_dir / "mae_tab.png", full_page=True)


def test_the_arrow_keys_play_the_ratio_back_without_a_model(browser_page, monkeypatch):
    """Moving the ratio with the keys shows that ratio's masked input, reconstruction and line at once, from the sweep
    the page holds: no model runs until the slider is released or Reconstruct is pressed."""
    from demos.compute import mae as compute
    from demos.compute import mae_sweep

    page = browser_page
    page.get_by_role("tab", name=mae.CONCEPT.title).click()
    page.locator("#mae-summary").get_by_text("patches hidden").wait_for(timeout=120_000)
    page.locator("#mae-live").get_by_text("Live:").wait_for(timeout=120_000)
    wait_until_idle(page)  # the example shown on the tab sets the ratio when it lands
    calls = []
    monkeypatch.setattr(compute, "reconstruct", lambda *args, **kwargs: calls.append(args))
    monkeypatch.setattr(mae_sweep, "reconstruct_ratios", lambda *args, **kwargs: calls.append(args))
    ratio = page.locator("#mae-ratio input[type=range]")
    ratio.focus()
    for _ in range(3):
        ratio.press("ArrowRight")  # 0.75 -> 0.9
    page.locator("#mae-summary").get_by_text("177 of 196 patches hidden").wait_for(timeout=5_000)
    page.get_by_role("button", name="The image with 177 of 196 patches hidden, in grey.").wait_for(timeout=5_000)
    page.get_by_role("button", name="The reconstruction: the 19 visible patches of the image, and MAE's guesses "
                     "painted into the 177 hidden ones.").wait_for(timeout=5_000)
    assert calls == []
