"""What the browser tests know about each concept page, all from its `CONCEPT` (demos/tabs/concept.py)."""

import contextlib

import app

CONCEPTS = {concept.tab_id: concept for concept in app.CONCEPTS}
OPENING = app.CONCEPTS[0]  # the tab `/` opens with, its example shown on load
RESULT_TIMEOUT_MS = 180_000  # the first visit computes the example (and loads its models) on a busy 2-core machine
# A JS expression: the pictures a result shows, those of blocks that take no upload (not the examples' thumbnails, not
# a picker's picture).
OUTPUT_IMAGES = ("[...document.querySelectorAll('.block img')].filter((img) => "
                 "!img.closest('.block').querySelector('input[type=file]') && !img.closest('.gallery, footer, .bp'))")


def click_picture_corner(page, selector: str) -> None:
    """Click 3 px inside the top-left corner of the picture in `selector`'s <img>, once the browser has loaded it: the
    <img> box can be larger than the picture (object-fit: scale-down centres it), and a result's text can arrive
    before its picture."""
    page.wait_for_function("""(selector) => {
        const img = document.querySelector(selector);
        return img !== null && img.complete && img.naturalWidth > 0;
    }""", arg=selector, timeout=RESULT_TIMEOUT_MS)
    page.locator(selector).first.scroll_into_view_if_needed()
    x, y = page.evaluate("""(selector) => {
        const img = document.querySelector(selector), r = img.getBoundingClientRect();
        const scale = Math.min(r.width / img.naturalWidth, r.height / img.naturalHeight, 1);
        return [r.x + (r.width - img.naturalWidth * scale) / 2, r.y + (r.height - img.naturalHeight * scale) / 2];
    }""", selector)
    page.mouse.click(x + 3, y + 3)


def open_folds(frame) -> None:
    """Open every closed accordion on `frame` (a page or an iframe's frame): gradio renders a fold's content only once
    it is open, and everything a page knows must be reachable there."""
    while (closed := frame.locator("button.label-wrap:not(.open)")).count():
        closed.first.click()


def run_button(tab_id: str) -> str:
    """The selector of the button that runs the concept's main action."""
    return f"#{CONCEPTS[tab_id].run_button}"


@contextlib.contextmanager
def checked_page(browser, screenshot, **options):
    """A new page (`browser.new_page(**options)`); once the test's checks pass, a screenshot of it at `screenshot`
    and no error logged on it. Closed in every case."""
    page = browser.new_page(device_scale_factor=1, **options)
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
        page.screenshot(path=screenshot, full_page=True)
        assert errors == []
    finally:
        page.close()


def wait_for_example(frame, tab_id: str) -> None:
    """Until the concept's example result is on `frame` (a page or an iframe's frame)."""
    concept = CONCEPTS[tab_id]
    frame.locator(f"#{concept.summary}").get_by_text(concept.example_summary).first.wait_for(timeout=RESULT_TIMEOUT_MS)


def result_text(tab_id: str) -> str:
    """The selector of the text of the concept's result, without gradio's progress timer beside it."""
    return f"#{CONCEPTS[tab_id].summary} [data-testid=markdown]"


def wait_for_new_text(frame, selector: str, before: str, timeout_ms: int = RESULT_TIMEOUT_MS) -> None:
    """Until the text of `selector` on `frame` differs from `before`: a new result has arrived."""
    frame.wait_for_function("([selector, before]) => document.querySelector(selector).innerText !== before",
                            arg=[selector, before], timeout=timeout_ms)


# gradio's status tracker in each output block: shown while its event is pending, class "hide" once it is done.
# A watch installed before a request sees one tracker shown, then all hidden again: that request's result arrived.
_BUSY = "() => [...document.querySelectorAll('[data-testid=status-tracker]')].some((t) => !t.classList.contains('hide'))"
_WATCH = f"""() => {{
    const busy = {_BUSY};
    const watch = window.__resultWatch = {{seen: false, arrived: false}};
    const observer = new MutationObserver(() => {{
        if (busy()) watch.seen = true;
        else if (watch.seen) {{ watch.arrived = true; observer.disconnect(); }}
    }});
    observer.observe(document.body, {{subtree: true, childList: true, attributes: true, attributeFilter: ["class"]}});
}}"""


def wait_until_idle(frame, timeout_ms: int = RESULT_TIMEOUT_MS) -> None:
    """Until no event of the page is pending (every status tracker hidden): a result still on its way would
    otherwise land after what the test does next, and set the controls back."""
    frame.wait_for_function(f"() => !({_BUSY})()", timeout=timeout_ms)


def run_and_wait(frame, start, timeout_ms: int = RESULT_TIMEOUT_MS) -> None:
    """Start a request with `start(frame)` (a click, a key) and wait until its result has arrived on `frame`.

    New text is no sign of it: the shared result cache answers a repeated request with the very result already
    shown. So this waits for the page to be idle, watches gradio's status trackers, starts the request and waits
    until a tracker has shown it pending and all are hidden again.
    """
    wait_until_idle(frame, timeout_ms)
    frame.evaluate(_WATCH)
    start(frame)
    frame.wait_for_function("() => window.__resultWatch.arrived", timeout=timeout_ms)

