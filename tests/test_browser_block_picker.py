"""`BlockPicker` (demos/tabs/block_picker.py) on a bare gradio app, driven in headless Chromium at 800 and 390 px:
the pointer drags, centres and resizes the block, the keyboard moves and resizes it and runs, the server hears one
event per gesture with the final block, Python moves the drawn block and changes the picture and grid (from a click and
from the page's load event), and axe-core finds nothing serious in light and dark themes. Screenshots go to the
artifacts folder (conftest.py)."""

import json

import gradio as gr
import pytest
from axe_playwright_python.sync_playwright import Axe
from concept_pages import checked_page
from conftest import EXAMPLE_IMAGES
from PIL import Image

from demos.tabs import theme
from demos.tabs.block_picker import BlockPicker, picture_url

pytestmark = pytest.mark.browser

VIEWPORTS = {800: {"width": 800, "height": 900}, 390: {"width": 390, "height": 844}}
PICKER = "#block-picture"
TIMEOUT_MS = 30_000


def _said(count: int, block: dict) -> str:
    return f"{count} {json.dumps(block)}"


def _example_picture(size: int) -> str:
    with Image.open(EXAMPLE_IMAGES[0]) as image:
        side = min(image.size)
        return picture_url(image.convert("RGB").crop((0, 0, side, side)).resize((size, size)), "JPEG")


def _bare_app() -> gr.Blocks:
    """Two pickers (one with a picture, one waiting for it), what their events said, and buttons that update the
    first from Python."""
    with gr.Blocks() as demo:
        picker = BlockPicker(picture=_example_picture(224), rows=16, cols=16, label="The example picture, 16 by 16 "
                             "patches", elem_id="block-picture")
        releases, submits = gr.State(0), gr.State(0)
        release_log = gr.Textbox(label="Releases", elem_id="release-log")
        submit_log = gr.Textbox(label="Runs", elem_id="submit-log")
        to_corner = gr.Button("Block to the corner", elem_id="to-corner")  # both ways of updating: gr.update, a picker
        new_grid = gr.Button("New picture, 8 by 8", elem_id="new-grid")
        BlockPicker(rows=8, cols=8, value={"top": 2, "left": 3, "height": 2, "width": 2}, noun="Tube",
                    label="No video yet", elem_id="tube-picture")

        def heard(block, count):
            return count + 1, _said(count + 1, block)

        picker.release(heard, [picker, releases], [releases, release_log])
        picker.submit(heard, [picker, submits], [submits, submit_log])
        to_corner.click(lambda: gr.update(value={"top": 0, "left": 0, "height": 2, "width": 3}), None, picker)
        new_grid.click(lambda: BlockPicker(picture=_example_picture(128), rows=8, cols=8), None, picker)
    return demo


@pytest.fixture(scope="module")
def picker_app():
    demo = _bare_app()
    demo.launch(prevent_thread_lock=True, quiet=True, theme=theme.THEME, css=theme.CSS)  # the app's colours
    yield demo
    demo.close()


@pytest.fixture(scope="module")
def chromium(browser):
    """conftest's Chromium: one Playwright per test session (a second one in the same process cannot start)."""
    return browser


def _open(page, url: str, selector: str = PICKER) -> None:
    page.goto(url)
    page.locator(f"{selector} .bp-block").wait_for(timeout=TIMEOUT_MS)
    page.locator(selector).scroll_into_view_if_needed()


def _where(page, selector: str = PICKER) -> str:
    return page.locator(f"{selector} .bp-where").inner_text()


def _point(page, row: float, col: float, selector: str = PICKER, rows: int = 16, cols: int = 16) -> tuple[float, float]:
    """The page coordinates of a spot on the picture, in patches from its top-left corner."""
    box = page.locator(f"{selector} .bp-picture").bounding_box()
    return box["x"] + col / cols * box["width"], box["y"] + row / rows * box["height"]


def _drawn(page, selector: str = PICKER, rows: int = 16, cols: int = 16) -> dict:
    """Where the block is drawn, in patches (rounded), from its box and the picture's."""
    picture = page.locator(f"{selector} .bp-picture").bounding_box()
    block = page.locator(f"{selector} .bp-block").bounding_box()
    unit_y, unit_x = picture["height"] / rows, picture["width"] / cols
    return {"top": round((block["y"] - picture["y"]) / unit_y), "left": round((block["x"] - picture["x"]) / unit_x),
            "height": round(block["height"] / unit_y), "width": round(block["width"] / unit_x)}


def _log(page, selector: str) -> str:
    return page.locator(f"{selector} textarea").input_value()


def _wait_log(page, selector: str, expected: str) -> None:
    page.wait_for_function("([selector, expected]) => document.querySelector(selector + ' textarea').value === expected",
                           arg=[selector, expected], timeout=TIMEOUT_MS)


