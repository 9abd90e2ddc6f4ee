"""The app called as a course page's own script calls it: the official JS client, `@gradio/client` from npm (pinned in
tests/js/package.json, installed by `.ci/run` with `npm ci --prefix tests/js`), run by node against the running app.

Each concept endpoint with only the parameters it needs is answered; a bad value of each kind is refused with a
message that names the parameter, never gradio's "An error occurred". The README's web-page example runs as written.
"""

import functools
import http.server
import json
import re
import shutil
import subprocess
import threading
from pathlib import Path

import api_calls
import pytest

pytestmark = pytest.mark.slow  # starts node processes

ROOT = Path(__file__).resolve().parent.parent
JS = ROOT / "tests" / "js"


def _node() -> str:
    node = shutil.which("node")
    assert node, "node is needed for the JS client's tests (.ci/run installs it)"
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    assert int(version.lstrip("v").split(".")[0]) >= 18, f"@gradio/client needs node 18 or newer, not {version}"
    assert (JS / "node_modules" / "@gradio" / "client").is_dir(), "run `npm ci --prefix tests/js` (as .ci/run does)"
    return node


def call_js(url: str, calls: list[tuple[str, object]]) -> list[dict]:
    """Each (endpoint, data) through `@gradio/client` in one node process; each call's {"ok", "data" | "error"}."""
    request = {"url": url, "calls": [{"endpoint": endpoint, "data": data} for endpoint, data in calls]}
    done = subprocess.run([_node(), str(JS / "call.mjs")], input=json.dumps(request), capture_output=True, text=True,
                          cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == len(calls), (done.stdout, done.stderr)
    return lines


def test_each_concept_endpoint_answers_with_only_what_it_needs(running_app):
    cases = dict(api_calls.ANSWERED)
    # JSON has no NaN: the JS client sends a NaN as null, so it means the default too.
    cases["mae_reconstruct, a NaN ratio"] = ("/mae_reconstruct", [api_calls.file(api_calls.IMAGE), api_calls.NAN])
    # Named parameters: the JS client fills in each default the API documents itself.
    cases["mae_reconstruct, by name"] = ("/mae_reconstruct", {"image_path": api_calls.file(api_calls.IMAGE)})
    results = call_js(running_app.local_url, list(cases.values()))
    for name, result in zip(cases, results, strict=True):
        assert result["ok"], (name, result["error"])
        assert result["data"], name


def test_a_bad_value_is_refused_with_the_parameters_name(running_app):
    cases = api_calls.REFUSED
    results = call_js(running_app.local_url, [(endpoint, data) for endpoint, data, _ in cases.values()])
    for (name, (_, _, expected)), result in zip(cases.items(), results, strict=True):
        assert not result["ok"], (name, result)
        assert expected in result["error"] and api_calls.GENERIC not in result["error"], (name, result["error"])


CDN_CLIENT = "https://cdn.jsdelivr.net/npm/@gradio/client@2.7.0/dist/index.min.js"


@pytest.mark.browser
def test_the_readmes_web_page_example_runs_as_written(browser, running_app, tmp_path):
    """The README's web-page example on a course page in Chromium, as written but for the Space's address: the page
    and its picture (`cat.jpg`) served from this machine, the client's file from the CDN by the pinned npm package
    (the same file; the CDN cannot be reached from here)."""
    section = (ROOT / "README.md").read_text().split("## Call it from a web page", 1)[1].split("\n## ", 1)[0]
    (snippet,) = re.findall(r"```html\n(.*?)```", section, re.S)
    assert CDN_CLIENT in snippet, "the README and tests/js/package.json pin the same client"
    snippet = snippet.replace("https://OWNER-NAME.hf.space", running_app.local_url.rstrip("/"))
    (tmp_path / "course.html").write_text(f"<!doctype html><html><body>{snippet}</body></html>")
    shutil.copy(api_calls.IMAGE, tmp_path / "cat.jpg")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    page.route(CDN_CLIENT, lambda route: route.fulfill(path=JS / "node_modules/@gradio/client/dist/index.min.js",
                                                        content_type="text/javascript"))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            page.goto(f"http://127.0.0.1:{server.server_port}/course.html")
            page.wait_for_function("document.getElementById('summary').textContent !== ''", timeout=120_000)
            summary = page.locator("#summary").text_content()
            source = page.locator("#reconstruction").get_attribute("src")
        finally:
            page.close()
            server.shutdown()
    assert not errors, errors
    assert re.fullmatch(r"Error on the hidden patches: \d\.\d{4}", summary), summary
    assert "/gradio_api/file=" in source and source.endswith(".png"), source
