"""The app over plain HTTP, as `curl` calls it: POST /gradio_api/call/<name>, then the result as server-sent events.

Each concept endpoint with only the parameters it needs is answered; null and items left out take their defaults; a
bad value of each kind (NaN included, which JSON over HTTP can carry and the JS client cannot) is refused with a
message that names the parameter. The upstream defect `demos/tabs/api_inputs.py` works around, on a bare gradio app:
a slider's preprocessing raises a TypeError on null, which gradio masks. The README's curl example runs as written.
"""

import asyncio
import concurrent.futures
import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import api_calls
import gradio as gr
import httpx
import pytest

from demos.tabs import api_inputs

ROOT = Path(__file__).resolve().parent.parent


def _upload(url: str, path: str) -> dict:
    with open(path, "rb") as file:
        response = httpx.post(f"{url}gradio_api/upload", files={"files": (Path(path).name, file)}, timeout=60)
    response.raise_for_status()
    return {"path": response.json()[0], "meta": {"_type": "gradio.FileData"}}


def _as_sent(url: str, value):
    """A call's data as plain HTTP sends it: files uploaded first, NaN as JSON's NaN (Python's json writes it)."""
    if isinstance(value, list):
        return [_as_sent(url, item) for item in value]
    if value == api_calls.NAN:
        return math.nan
    if isinstance(value, dict) and "$file" in value:
        return _upload(url, value["$file"])
    return value


def call_http(url: str, endpoint: str, data: list) -> tuple[str, object]:
    """POST the call, read its events; the last event's name ("complete" or "error") and its data."""
    started = httpx.post(f"{url}gradio_api/call{endpoint}", content=json.dumps({"data": _as_sent(url, data)}),
                         headers={"Content-Type": "application/json"}, timeout=60)
    started.raise_for_status()
    events = httpx.get(f"{url}gradio_api/call{endpoint}/{started.json()['event_id']}", timeout=600).text
    (event, payload), *_ = reversed(re.findall(r"^event: (\w+)\ndata: (.*)$", events, re.M))
    return event, json.loads(payload)


def test_every_documented_endpoint_has_an_answered_call():
    called = {endpoint for endpoint, _ in api_calls.ANSWERED.values()}
    missing = [endpoint for endpoint in api_calls.ENDPOINTS if endpoint not in called]
    assert not missing, f"no call of {missing}: ANSWERED takes each concept endpoint's call from Concept.calls"


@pytest.mark.parametrize("case", sorted(api_calls.ANSWERED))
def test_each_concept_endpoint_answers_with_only_what_it_needs(running_app, case):
    endpoint, data = api_calls.ANSWERED[case]
    event, payload = call_http(running_app.local_url, endpoint, data)
    assert event == "complete", (case, payload)
    assert isinstance(payload, list) and payload, case


REFUSED = {**api_calls.REFUSED,
           "a NaN ratio": ("/mae_reconstruct", [api_calls.file(api_calls.IMAGE), api_calls.NAN],
                           "mask_ratio must be a finite number"),
           "an infinite start": ("/classify_action", [api_calls.file(api_calls.VIDEO), math.inf],
                                 'start_s ("Start (s)") must be a finite number')}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_bad_value_is_refused_with_the_parameters_name(running_app, case):
    endpoint, data, expected = REFUSED[case]
    event, payload = call_http(running_app.local_url, endpoint, data)
    assert event == "error", (case, payload)
    assert payload["error"] and expected in payload["error"], (case, payload)


def _slider_app() -> gr.Blocks:
    with gr.Blocks() as demo:
        level = gr.Slider(0, 10, value=3, step=1, label="Level")
        kind = gr.Radio(["a", "b"], value="a", label="Kind")
        out = gr.Textbox()
        gr.Button().click(lambda level, kind: f"{kind}{level:g}", [level, kind], out, api_name="show")
        gr.Button().click(lambda level: f"{level:g}", level, out, api_name=False)  # the page's own: no endpoint
    return demo


