"""The real page in headless Chromium (Debian's `chromium`, driven by Playwright)."""

import os
import shutil

import pytest

from conftest import EXAMPLE_IMAGES

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Our machines have no network: without these flags Chromium keeps trying to reach Google's hosts.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def page(tiny_hub):
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium (see .ci/run)")
        pytest.skip("Debian's chromium is not installed here (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    import app

    demo = app.build_app()
    demo.launch(prevent_thread_lock=True, quiet=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(demo.local_url)
        yield page
        browser.close()
    demo.close()


def test_upload_reconstruct_and_see_outputs(page):
    page.locator("#mae-image input[type=file]").set_input_files(str(EXAMPLE_IMAGES[0]))
    page.locator("#mae-image img").first.wait_for(timeout=30_000)
    page.locator("#mae-run").click()
    page.locator("#mae-pasted img").first.wait_for(timeout=60_000)
    assert "147 of 196 patches hidden" in page.locator("#mae-summary").inner_text(timeout=30_000)
    if os.environ.get("PDR_SCREENSHOTS"):
        page.screenshot(path=os.path.join(os.environ["PDR_SCREENSHOTS"], "mae_tab.png"), full_page=True)