def _drag(page, start: tuple[float, float], end: tuple[float, float], steps: int = 12) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=steps)
    page.mouse.up()


@pytest.mark.parametrize("width", list(VIEWPORTS))
def test_a_drag_moves_the_block_and_the_server_hears_once(chromium, picker_app, artifacts_dir, width):
    with checked_page(chromium, artifacts_dir / f"block_picker_drag_{width}.png", viewport=VIEWPORTS[width]) as page:
        _open(page, picker_app.local_url)
        picture = page.locator(f"{PICKER} .bp-picture").bounding_box()
        assert 0.9 * min(300, width - 40) <= picture["width"] <= 300 and picture["width"] == picture["height"]
        assert _where(page) == "Block: row 6, column 6, 4×4 patches"
        _drag(page, _point(page, 7.5, 7.5), _point(page, 8.5, 12.5))  # grab the block, across 5 columns and a row
        assert _where(page) == "Block: row 7, column 11, 4×4 patches"
        final = {"top": 7, "left": 11, "height": 4, "width": 4}
        assert _drawn(page) == final
        focus = page.locator(f"{PICKER} .bp-picture").evaluate(
            "(element) => [document.activeElement === element, getComputedStyle(element).outlineStyle]")
        assert focus == [True, "none"]  # the keys work next, and a mouse press shows no focus ring
        _wait_log(page, "#release-log", _said(1, final))
        page.wait_for_timeout(1000)  # no late second event
        assert _log(page, "#release-log") == _said(1, final)
        assert _log(page, "#submit-log") == ""


@pytest.mark.parametrize("width", list(VIEWPORTS))
def test_a_press_elsewhere_centres_the_block_and_the_corner_resizes(chromium, picker_app, artifacts_dir, width):
    with checked_page(chromium, artifacts_dir / f"block_picker_resize_{width}.png", viewport=VIEWPORTS[width]) as page:
        _open(page, picker_app.local_url)
        page.mouse.click(*_point(page, 2.5, 13.5))  # centre 4x4 on row 2.5, column 13.5: rows 1-4, columns 12-15
        centred = {"top": 1, "left": 12, "height": 4, "width": 4}
        assert _drawn(page) == centred
        _wait_log(page, "#release-log", _said(1, centred))
        page.mouse.click(*_point(page, 15.5, 15.5))  # at the edge the block stays inside the grid
        inside = {"top": 12, "left": 12, "height": 4, "width": 4}
        assert _drawn(page) == inside
        _wait_log(page, "#release-log", _said(2, inside))

        handle = page.locator(f"{PICKER} .bp-handle").bounding_box()
        _drag(page, (handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2), _point(page, 0.5, 0.5))
        smallest = {"top": 12, "left": 12, "height": 1, "width": 1}  # dragged past the top-left: 1x1 at least
        assert _where(page) == "Block: row 12, column 12, 1×1 patches"
        _wait_log(page, "#release-log", _said(3, smallest))

        page.mouse.click(*_point(page, 5.5, 3.5))  # a 1x1 block lands on the patch pressed
        handle = page.locator(f"{PICKER} .bp-handle").bounding_box()
        _drag(page, (handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2), _point(page, 9.5, 10.5))
        grown = {"top": 5, "left": 3, "height": 5, "width": 8}  # the patch under the pointer is the last one
        assert _drawn(page) == grown
        assert _where(page) == "Block: row 5, column 3, 5×8 patches"
        _wait_log(page, "#release-log", _said(5, grown))


@pytest.mark.parametrize("width", list(VIEWPORTS))
def test_the_keyboard_moves_resizes_and_runs(chromium, picker_app, artifacts_dir, width):
    with checked_page(chromium, artifacts_dir / f"block_picker_keyboard_{width}.png", viewport=VIEWPORTS[width]) as page:
        _open(page, picker_app.local_url)
        page.keyboard.press("Tab")  # the picture is the first stop
        focused = page.evaluate("() => document.activeElement.closest('#block-picture') !== null")
        assert focused
        outline = page.locator(f"{PICKER} .bp-picture").evaluate("(element) => getComputedStyle(element).outlineStyle")
        assert outline == "solid"  # a visible focus ring
        for key in ["ArrowRight", "ArrowRight", "ArrowDown", "Shift+ArrowRight", "Shift+ArrowUp", "Shift+ArrowUp"]:
            page.keyboard.press(key)
        block = {"top": 7, "left": 8, "height": 2, "width": 5}
        assert _where(page) == "Block: row 7, column 8, 2×5 patches"
        assert _drawn(page) == block
        page.keyboard.press("Enter")
        _wait_log(page, "#submit-log", _said(1, block))
        page.wait_for_timeout(1000)
        assert _log(page, "#submit-log") == _said(1, block)
        assert _log(page, "#release-log") == ""  # arrows run nothing


