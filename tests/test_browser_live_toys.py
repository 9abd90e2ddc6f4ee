"""The claim follows the hand: with the pointer held and moved, each concept page plays its sweep back.

For each concept with a gesture: once the page says its sweep is live, the pointer is pressed on the gesture and
moved in 6 steps, 150 ms apart. In at least 5 steps the claims' texts and pictures change within 150 ms of the move,
and the page sends no request while the pointer is held. After the release the endpoint runs (answered from the
sweep): the texts stay as they were shown, and they carry the numbers the endpoint returns for that setting.
"""

import html
import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from concept_pages import CONCEPTS, RESULT_TIMEOUT_MS, checked_page, wait_for_example, wait_until_idle
from gradio_client import handle_file

pytestmark = pytest.mark.browser

STEPS, STEP_MS, CHANGED_WITHIN_MS, STEPS_THAT_MUST_CHANGE = 6, 150, 150, 5


def _slider_moves(page, selector: str, steps: int):
    """Pointer positions over a gr.Slider's track: from the handle, left, two slider steps at a time."""
    track = page.locator(f"{selector} input[type=range]")
    track.scroll_into_view_if_needed()
    box = track.bounding_box()
    low, high, step = (float(track.get_attribute(name)) for name in ("min", "max", "step"))
    value = float(track.input_value())

    def at(ratio):  # the thumb's centre at that value (the track keeps half a thumb, 8 px, at each end)
        return box["x"] + 8 + (box["width"] - 16) * (ratio - low) / (high - low)

    y = box["y"] + box["height"] / 2
    return (at(value), y), [(at(value - (i + 1) * 2 * step), y) for i in range(steps)]


def _block_moves(page, selector: str, steps: int):
    """Pointer positions over a BlockPicker: from the block's centre, a patch at a time, along the roomier side, then
    up or down the roomier way."""
    picture = page.locator(f"{selector} .bp-picture")
    picture.scroll_into_view_if_needed()
    box, block = picture.bounding_box(), page.locator(f"{selector} .bp-block").bounding_box()
    rows, cols = (int(picture.evaluate(f"(element) => getComputedStyle(element).getPropertyValue('--{name}')"))
                  for name in ("rows", "cols"))
    patch_w, patch_h = box["width"] / cols, box["height"] / rows
    top, left = round((block["y"] - box["y"]) / patch_h), round((block["x"] - box["x"]) / patch_w)
    height, width = round(block["height"] / patch_h), round(block["width"] / patch_w)
    dx = -1 if left >= cols - left - width else 1
    dy = -1 if top >= rows - top - height else 1
    across = min(steps, max(left, cols - left - width))
    x, y = block["x"] + block["width"] / 2, block["y"] + block["height"] / 2
    path = [(x + dx * patch_w * min(i + 1, across), y + dy * patch_h * max(0, i + 1 - across)) for i in range(steps)]
    return (x, y), path


def _plain(markdown: str) -> str:
    """A summary's markdown as the page's text reads it: rendered, without its tags, single spaces."""
    from demos import sweeps

    blocks_apart = re.sub(r"</?(p|br|li|ul|ol|h\d|table|thead|tbody|tr|td|th)\b[^>]*>", " ", sweeps.markdown_html(markdown))
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", blocks_apart)).split())


def _mae_summary(client, page) -> str:
    """/mae_reconstruct's summary for the example at the ratio the slider shows."""
    from demos.tabs import mae

    ratio = float(page.locator("#mae-ratio input[type=number]").input_value())
    image, _, seed, checkpoint = mae.example_call()
    return client.predict(handle_file(image), ratio, seed, checkpoint, api_name="/mae_reconstruct")[5]


@dataclass
class Live:
    player: str  # the SweepPlayer's selector
    moves: Callable  # (page, steps) -> the pointer's start and its positions
    texts: list[str]  # the claims' texts: each must change at each step
    pictures: list[str]  # the claims' pictures
    says: str  # what the first text says at every step
    endpoint_text: Callable  # (client, page) -> the endpoint's markdown for the first text, at the setting shown


def _mvj_verdict(client, page) -> str:
    """The verdict the page writes from /compare_pixels_embeddings' numbers, for the example at the block shown."""
    from demos.tabs import mae_vs_jepa, mae_vs_jepa_text

    where = page.locator("#block-picture .bp-where").inner_text()  # "Block: row 4, column 0, 4×4 patches"
    top, left = (int(part.split()[-1]) for part in where.split(":")[1].split(",")[:2])
    height, width = (int(n) for n in where.split(",")[2].split()[0].split("×"))
    numbers = client.predict(handle_file(mae_vs_jepa.EXAMPLE_IMAGE), top, left, height, width,
                             api_name="/compare_pixels_embeddings")[-1]
    return mae_vs_jepa_text.block_caption(numbers)


