"""Each concept page as a course's iframe meets it: one screen holds the gesture and the claim.

At 800x900 (a course's iframe) and 390x844 (a phone), once the example has loaded: the page fits its height budget,
every output of class "claim" starts in the first screen at 800 px, and 6.2-6.3's two claims (MAE's pixels, JEPA's
embeddings) share one row. A pointer drag on the block or the tube moves it (the page names the new column) and runs
the model once. A page opened with query parameters shows that setting; a bad one opens the default and says so;
"Link to this view" gives the address back.
"""

import re

import pytest
from concept_pages import (
    CONCEPTS,
    RESULT_TIMEOUT_MS,
    checked_page,
    wait_for_example,
    wait_for_new_text,
    wait_until_idle,
)
from conftest import counted_calls

from demos.compute import mae_vs_jepa, tube_sweep

pytestmark = pytest.mark.browser

HEIGHT_BUDGET_PX = {800: 1300, 390: 2600}
FIRST_SCREEN_PX = 900
VIEWPORTS = {800: {"width": 800, "height": 900}, 390: {"width": 390, "height": 844}}
CLAIM_TOPS = """() => [...document.querySelectorAll('.claim')].map((element) => [element.id,
    element.getBoundingClientRect().top + scrollY])"""


@pytest.mark.parametrize("width", [800, 390])
@pytest.mark.parametrize("tab_id", list(CONCEPTS))
def test_the_claim_in_the_first_screen(browser, running_app, artifacts_dir, tab_id, width):
    concept = CONCEPTS[tab_id]
    with checked_page(browser, artifacts_dir / f"toy_{concept.path}_{width}.png", viewport=VIEWPORTS[width]) as page:
        page.goto(f"{running_app.local_url}{concept.path}")
        wait_for_example(page, tab_id)
        page.wait_for_timeout(1000)  # the last pictures lay out
        height = page.evaluate("() => document.scrollingElement.scrollHeight")
        assert height <= HEIGHT_BUDGET_PX[width], f"{concept.path} is {height} px tall at {width} px"
        claims = page.evaluate(CLAIM_TOPS)
        assert claims, "no output of class 'claim'"
        if width == 800:
            late = [(elem_id, top) for elem_id, top in claims if top >= FIRST_SCREEN_PX]
            assert not late, f"claims below the first screen: {late}"
        if tab_id == "mae-vs-jepa" and width == 800:
            tops = dict(claims)
            assert abs(tops["mvj-mae-closeup"] - tops["mvj-jepa-closeup"]) <= 2, tops


def _drag(page, selector: str, to_column: int, rows: int) -> None:
    """Press on the block's centre and drag it, in steps, so that its left column becomes `to_column`."""
    picture = page.locator(f"{selector} .bp-picture")
    picture.scroll_into_view_if_needed()
    box = picture.bounding_box()
    block = page.locator(f"{selector} .bp-block").bounding_box()
    start_x, start_y = block["x"] + block["width"] / 2, block["y"] + block["height"] / 2
    patch = box["width"] / rows
    left_now = round((block["x"] - box["x"]) / patch)
    page.mouse.move(start_x, start_y)
    page.mouse.down()
    page.mouse.move(start_x + (to_column - left_now) * patch, start_y, steps=8)
    page.mouse.up()


DRAGS = {  # tab_id: (picker selector, the compute function its release runs, the page's sweep player)
    "mae-vs-jepa": ("#block-picture", mae_vs_jepa, "compare", "#mvj-live"),
    "tubes": ("#tube-picture", tube_sweep, "predict_tube", "#tubes-live"),  # answered from the sweep or computed
}


@pytest.mark.parametrize("tab_id", list(DRAGS))
def test_a_drag_moves_the_block_and_runs_the_model_once(browser, running_app, artifacts_dir, monkeypatch, tab_id):
    selector, module, function, player = DRAGS[tab_id]
    concept = CONCEPTS[tab_id]
    with checked_page(browser, artifacts_dir / f"drag_{concept.path}.png", viewport=VIEWPORTS[800]) as page:
        page.goto(f"{running_app.local_url}{concept.path}")
        wait_for_example(page, tab_id)
        page.locator(f"{player} .sp-note[data-ready=true]").wait_for(timeout=RESULT_TIMEOUT_MS)  # no sweep step queued
        wait_until_idle(page)
        where = page.locator(f"{selector} .bp-where")
        columns = int(page.locator(f"{selector} .bp-picture").evaluate(
            "(element) => getComputedStyle(element).getPropertyValue('--cols')"))
        before = page.locator(f"#{concept.summary}").inner_text()
        calls = counted_calls(monkeypatch, module, function)
        _drag(page, selector, 0, columns)
        assert "column 0" in where.inner_text()
        wait_for_new_text(page, f"#{concept.summary}", before)  # drawn at once from the sweep
        page.wait_for_timeout(500)  # the release's request has gone out
        wait_until_idle(page)  # and its answer arrived
        assert len(calls) == 1, f"the release ran {function} {len(calls)} times"
        assert "column 0" in page.locator(f"#{concept.summary}").inner_text()