@pytest.mark.parametrize("width", list(VIEWPORTS))
def test_python_moves_the_block_and_changes_the_picture_and_grid(chromium, picker_app, artifacts_dir, width):
    with checked_page(chromium, artifacts_dir / f"block_picker_python_{width}.png", viewport=VIEWPORTS[width]) as page:
        _open(page, picker_app.local_url)
        page.locator("#new-grid").click()  # the block (row 6, column 6, 4x4) no longer fits: it moves inside
        page.locator(f"{PICKER} .bp-where").get_by_text("Block: row 4, column 4, 4×4 patches").wait_for(timeout=TIMEOUT_MS)
        assert page.locator(f"{PICKER} .bp-picture").evaluate("(element) => element.style.getPropertyValue('--rows')") == "8"
        assert _drawn(page, rows=8, cols=8) == {"top": 4, "left": 4, "height": 4, "width": 4}
        page.locator("#to-corner").click()
        page.locator(f"{PICKER} .bp-where").get_by_text("Block: row 0, column 0, 2×3 patches").wait_for(timeout=TIMEOUT_MS)
        assert _drawn(page, rows=8, cols=8) == {"top": 0, "left": 0, "height": 2, "width": 3}
        assert _log(page, "#release-log") == ""  # updates from Python are no gestures
        _drag(page, _point(page, 0.5, 0.5, rows=8, cols=8), _point(page, 6.5, 7.5, rows=8, cols=8))
        kept_inside = {"top": 6, "left": 5, "height": 2, "width": 3}  # the new grid's edge stops it
        assert _drawn(page, rows=8, cols=8) == kept_inside
        _wait_log(page, "#release-log", _said(1, kept_inside))


def _load_app() -> gr.Blocks:
    """A page whose load event updates two pickers among many other outputs: the first gets a picture, a grid and
    a block (as a click would send them), the second only a grid its block no longer fits; a button reads both."""
    with gr.Blocks() as demo:
        picker = BlockPicker({"top": 9, "left": 10, "height": 4, "width": 4}, rows=16, cols=16, elem_id="load-picker")
        grid_only = BlockPicker({"top": 12, "left": 2, "height": 3, "width": 5}, rows=16, cols=16, noun="Tube",
                                elem_id="load-grid")
        texts = [gr.Textbox(label=f"Text {i}") for i in range(8)]
        read = gr.Button("Read the pickers", elem_id="read")
        heard = gr.Textbox(label="Heard", elem_id="heard")
        picture = _example_picture(128)

        def load():
            return (BlockPicker(picture=picture, rows=8, cols=8, value={"top": 0, "left": 1, "height": 4, "width": 4}),
                    BlockPicker(rows=8, cols=8), *[f"text {i}" for i in range(8)])

        demo.load(load, None, [picker, grid_only, *texts])
        read.click(lambda a, b: json.dumps([a, b]), [picker, grid_only], heard)
    return demo


def test_a_load_event_updates_the_picture_grid_and_block(chromium, artifacts_dir):
    """The page's load event sets the block as a click does, and a new grid alone keeps the block inside it, drawn
    and as the server reads it."""
    demo = _load_app()
    demo.launch(prevent_thread_lock=True, quiet=True)
    try:
        with checked_page(chromium, artifacts_dir / "block_picker_load_800.png", viewport=VIEWPORTS[800]) as page:
            _open(page, demo.local_url, "#load-picker")
            page.locator("#load-picker img").wait_for(timeout=TIMEOUT_MS)  # the load event's picture
            page.wait_for_function("() => [...document.querySelectorAll('textarea')].some(t => t.value === 'text 7')",
                                   timeout=TIMEOUT_MS)  # the load event's last output
            page.wait_for_timeout(500)  # nothing late moves the block
            assert page.locator("#load-picker .bp-picture").evaluate(
                "(element) => element.style.getPropertyValue('--rows')") == "8"
            assert _where(page, "#load-picker") == "Block: row 0, column 1, 4×4 patches"
            assert _drawn(page, "#load-picker", rows=8, cols=8) == {"top": 0, "left": 1, "height": 4, "width": 4}
            assert _where(page, "#load-grid") == "Tube: row 5, column 2, 3×5 patches"
            assert _drawn(page, "#load-grid", rows=8, cols=8) == {"top": 5, "left": 2, "height": 3, "width": 5}
            page.locator("#read").click()
            expected = json.dumps([{"top": 0, "left": 1, "height": 4, "width": 4},
                                   {"top": 5, "left": 2, "height": 3, "width": 5}])
            _wait_log(page, "#heard", expected)
            page.locator("#load-picker .bp-picture").focus()  # the keys move the block the page shows
            page.keyboard.press("ArrowDown")
            page.locator("#load-grid .bp-picture").focus()
            page.keyboard.press("ArrowRight")
            assert _where(page, "#load-grid") == "Tube: row 5, column 3, 3×5 patches"
            assert _where(page, "#load-picker") == "Block: row 1, column 1, 4×4 patches"
    finally:
        demo.close()


