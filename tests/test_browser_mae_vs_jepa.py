"""The real page in headless Chromium: the block dragged and keyed on the picture, a new image, noise (6.2-6.3 tab)."""

import pytest
from conftest import EXAMPLE_IMAGES

from demos.tabs import mae_vs_jepa

pytestmark = pytest.mark.browser


def _value(page, elem_id: str) -> str:
    return page.locator(f"#{elem_id} input[type=number]").input_value()


def test_the_picture_places_the_block_and_outputs_follow(browser_page, artifacts_dir):
    page = browser_page
    # Generous timeouts: the page loads slowly on a busy 2-core machine (a "Loading..." overlay covers it).
    page.get_by_role("tab", name=mae_vs_jepa.CONCEPT.title).click(timeout=120_000)
    # Opening the tab shows its example's result, with the default (centred) block.
    verdict = page.locator("#mvj-verdict")
    verdict.get_by_text("Block at row").wait_for(timeout=120_000)

    # A press on the picture's top-left patch centres the block there: it moves to row 0, column 0.
    picture = page.locator("#block-picture .bp-picture")
    picture.scroll_into_view_if_needed()
    box = picture.bounding_box()
    page.mouse.click(box["x"] + 2, box["y"] + 2)
    verdict.get_by_text("at row 0, column 0").wait_for(timeout=90_000)
    assert page.locator("#mvj-mae-closeup img").first.is_visible()
    assert page.locator("#mvj-jepa-closeup img").first.is_visible()
    assert "beat" in page.locator("#mvj-mae-score").inner_text()
    assert "beat" in page.locator("#mvj-jepa-score").inner_text()

    # From the keyboard: the arrow moves it one patch, Enter runs.
    picture.press("ArrowRight")
    picture.press("Enter")
    verdict.get_by_text("at row 0, column 1").wait_for(timeout=90_000)
    page.get_by_text("Another picture, the block's exact place, noise").filter(visible=True).click()
    assert _value(page, "mvj-left") == "1"

    # An upload alone runs the comparison again, with the block where it was: a new result.
    moved = page.locator("#mvj-mae-score").inner_text()
    page.locator("#mvj-image").get_by_role("button", name="Remove Image").click()  # the example image
    page.locator("#mvj-image input[type=file]").set_input_files(str(EXAMPLE_IMAGES[0]), timeout=60_000)
    page.wait_for_function("text => document.querySelector('#mvj-mae-score').innerText !== text", arg=moved,
                           timeout=90_000)
    verdict.get_by_text("at row 0, column 1").wait_for(timeout=90_000)

    # Film grain on the picture both models see: the comparison runs again, then the plot over its levels follows.
    page.locator("#mvj-noise").get_by_label("Film grain").check()
    page.locator("#mvj-noise-summary").get_by_text("grain 24, same block").wait_for(timeout=120_000)
    assert page.locator("#mvj-noise-plot img").first.is_visible()
    page.get_by_text("What you are looking at, and the numbers").filter(visible=True).click()
    assert "Both models saw the picture with grain 24" in page.locator("#mvj-summary").inner_text()
    page.screenshot(path=artifacts_dir / "mae_vs_jepa_tab.png", full_page=True)
