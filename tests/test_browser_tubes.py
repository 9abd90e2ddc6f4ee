"""The real page in headless Chromium: the 6.4 tube-masking tab (fixture `browser_page` in conftest.py)."""

import pytest

from demos import examples
from demos.tabs import tubes

pytestmark = pytest.mark.browser

EXAMPLE_VIDEOS = examples.videos()


def test_upload_a_clip_place_a_tube_and_see_the_outputs(browser_page, artifacts_dir):
    page = browser_page
    page.get_by_role("tab", name=tubes.CONCEPT.title).click()
    # The tab opens with an example clip and its result; let that land before replacing the clip.
    page.locator("#tubes-summary").get_by_text("Tube:").first.wait_for(timeout=120_000)
    shown = page.locator("#tube-picture img").get_attribute("src")
    page.get_by_text("Another clip, and how it is sampled").filter(visible=True).click()
    page.locator("#tubes-video").get_by_role("button", name="Clear").click()
    another = str(examples.VIDEOS_DIR / "cup_covers_ball.mp4")  # its first frame is not the example's
    page.locator("#tubes-video input[type=file]").set_input_files(another)
    # gr.Video sends a file picked this way once the page is used again (a real file dialog gives the window back its
    # focus): a click beside the controls.
    page.locator("#tubes-summary").click()
    # The upload shows the clip's first hidden frame on the picker, the tube on it.
    page.wait_for_function("(shown) => document.querySelector('#tube-picture img')?.src !== shown", arg=shown,
                           timeout=60_000)
    # A press on the frame's top-left patch centres the tube there: row 0, column 0; its release runs the model.
    picture = page.locator("#tube-picture .bp-picture")
    picture.scroll_into_view_if_needed()
    box = picture.bounding_box()
    page.mouse.click(box["x"] + 2, box["y"] + 2)
    summary = page.locator("#tubes-summary")
    summary.get_by_text("at row 0, column 0").first.wait_for(timeout=90_000)  # this run, not the example
    assert "mean cosine" in summary.inner_text()
    page.locator("#tubes-shaded video").first.wait_for(timeout=90_000)
    page.get_by_text("Over time: the cosine, the surprise, the features").filter(visible=True).click()
    page.locator("#tubes-features img").first.wait_for(timeout=30_000)
    page.locator("#tubes-cosine canvas, #tubes-cosine svg").first.wait_for(timeout=30_000)
    src = page.locator("#tubes-shaded video").first.get_attribute("src")
    assert src and ".mp4" in src
    page.screenshot(path=artifacts_dir / "tubes_tab.png", full_page=True)