def test_gradio_applies_an_html_update_one_prop_at_a_time(chromium, artifacts_dir):
    """The library defect BlockPicker works around: a gr.HTML update returned by a handler (a load or a click)
    reaches the page as two steps, the props, then the value (gradio's Blocks `handle_data` awaits
    `update_state` per key), so `watch` sees a new prop with the old value, a state Python never sent. A
    `watch` that rewrites the value there overwrites the value still on its way. When this fails, gradio
    applies an update whole and block_picker.js could keep the block inside the grid with a `watch` again."""
    with gr.Blocks() as demo:
        html = gr.HTML("a", html_template="<p>${n}:${value}</p>", n=1, elem_id="steps",
                       js_on_load="watch(['value', 'n'], () => (window.seen ||= []).push(props.n + ':' + props.value));")
        go = gr.Button("Go", elem_id="go")
        demo.load(lambda: gr.HTML("b", n=2), None, html)
        go.click(lambda: gr.HTML("c", n=3), None, html)
    demo.launch(prevent_thread_lock=True, quiet=True)
    try:
        with checked_page(chromium, artifacts_dir / "html_update_steps.png", viewport=VIEWPORTS[800]) as page:
            page.goto(demo.local_url)
            page.wait_for_function("() => document.querySelector('#steps p')?.innerText === '2:b'", timeout=TIMEOUT_MS)
            page.locator("#go").click()
            page.wait_for_function("() => document.querySelector('#steps p')?.innerText === '3:c'", timeout=TIMEOUT_MS)
            page.wait_for_timeout(300)
            assert page.evaluate("() => window.seen") == ["2:a", "2:b", "3:b", "3:c"]  # "2:a", "3:b": never sent
    finally:
        demo.close()


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("width", list(VIEWPORTS))
def test_no_serious_accessibility_finding_and_screenshots(chromium, picker_app, artifacts_dir, width, theme):
    with checked_page(chromium, artifacts_dir / f"block_picker_{width}_{theme}.png", viewport=VIEWPORTS[width]) as page:
        _open(page, f"{picker_app.local_url}?__theme={theme}")
        page.wait_for_function("() => document.querySelector('#block-picture img').complete")
        assert page.locator("#tube-picture img").count() == 0  # no picture yet: the placeholder, no broken image
        assert _where(page, "#tube-picture") == "Tube: row 2, column 3, 2×2 patches"
        picture = page.locator(f"{PICKER} .bp-picture")
        assert picture.get_attribute("tabindex") == "0" and picture.get_attribute("role") == "application"
        assert picture.get_attribute("aria-label") == "The example picture, 16 by 16 patches"
        assert page.locator(f"{PICKER} .bp-where").get_attribute("aria-live") == "polite"
        assert picture.evaluate("(element) => getComputedStyle(element).touchAction") == "none"
        violations = Axe().run(page).response["violations"]
        (artifacts_dir / f"axe_block_picker_{width}_{theme}.json").write_text(json.dumps(violations, indent=1))
        serious = [(v["id"], v["impact"], [node["target"] for node in v["nodes"]]) for v in violations
                   if v["impact"] in ("serious", "critical")]
        assert serious == []
        page.keyboard.press("Tab")  # the focus ring in the screenshot


def test_a_finger_drags_the_block(chromium, picker_app, artifacts_dir):
    """Touch, as a phone sends it (Chromium's touch events through CDP): the page does not scroll, the block
    follows, and the server hears once."""
    with checked_page(chromium, artifacts_dir / "block_picker_touch_390.png", viewport=VIEWPORTS[390], has_touch=True,
                      is_mobile=True) as page:
        _open(page, picker_app.local_url)
        cdp = page.context.new_cdp_session(page)
        scrolled = page.evaluate("() => window.scrollY")
        (x0, y0), (x1, y1) = _point(page, 7.5, 7.5), _point(page, 3.5, 2.5)
        cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x0, "y": y0}]})
        for step in range(1, 11):
            x, y = x0 + (x1 - x0) * step / 10, y0 + (y1 - y0) * step / 10
            cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        final = {"top": 2, "left": 1, "height": 4, "width": 4}
        assert _where(page) == "Block: row 2, column 1, 4×4 patches"
        assert page.evaluate("() => window.scrollY") == scrolled
        _wait_log(page, "#release-log", _said(1, final))
        page.wait_for_timeout(1000)
        assert _log(page, "#release-log") == _said(1, final)
