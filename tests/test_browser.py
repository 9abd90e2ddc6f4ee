"""The real page in headless Chromium: the MAE tab (fixture `browser_page` in conftest.py)."""

import pytest
from conftest import EXAMPLE_IMAGES

from demos.tabs import mae

pytestmark = pytest.mark.browser


def test_upload_reconstruct_and_see_outputs(browser_page, artifacts_dir):
    page = browser_page
    page.get_by_role("tab", name=mae.CONCEPT.title).click()
    page.locator("#mae-image input[type=file]").set_input_files(str(EXAMPLE_IMAGES[0]))
    page.locator("#mae-image img").first.wait_for(timeout=30_000)
    page.locator("#mae-run").click()
    page.locator("#mae-pasted img").first.wait_for(timeout=60_000)
    assert "147 of 196 patches hidden" in page.locator("#mae-summary").inner_text(timeout=30_000)
    page.screenshot(path=artifacts_dir / "mae_tab.png", full_page=True)
