"""Each concept's own page, as a course embeds it: alone, ready on arrival, no sideways scrolling, no console errors.

Pages are opened at a phone's width (390 px, light and dark themes) and inside an 800 px iframe on a host
page. Screenshots go to the artifacts folder (conftest.py `artifacts_dir`).
"""

import time

import pytest
from concept_pages import CONCEPTS, OPENING, OUTPUT_IMAGES, checked_page, open_folds, wait_for_example

import app

pytestmark = pytest.mark.browser

# The result's pictures, and any result video.
OUTPUT_PICTURES = f"""() => {OUTPUT_IMAGES}
    .concat([...document.querySelectorAll('.result video')]).map((element) => element.getAttribute('src') || '')"""
NO_SIDEWAYS_SCROLL = "() => document.scrollingElement.scrollWidth <= window.innerWidth"


def _check_concept_page(frame, tab_id: str) -> None:
    """On `frame` (a page or an iframe's frame): only this concept's controls, and its example's result."""
    concept = CONCEPTS[tab_id]
    wait_for_example(frame, tab_id)
    open_folds(frame)
    # Attached, not visible: pictures below the fold load lazily. Each is a file the server wrote.
    deadline = time.monotonic() + 30
    while True:
        sources = frame.locator("body").evaluate(f"() => ({OUTPUT_PICTURES})()")
        videos = frame.locator(".result video").count()
        if len(sources) >= concept.pictures + videos or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(sources) == concept.pictures + videos and all("/file=" in src for src in sources), sources
    for other in CONCEPTS.values():
        for element in (other.run_button, other.summary):
            assert frame.locator(f"#{element}").count() == (1 if other is concept else 0), (tab_id, element)
    assert frame.get_by_role("tab").count() == 0, "a concept page shows no tabs"
    call_to_action = frame.locator(".call-to-action").first.inner_text()
    assert call_to_action.strip().endswith(concept.call_to_action)


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("tab_id", list(CONCEPTS))
def test_concept_page_on_a_phone(browser, running_app, artifacts_dir, tab_id, theme):
    concept = CONCEPTS[tab_id]
    screenshot = artifacts_dir / f"page_{concept.path}_390_{theme}.png"
    with checked_page(browser, screenshot, viewport={"width": 390, "height": 844}) as page:
        page.goto(f"{running_app.local_url}{concept.path}?__theme={theme}")
        _check_concept_page(page, tab_id)
        assert page.evaluate("() => document.body.classList.contains('dark')") == (theme == "dark")
        page.wait_for_timeout(500)  # let the last images lay out
        assert page.evaluate(NO_SIDEWAYS_SCROLL), page.evaluate("() => document.scrollingElement.scrollWidth")


@pytest.mark.parametrize("tab_id", list(CONCEPTS))
def test_concept_page_in_an_800px_iframe(browser, running_app, artifacts_dir, tab_id):
    """As a course page embeds it (the README's snippet): the concept URL in an iframe on another page."""
    concept = CONCEPTS[tab_id]
    screenshot = artifacts_dir / f"page_{concept.path}_iframe800.png"
    with checked_page(browser, screenshot, viewport={"width": 840, "height": 1000}) as page:
        src = f"{running_app.local_url}{concept.path}"
        page.set_content(f'<h1>Course page</h1><iframe src="{src}" width="800" height="1600" '
                         'allow="camera; microphone" style="border:0"></iframe>')
        frame = page.frame_locator("iframe")
        _check_concept_page(frame, tab_id)
        inner = page.frames[1]
        assert inner.evaluate(NO_SIDEWAYS_SCROLL), inner.evaluate("() => document.scrollingElement.scrollWidth")


def test_the_full_page_keeps_its_tabs(browser, running_app):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(running_app.local_url)
        tabs = page.get_by_role("tab")
        tabs.first.wait_for(timeout=60_000)
        assert [tabs.nth(i).inner_text().strip() for i in range(tabs.count())] == [c.title for c in app.CONCEPTS]
        # The open tab shows its example's result without a click; another tab, once opened.
        wait_for_example(page, OPENING.tab_id)
        other = app.CONCEPTS[-1]
        page.get_by_role("tab", name=other.title).click()
        wait_for_example(page, other.tab_id)
        assert [tabs.nth(i).inner_text().strip() for i in range(tabs.count())] == [c.title for c in app.CONCEPTS]
    finally:
        page.close()
