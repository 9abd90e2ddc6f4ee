"""6.4's page plays the tube's sweep back: once the page says everything is live, a drag shows each place's still and
summary with no request, and the release is answered from the same sweep (no model run)."""

import pytest
from concept_pages import CONCEPTS, RESULT_TIMEOUT_MS, checked_page, wait_for_example

from demos.compute import tubes

pytestmark = pytest.mark.browser

VIEWPORT = {"width": 800, "height": 900}


def test_the_drag_plays_the_sweep_and_the_release_runs_no_model(browser, running_app, artifacts_dir, monkeypatch):
    concept = CONCEPTS["tubes"]
    with checked_page(browser, artifacts_dir / "tube_sweep_live.png", viewport=VIEWPORT) as page:
        requests = []
        page.goto(f"{running_app.local_url}{concept.path}")
        wait_for_example(page, "tubes")
        page.locator("#tubes-live").get_by_text("Live: all").wait_for(timeout=RESULT_TIMEOUT_MS)
        model_runs = []
        for name in ("encode_and_predict", "encode_targets"):
            original = getattr(tubes, name)
            monkeypatch.setattr(tubes, name, lambda *a, _o=original, **k: model_runs.append(1) or _o(*a, **k))
        page.on("request", lambda request: requests.append(request.url) if "/queue/join" in request.url else None)

        picture = page.locator("#tube-picture .bp-picture")
        picture.scroll_into_view_if_needed()
        box, block = picture.bounding_box(), page.locator("#tube-picture .bp-block").bounding_box()
        patch = box["width"] / int(picture.evaluate("(e) => getComputedStyle(e).getPropertyValue('--cols')"))
        x, y = block["x"] + block["width"] / 2, block["y"] + block["height"] / 2
        left_now = round((block["x"] - box["x"]) / patch)
        page.mouse.move(x, y)
        page.mouse.down()
        # To column 1 (other tests drag to column 0: the shared results would answer this one), the button still held.
        page.mouse.move(x - (left_now - 1) * patch, y, steps=8)
        summary = page.locator("#tubes-summary").inner_text()
        assert "column 1" in summary, summary
        still = page.locator("#tubes-shaded img.sp-still")
        assert still.get_attribute("src").startswith("data:image/png") and "column 1" in still.get_attribute("alt")
        assert requests == [], "the drag itself sent a request"
        page.mouse.up()
        page.wait_for_timeout(2500)  # the release's run and what follows it
        assert "column 1" in page.locator("#tubes-summary").inner_text()
        assert "no model ran now" in page.locator("#tubes-summary").inner_text()
        assert model_runs == [], "the release ran the model although the sweep covers the tube"
        # The page's own updates still show after the player wrote into the summary: the same request again is
        # answered from the shared results, which say so.
        page.locator("#tubes-run").click()
        page.locator("#tubes-summary").get_by_text("asked exactly this before").wait_for(timeout=RESULT_TIMEOUT_MS)
        assert page.locator("#tubes-summary table").count() == 1


def test_keys_play_the_sweep_and_a_size_it_lacks_shows_the_pages_own_result(browser, running_app, artifacts_dir):
    concept = CONCEPTS["tubes"]
    with checked_page(browser, artifacts_dir / "tube_sweep_keys.png", viewport=VIEWPORT) as page:
        page.goto(f"{running_app.local_url}{concept.path}")
        wait_for_example(page, "tubes")
        page.locator("#tubes-live").get_by_text("Live: all").wait_for(timeout=RESULT_TIMEOUT_MS)
        own = page.locator("#tubes-summary").inner_text()
        page.locator("#tube-picture .bp-picture").focus()
        page.keyboard.press("ArrowUp")
        moved = page.locator("#tubes-summary").inner_text()
        size = own.split(" patches")[0]  # "Tube: 2×2": the opening tube's size on the grid served
        assert moved != own and moved.startswith(size)
        assert page.locator("#tubes-shaded img.sp-still").count() == 1
        page.keyboard.press("Shift+ArrowLeft")  # 4x3: a size this sweep does not hold
        assert page.locator("#tubes-shaded img.sp-still").count() == 0
        assert page.locator("#tubes-summary").inner_text() == own
