"""The real page in headless Chromium: a click on the model view places the block (6.2-6.3 tab)."""

import pytest
from concept_pages import click_picture_corner
from conftest import EXAMPLE_IMAGES

from demos.tabs import mae_vs_jepa

pytestmark = pytest.mark.browser


def _value(page, elem_id: str) -> str:
    return page.locator(f"#{elem_id} input[type=number]").input_value()


def test_click_places_the_block_and_outputs_follow(browser_page, artifacts_dir):
    page = browser_page
    # Generous timeouts: the page loads slowly on a busy 2-core machine (a "Loading..." overlay covers it).
    page.get_by_role("tab", name=mae_vs_jepa.CONCEPT.title).click(timeout=120_000)
    # Opening the tab shows its example's result, with the default (centred) block.
    summary = page.locator("#mvj-summary")
    summary.get_by_text("patches at row").wait_for(timeout=120_000)
    before = (_value(page, "mvj-top"), _value(page, "mvj-left"))

    click_picture_corner(page, "#mvj-view img")  # the picture's top-left corner: the block moves to row 0, column 0
    page.wait_for_function(
        "() => document.querySelector('#mvj-top input[type=number]').value === '0' && "
        "document.querySelector('#mvj-left input[type=number]').value === '0'", timeout=30_000)
    assert before != ("0", "0")
    summary.get_by_text("at row 0, column 0").wait_for(timeout=90_000)
    assert page.locator("#mvj-mae img").first.is_visible()
    assert page.locator("#mvj-pca-predicted img").first.is_visible()

    # A nudge button moves it one patch without a keyboard.
    page.get_by_role("button", name="→").click()
    summary.get_by_text("at row 0, column 1").wait_for(timeout=90_000)
    assert _value(page, "mvj-left") == "1"

    # An upload alone runs the comparison again, with the block where it was: a new summary.
    nudged = summary.inner_text()
    page.locator("#mvj-image").get_by_role("button", name="Remove Image").click()  # the example image
    page.locator("#mvj-image input[type=file]").set_input_files(str(EXAMPLE_IMAGES[0]), timeout=60_000)
    page.wait_for_function("text => document.querySelector('#mvj-summary').innerText !== text", arg=nudged,
                           timeout=90_000)
    summary.get_by_text("at row 0, column 1").wait_for(timeout=90_000)

    # Film grain on the picture both models see: the comparison runs again, then the plot over its levels follows.
    page.locator("#mvj-noise").get_by_label("Film grain").check()
    summary.get_by_text("Both models saw the picture with grain 24").wait_for(timeout=90_000)
    page.locator("#mvj-noise-summary").get_by_text("grain 24, same block").wait_for(timeout=120_000)
    assert page.locator("#mvj-noise-plot img").first.is_visible()
    page.screenshot(path=artifacts_dir / "mae_vs_jepa_tab.png", full_page=True)