def _tube_summary(client, page) -> str:
    """/tube_predict's summary for the example at the tube shown (its span and sampling as the page's)."""
    from demos.tabs import tubes

    where = page.locator("#tube-picture .bp-where").inner_text()  # "Tube: row 4, column 0, 2×2 patches"
    top, left = (int(part.split()[-1]) for part in where.split(":")[1].split(",")[:2])
    height, width = (int(n) for n in where.split(",")[2].split()[0].split("×"))
    video, start, frames, step, fps, *_, first, last = tubes.opening_call(None)
    return client.predict(handle_file(video), start, frames, step, fps, top, left, height, width, first, last,
                          api_name="/tube_predict")[-2]


LIVE = {
    "mae": Live("#mae-live", lambda page, n: _slider_moves(page, "#mae-ratio", n), ["#mae-summary"],
                ["#mae-masked img", "#mae-pasted img"], "patches hidden", _mae_summary),
    "mae-vs-jepa": Live("#mvj-live", lambda page, n: _block_moves(page, "#block-picture", n),
                        ["#mvj-verdict", "#mvj-mae-score", "#mvj-jepa-score"],
                        ["#mvj-mae-closeup img", "#mvj-jepa-closeup img"], "Block at row", _mvj_verdict),
    "tubes": Live("#tubes-live", lambda page, n: _block_moves(page, "#tube-picture", n), ["#tubes-summary"],
                  ["#tubes-shaded img.sp-still"], "Tube:", _tube_summary),
}

# The claims as a learner reads them: each text's rendered body shown (gradio's, or the player's copy; not the timer of
# gradio's progress beside it), each picture's source.
_STATE = """([texts, pictures]) => [
    ...texts.map((s) => [...document.querySelectorAll(`${s} .prose`)]
        .filter((p) => p.offsetParent !== null && !p.parentElement.closest('.prose'))
        .map((p) => p.innerText).join(' ')),
    ...pictures.map((s) => document.querySelector(s)?.src ?? '')]"""


@pytest.mark.parametrize("tab_id", list(LIVE))
def test_the_claim_follows_the_hand(browser, running_app, client, artifacts_dir, tab_id):
    live = LIVE[tab_id]
    player, moves, texts, pictures, says = live.player, live.moves, live.texts, live.pictures, live.says
    concept = CONCEPTS[tab_id]
    with checked_page(browser, artifacts_dir / f"live_{concept.path}.png",
                      viewport={"width": 800, "height": 900}) as page:
        page.goto(f"{running_app.local_url}{concept.path}")
        wait_for_example(page, tab_id)
        page.locator(f"{player} .sp-note[data-ready=true]").wait_for(timeout=RESULT_TIMEOUT_MS)
        wait_until_idle(page)
        start, path = moves(page, STEPS)
        requests = []
        page.mouse.move(*start)
        page.mouse.down()
        page.on("request", lambda request: requests.append(request.url) if "/gradio_api/" in request.url else None)
        changed, shown = 0, None
        for x, y in path:
            before = page.evaluate(_STATE, [texts, pictures])
            page.mouse.move(x, y)
            try:  # every claim redrawn: each text and each picture differs from the step before
                page.wait_for_function(f"""(args) => {{ const now = ({_STATE})(args.slice(0, 2));
                    return now.every((value, i) => value !== args[2][i]); }}""",
                                       arg=[texts, pictures, before], timeout=CHANGED_WITHIN_MS)
                changed += 1
            except Exception:  # noqa: BLE001  Playwright's TimeoutError: this step was not drawn in time
                pass
            page.wait_for_timeout(max(0, STEP_MS - CHANGED_WITHIN_MS))
            shown = page.evaluate(_STATE, [texts, pictures])
            assert says in shown[0], shown[0]
        held = list(requests)
        page.mouse.up()
        assert changed >= STEPS_THAT_MUST_CHANGE, f"only {changed} of {STEPS} steps redrew the claims in time"
        assert held == [], f"requests sent while the pointer was held: {held}"
        page.wait_for_timeout(500)  # the release's request has gone out
        wait_until_idle(page)
        after = page.evaluate(_STATE, [texts, pictures])
        for text_then, text_now in zip(shown[:len(texts)], after[:len(texts)], strict=True):
            assert text_now.startswith(text_then), (text_then, text_now)  # notes (a shared result) may follow
        endpoint, played = _plain(live.endpoint_text(client, page)), " ".join(shown[0].split())
        differs = next((i for i, (a, b) in enumerate(zip(endpoint, played, strict=False)) if a != b),
                       min(len(endpoint), len(played)))
        assert endpoint.startswith(played), f"the endpoint says {endpoint[differs - 40:differs + 80]!r}, the page " \
                                            f"showed {played[differs - 40:differs + 80]!r}"
