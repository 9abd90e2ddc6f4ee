"""What the browser tests know about each concept page: its own elements, where its example's result shows."""

import app

CONCEPTS = {concept.tab_id: concept for concept in app.CONCEPTS}
# Per concept: the elements only its page has, and where its example's result appears (selector, text).
OWN_ELEMENTS = {
    "mae": ["#mae-image", "#mae-run"],
    "mae-vs-jepa": ["#mvj-image", "#mvj-run"],
    "tubes": ["#tubes-video", "#tubes-run"],
    "heads": ["#heads-video", "#heads-run", "#heads-ask"],
}
READY_RESULT = {
    "mae": ("#mae-summary", "147 of 196 patches hidden"),
    "mae-vs-jepa": ("#mvj-summary", "patches at row"),
    "tubes": ("#tubes-summary", "Tube:"),
    "heads": ("#heads-timings", "encoder pass 1"),
}
MAIN_ACTION = {"mae": "#mae-run", "mae-vs-jepa": "#mvj-run", "tubes": "#tubes-run", "heads": "#heads-run"}
RESULT_TIMEOUT_MS = 180_000  # the first visit computes the example (and loads its models) on a busy 2-core machine


def console_errors(page) -> list[str]:
    """The errors the page logs from now on (a list that fills as they come)."""
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def wait_for_example(frame, tab_id: str) -> None:
    """Until the concept's example result is on `frame` (a page or an iframe's frame)."""
    selector, text = READY_RESULT[tab_id]
    frame.locator(selector).get_by_text(text).first.wait_for(timeout=RESULT_TIMEOUT_MS)


def result_text(tab_id: str) -> str:
    """The selector of the text of the concept's result, without gradio's progress timer beside it."""
    return f"{READY_RESULT[tab_id][0]} [data-testid=markdown]"


def wait_for_new_text(frame, selector: str, before: str, timeout_ms: int = RESULT_TIMEOUT_MS) -> None:
    """Until the text of `selector` on `frame` differs from `before`: a new result has arrived."""
    frame.wait_for_function("([selector, before]) => document.querySelector(selector).innerText !== before",
                            arg=[selector, before], timeout=timeout_ms)
