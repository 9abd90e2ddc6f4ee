"""The real page in headless Chromium: the 6.5 tab calls the action (fixture `browser_page` in conftest.py)."""

import pytest
from heads_video import write_counting_video

from demos.tabs import heads

pytestmark = pytest.mark.browser


def test_upload_classify_and_see_labels_and_timings(browser_page, artifacts_dir, tmp_path):
    page = browser_page
    video = write_counting_video(tmp_path / "clip.mp4", num_frames=100, fps=20)
    page.get_by_role("tab", name=heads.CONCEPT.title).click()
    # The tab opens with an example clip and its result; let that land before replacing the clip.
    caption = page.locator("#heads-caption")
    caption.get_by_text("encoder pass").wait_for(timeout=120_000)
    before = caption.inner_text()
    page.locator("#heads-video").get_by_role("button", name="Clear").click()
    page.locator("#heads-video input[type=file]").set_input_files(video)
    page.locator("#heads-video video").first.wait_for(timeout=30_000)
    page.locator("#heads-run").click()
    page.wait_for_function("text => document.querySelector('#heads-caption').innerText !== text", arg=before,
                           timeout=60_000)
    assert "one shared 8-frame clip" in caption.inner_text()  # the CPU default
    page.get_by_text("How it ran: encoder passes, heads, the shared encoder").filter(visible=True).click()
    timings = page.locator("#heads-timings")
    timings.get_by_text("encoder pass 1").wait_for(timeout=30_000)
    assert "head: Something-Something v2" in timings.inner_text()
    assert "Sampling: one shared 8-frame clip" in timings.inner_text()  # the CPU default, and why
    ssv2 = page.locator("#heads-ssv2").inner_text(timeout=10_000)
    diving = page.locator("#heads-diving48").inner_text(timeout=10_000)
    assert "something" in ssv2.lower() and "[" not in ssv2  # SSv2 names without their brackets
    assert "twist" in diving  # Diving48 codes spelled out ("no twist", "1.5 twists")
    assert "'" not in diving and "NoTwis" not in diving
    assert "Encoders in memory: 1" in page.locator("#heads-sharing").inner_text()
    page.screenshot(path=artifacts_dir / "heads_tab.png", full_page=True)
