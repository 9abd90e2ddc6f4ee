"""Each concept page embedded as the README tells a course author: an iframe on a plain page, with its script.

The iframe follows its content's height, at 800 and 390 px: no scrollbar inside the page, no blank band below
it, once the example has loaded and after a new result. Without the script the iframe keeps the height written.
In an 800 px column the result each concept is about is the widest picture on the page.
"""

import re
import time

import pytest
from concept_pages import (
    CONCEPTS,
    checked_page,
    result_text,
    run_and_wait,
    run_button,
    wait_for_example,
    wait_for_new_text,
)
from conftest import ROOT

pytestmark = pytest.mark.browser

HEIGHT_WRITTEN = 1600  # px: taller than every page's content at 800 px, shorter than some at 390 px
HEIGHT_TOO_SHORT = 500  # px: shorter than every page's content
FOOTER_MARGIN_PX = 24  # gradio's padding below its footer: the page's content ends there
FIT_TIMEOUT_S = 15

# What the learner does for a new result, on the page in the iframe, where a click on the run button is not enough
# (6.5's run button gets the shared result of the example's request, whose caption says so).
NEW_RESULT = {
    "mae": lambda frame: frame.get_by_role("button", name="New random mask").click(),
    "mae-vs-jepa": lambda frame: (frame.locator("#block-picture .bp-picture").press("ArrowLeft"),
                                  frame.locator("#block-picture .bp-picture").press("Enter")),
    "tubes": lambda frame: (frame.locator("#tube-picture .bp-picture").press("ArrowLeft"),
                            frame.locator("#tube-picture .bp-picture").press("Enter")),
}
# The width each element is drawn at: a picture's or video's box less what its object-fit leaves empty. The results
# are what each block of class "result" (`widgets.RESULT`) shows: its picture or video, else the block itself.
DRAWN_WIDTHS = """() => {
    const drawn = (element) => {
        const box = element.getBoundingClientRect();
        const width = element.naturalWidth || element.videoWidth, height = element.naturalHeight || element.videoHeight;
        if (!width || !height) return box.width;
        const fit = getComputedStyle(element).objectFit;
        const scale = Math.min(box.width / width, box.height / height, fit === "scale-down" ? 1 : Infinity);
        return fit === "fill" ? box.width : width * scale;
    };
    const results = [...document.querySelectorAll(".result")].map((block) => block.querySelector("img, video") || block);
    const shown = (element) => element.getBoundingClientRect().width > 0 && !element.closest("footer, .gallery");
    const others = [...document.querySelectorAll("img, video, canvas")]
        .filter((element) => shown(element) && !results.includes(element));
    return {results: results.map(drawn), others: others.map((element) => [element.closest("[id]")?.id || element.tagName,
                                                                          drawn(element)])};
}"""


def _host_script(origin: str) -> str:
    """The README's lines for a course page, for the Space at `origin`."""
    readme = (ROOT / "README.md").read_text()
    script = re.search(r"<script>\n  addEventListener\(\"message\".*?</script>", readme, re.S)
    assert script, "README's embed snippet has no script"
    return script.group(0).replace("https://OWNER-NAME.hf.space", origin)


def _host_page(page, running_app, path: str, width: int, with_script: bool = True, height: int = HEIGHT_WRITTEN):
    """A plain course page holding the concept page in an iframe; returns the iframe's frame."""
    src = f"{running_app.local_url}{path}"
    script = _host_script(running_app.local_url.rstrip("/")) if with_script else ""
    page.set_content(f'<h1>Course page</h1><iframe src="{src}" width="100%" height="{height}" '
                     f'style="border:0; max-width:{width}px" allow="camera; microphone"></iframe><p>Next section</p>'
                     f"{script}")
    return page.frame_locator("iframe"), page.frames[1]


def _measure(page, frame) -> dict:
    iframe = page.evaluate("() => document.querySelector('iframe').getBoundingClientRect().height")
    inner = frame.evaluate("""() => ({content: document.scrollingElement.scrollHeight, window: innerHeight,
                                      footer: document.querySelector('footer').getBoundingClientRect().bottom})""")
    return {"iframe": iframe, **inner}


def _fits(sizes: dict) -> bool:
    """The iframe shows the whole page (no scrollbar inside) and nothing below it (no blank band)."""
    return (sizes["content"] <= sizes["window"] and sizes["window"] - sizes["footer"] <= FOOTER_MARGIN_PX
            and abs(sizes["iframe"] - sizes["window"]) <= 1)


def _wait_until_it_fits(page, frame) -> dict:
    """Until the iframe fits its content and keeps fitting (pictures and videos still loading move it)."""
    deadline, previous = time.monotonic() + FIT_TIMEOUT_S, None
    while True:
        sizes = _measure(page, frame)
        if (_fits(sizes) and sizes == previous) or time.monotonic() > deadline:
            return sizes
        previous = sizes
        time.sleep(0.5)


@pytest.mark.parametrize("width", [800, 390])
@pytest.mark.parametrize("tab_id", list(CONCEPTS))
def test_the_iframe_follows_its_content(browser, running_app, artifacts_dir, tab_id, width):
    concept = CONCEPTS[tab_id]
    screenshot = artifacts_dir / f"embed_{concept.path}_{width}.png"
    with checked_page(browser, screenshot, viewport={"width": width + 40, "height": 900}) as page:
        iframe, frame = _host_page(page, running_app, concept.path, width)
        wait_for_example(iframe, tab_id)
        loaded = _wait_until_it_fits(page, frame)
        assert loaded["content"] <= loaded["window"], f"a scrollbar inside the page: {loaded}"
        assert loaded["window"] - loaded["footer"] <= FOOTER_MARGIN_PX, f"a blank band below the page: {loaded}"
        assert _fits(loaded) and loaded["iframe"] != HEIGHT_WRITTEN, loaded
        if width == 800:
            widths = frame.evaluate(DRAWN_WIDTHS)
            assert widths["results"], "no result of class 'result' on the page"
            widest_other = max(drawn for _, drawn in widths["others"])
            assert min(widths["results"]) >= widest_other - 1, widths

        selector = result_text(tab_id)
        before = iframe.locator(selector).inner_text()
        if tab_id in NEW_RESULT:  # a new request: a new text
            NEW_RESULT[tab_id](iframe)
            wait_for_new_text(frame, selector, before)
        else:  # the same request again, which the shared cache may answer with the very text shown
            run_and_wait(frame, lambda frame: frame.locator(run_button(tab_id)).click())
        after = _wait_until_it_fits(page, frame)
        assert _fits(after), after


def test_without_the_script_the_iframe_keeps_the_height_written(browser, running_app):
    """The page's own report changes nothing on a course page that does not listen: the iframe scrolls inside."""
    page = browser.new_page(viewport={"width": 840, "height": 900})
    try:
        iframe, frame = _host_page(page, running_app, CONCEPTS["mae-vs-jepa"].path, 800, with_script=False,
                                   height=HEIGHT_TOO_SHORT)
        wait_for_example(iframe, "mae-vs-jepa")
        page.wait_for_timeout(2000)  # the page has reported its height by now
        sizes = _measure(page, frame)
        assert sizes["iframe"] == HEIGHT_TOO_SHORT and sizes["content"] > sizes["window"], sizes
        frame.evaluate("() => window.scrollTo(0, document.scrollingElement.scrollHeight)")
        assert frame.locator("footer").is_visible()
    finally:
        page.close()