def test_a_page_opens_at_the_setting_its_address_asks_for(browser, running_app, artifacts_dir):
    concept = CONCEPTS["mae"]
    with checked_page(browser, artifacts_dir / "link_masked-autoencoder.png", viewport=VIEWPORTS[800]) as page:
        page.goto(f"{running_app.local_url}{concept.path}?example=coffee&ratio=0.9&seed=3")
        summary = page.locator(f"#{concept.summary}")
        summary.get_by_text("177 of 196 patches hidden").wait_for(timeout=RESULT_TIMEOUT_MS)
        assert page.locator("#mae-ratio input[type=number]").input_value() == "0.9"
        page.get_by_role("button", name="Link to this view").click()
        address = page.locator(".view-link textarea, .view-link input").first
        page.wait_for_function("() => document.querySelector('.view-link textarea, .view-link input')?.value"
                               ".startsWith('http')", timeout=30_000)
        link = address.input_value()
        assert re.fullmatch(rf"http://127\.0\.0\.1:\d+/{concept.path}\?example=coffee&ratio=0\.9&seed=3&"
                            r"model=vit-mae-base", link), link


def test_a_bad_value_opens_the_default_and_the_page_says_so(browser, running_app, artifacts_dir):
    concept = CONCEPTS["mae"]
    with checked_page(browser, artifacts_dir / "link_bad_masked-autoencoder.png", viewport=VIEWPORTS[390]) as page:
        page.goto(f"{running_app.local_url}{concept.path}?ratio=abc&example=nothere")
        page.get_by_text("ratio=abc").wait_for(timeout=RESULT_TIMEOUT_MS)
        notice = page.get_by_text("opened with the default").inner_text()
        assert "nothere" in notice and "it takes a number from 0 to 0.95" in notice
        wait_for_example(page, "mae")


def test_a_tube_past_the_grids_edge_opens_where_the_result_hid_it(browser, running_app, artifacts_dir):
    """The link's row lies past the test replicas' 8x8 grid for the example's 2x2 tube: the page says where the tube
    went, and its folded controls show that place, as the result does."""
    concept = CONCEPTS["tubes"]
    with checked_page(browser, artifacts_dir / "link_tube-masking.png", viewport=VIEWPORTS[800]) as page:
        page.goto(f"{running_app.local_url}{concept.path}?top=7&left=2")
        summary = page.locator(f"#{concept.summary}")
        summary.get_by_text("moved to row 6, column 2").wait_for(timeout=RESULT_TIMEOUT_MS)
        page.get_by_text("The tube's exact place, in patches").filter(visible=True).click()
        for elem_id, value in (("tubes-top", "6"), ("tubes-left", "2")):
            field = page.locator(f"#{elem_id} input[type=number]")
            field.wait_for(timeout=30_000)
            assert field.input_value() == value, elem_id


def test_the_block_is_live_once_its_sweep_is_ready(browser, running_app, artifacts_dir):
    """6.2-6.3: once the page says the sweep is ready, each patch the block moves shows that block's close-ups and
    captions, drawn in the browser: no request reaches the server while the block moves (arrow keys: no release)."""
    concept = CONCEPTS["mae-vs-jepa"]
    with checked_page(browser, artifacts_dir / "live_block.png", viewport=VIEWPORTS[800]) as page:
        page.goto(f"{running_app.local_url}{concept.path}")
        wait_for_example(page, "mae-vs-jepa")
        page.locator("#mvj-live").get_by_text("positions are ready").wait_for(timeout=RESULT_TIMEOUT_MS)
        requests = []
        page.on("request", lambda request: requests.append(request.url) if "gradio_api" in request.url else None)
        picture = page.locator("#block-picture .bp-picture")
        closeup = page.locator("#mvj-mae-closeup img")
        seen = {(closeup.get_attribute("src"), page.locator("#mvj-verdict").inner_text())}
        picture.focus()
        for key in ("ArrowLeft", "ArrowLeft", "ArrowUp"):
            page.keyboard.press(key)
            page.wait_for_timeout(200)  # the sprite sheet decodes once
            shown = page.evaluate("() => document.querySelector('#mvj-live [data-shown], #mvj-live[data-shown]')"
                                  "?.dataset.shown")
            assert shown, "the player drew no setting"
            block = [int(float(v)) for v in shown.split(",")]
            verdict = page.locator("#mvj-verdict").inner_text()
            assert f"row {block[0]}, column {block[1]}" in verdict
            assert closeup.get_attribute("src").startswith("data:image/png")
            seen.add((closeup.get_attribute("src"), verdict))
        assert len(seen) == 4, "each block drawn showed its own close-up and caption"
        assert requests == [], f"the block moved with requests to the server: {requests}"

        # The pointer: each patch crossed is drawn at once, the release alone asks the server.
        block = page.locator("#block-picture .bp-block").bounding_box()
        patch = picture.bounding_box()["width"] / 8  # the tiny replica's 8x8 grid
        x, y = block["x"] + block["width"] / 2, block["y"] + block["height"] / 2
        page.mouse.move(x, y)
        page.mouse.down()
        for step in (1, 2):
            page.mouse.move(x + step * patch, y, steps=3)
            page.wait_for_timeout(100)
            verdict = page.locator("#mvj-verdict").inner_text()
            assert verdict not in {text for _, text in seen}, "the block crossed a patch and its caption followed"
            seen.add((closeup.get_attribute("src"), verdict))
        assert requests == [], f"the block moved with requests to the server: {requests}"
        page.mouse.up()
        page.wait_for_function("() => document.querySelector('#mvj-mae-closeup img').src.startsWith('http')",
                               timeout=RESULT_TIMEOUT_MS)  # the release's result, read from the sweep
        assert page.locator("#mvj-verdict").inner_text().split(",")[:2] == verdict.split(",")[:2]