def test_gradio_masks_a_sliders_null_without_the_workaround():
    """The upstream defect: `gr.Slider.preprocess` (gradio/components/slider.py, `Number.raise_if_out_of_bounds`)
    compares null with its minimum, a TypeError that gradio reports to the caller as nothing ("An error occurred"
    in the JS client), while `gr.Number` and `gr.Radio` pass null on as a value. When this test fails, gradio takes
    null; `api_inputs` still makes it the default."""
    with pytest.raises(TypeError):
        gr.Slider(0, 10, value=3).preprocess(None)
    assert gr.Number(value=3).preprocess(None) is None and gr.Radio(["a", "b"], value="a").preprocess(None) is None

    bare = _slider_app()
    bare.launch(prevent_thread_lock=True, quiet=True)
    try:
        assert call_http(bare.local_url, "/show", [None, "b"]) == ("error", {"error": None})
        assert call_http(bare.local_url, "/show", ["six", "b"]) == ("error", {"error": None})
        assert call_http(bare.local_url, "/show", [4]) == ("error", {"error": None})  # an item left out
    finally:
        bare.close()

    served = api_inputs.serve_every_client(_slider_app())
    served.launch(prevent_thread_lock=True, quiet=True)
    try:
        assert call_http(served.local_url, "/show", [None, "b"]) == ("complete", ["b3"])
        assert call_http(served.local_url, "/show", [4]) == ("complete", ["a4"])
        event, payload = call_http(served.local_url, "/show", ["six", "b"])
        assert (event, payload["error"]) == ("error", "level must be a number from 0 to 10, not 'six'.")
        # The page's private events pass as they are (gradio names them too: "false_1").
        (private,) = [fn for fn in served.fns.values() if fn.api_visibility == "private"]
        # asyncio.run in a thread of its own: Playwright's sync API (the browser tests) keeps a loop in this one.
        with concurrent.futures.ThreadPoolExecutor(1) as thread:
            assert thread.submit(asyncio.run, served.preprocess_data(private, [4], None)).result() == [4]
    finally:
        served.close()


def _radio_app() -> gr.Blocks:
    with gr.Blocks() as demo:
        levels = gr.Radio([1, 2, 4], value=2, label="Levels")
        scale = gr.Dropdown([("half", 0.5), ("whole", 1.0)], value=1.0, label="Scale")
        gr.Button().click(lambda levels, scale: f"{levels * scale:g}", [levels, scale], gr.Textbox(), api_name="scaled")
    return demo


def _declared(demo: gr.Blocks) -> list[dict]:
    return [p["type"] for p in demo.get_api_info()["named_endpoints"]["/scaled"]["parameters"]]


def test_a_number_valued_radio_is_declared_and_taken_as_numbers():
    """gradio declares a radio's or dropdown's number choices as text (the defect test_mcp.py shows), so a script that
    follows the API page sends text the radio refuses; served, the page declares numbers and the numbers are taken."""
    assert [kind["type"] for kind in _declared(_radio_app())] == ["string", "string"]
    assert api_inputs.json_type([1, 2.5]) == "number" and api_inputs.json_type([1, "a"]) == ["integer", "string"]
    served = api_inputs.serve_every_client(_radio_app())
    served.launch(prevent_thread_lock=True, quiet=True)  # the API page's info, as launch builds it
    try:
        assert _declared(served) == [{"enum": [1, 2, 4], "title": "Radio", "type": "integer"},
                                     {"enum": [0.5, 1.0], "type": "number"}]
        assert call_http(served.local_url, "/scaled", [4, 0.5]) == ("complete", ["2"])
        assert call_http(served.local_url, "/scaled", [None]) == ("complete", ["2"])  # the defaults, 2 and 1.0
        event, payload = call_http(served.local_url, "/scaled", ["4"])
        assert (event, payload["error"]) == ("error", "levels must be one of 1, 2, 4, not '4'.")
    finally:
        served.close()


@pytest.mark.slow  # runs bash and curl
def test_the_readmes_curl_example_runs_as_written(running_app):
    assert shutil.which("curl"), "the README's plain HTTP example needs curl"
    section = (ROOT / "README.md").read_text().split("## Call it from a web page", 1)[1].split("\n## ", 1)[0]
    (script,) = re.findall(r"```bash\n(.*?)```", section, re.S)
    assert script.startswith("URL=http://127.0.0.1:7860 ")
    script = script.replace("URL=http://127.0.0.1:7860", f"URL={running_app.local_url.rstrip('/')}", 1)
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    event, payload = re.findall(r"^event: (\w+)\ndata: (.*)$", done.stdout, re.M)[-1]
    outputs = json.loads(payload)
    assert event == "complete", outputs
    assert outputs[3]["url"].endswith(".png") and outputs[6]["num_hidden"] == 147, outputs
