"""The app as an assistant sees it: gradio's MCP server, through the `mcp` client (streamable HTTP).

One tool per concept endpoint, none for the page's prepare or private events; each described well enough to
use without the page; images in as http(s) URLs, images and numbers out.
"""

import ast
import asyncio
import concurrent.futures
import functools
import http.server
import os
import threading
from pathlib import Path

import pytest
from gradio import processing_utils
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client

import app
from demos import examples

# One tool per documented endpoint, as app.py's CONCEPTS name them.
CONCEPT_TOOLS = {endpoint.removeprefix("/") for concept in app.CONCEPTS for endpoint in concept.endpoints}


def _run(coroutine):
    """asyncio.run in a thread of its own: Playwright's sync API (the browser tests) keeps a loop in this one."""
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, coroutine).result()


def _mcp(running_app, work):
    """Run `work(session)` in an MCP session with the running app's server; return what it returns."""
    async def session():
        async with streamablehttp_client(f"{running_app.local_url}gradio_api/mcp/") as (read, write, _):
            async with ClientSession(read, write) as mcp:
                await mcp.initialize()
                return await work(mcp)
    return _run(session())


@pytest.fixture(scope="module")
def tools(running_app) -> dict:
    async def list_tools(mcp):
        return {tool.name: tool for tool in (await mcp.list_tools()).tools}
    return _mcp(running_app, list_tools)


def test_one_tool_per_concept_endpoint_and_none_for_prepares(tools, client):
    assert set(tools) == CONCEPT_TOOLS
    # The prepares stay callable by scripts, by name: they are only not tools (nor on the API page).
    assert client.predict(None, 0.0, 8, 4, 0, api_name="/tube_prepare") == {}
    assert client.predict(None, 0.0, "auto", api_name="/prepare_clip") == {}


@pytest.mark.parametrize("name", sorted(CONCEPT_TOOLS))
def test_each_tool_says_what_it_shows_takes_and_returns(tools, name):
    tool = tools[name]
    assert len(tool.description) > 300 and "Returns:" in tool.description, tool.description
    for parameter, schema in tool.inputSchema["properties"].items():
        assert len(schema.get("description", "")) > 20, (name, parameter)  # its unit and range, in words
        if schema.get("title") in ("ImageData", "FileData"):
            assert "http(s) URL" in schema["description"] and "url" in schema["format"], (name, parameter)


@pytest.fixture
def example_urls(monkeypatch):
    """http(s) URLs of the bundled examples, served by this test's own server: (image URL, video URL)."""
    # gradio fetches input URLs only from public hosts (and Hugging Face's): let it reach this test's own server.
    monkeypatch.setattr(processing_utils, "PUBLIC_HOSTNAME_WHITELIST",
                        [*processing_utils.PUBLIC_HOSTNAME_WHITELIST, "127.0.0.1"])
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(examples.EXAMPLES_DIR))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        root = f"http://127.0.0.1:{server.server_port}"
        yield f"{root}/images/chelsea.jpg", f"{root}/videos/ball_behind_wall.mp4"
        server.shutdown()


def test_the_masked_autoencoder_tool_on_an_image_url(running_app, example_urls):
    """A client passes an image by URL and gets the pictures (as images) and the numbers back."""
    image, _ = example_urls

    async def reconstruct(mcp):
        return await mcp.call_tool("mae_reconstruct", {"image_path": image, "mask_ratio": 0.75, "mask_seed": 0,
                                                       "checkpoint": "vit-mae-base"})
    result = _mcp(running_app, reconstruct)

    assert not result.isError, result.content
    images = [item for item in result.content if item.type == "image"]
    texts = [item.text for item in result.content if item.type == "text"]

    assert len(images) == 5 and all(image.mimeType == "image/png" for image in images)
    assert any("147 of 196 patches hidden" in text for text in texts)
    numbers = ast.literal_eval(texts[-1])  # a JSON output arrives as its Python text
    assert numbers["num_hidden"] == 147 and numbers["grid"] == [14, 14]


def test_gradio_merges_a_tools_outputs_without_the_workaround():
    """The upstream defect `demos.tabs.mcp_results` works around: a two-output job comes back as one item."""
    from demos.tabs import mcp_results

    class TwoOutputJob:
        def result(self):
            return ("a picture", {"a": 1})

    upstream = _run(mcp_results.UPSTREAM_EXECUTE(None, TwoOutputJob()))
    assert upstream == [("a picture", {"a": 1})]  # one item; when gradio returns two, drop the workaround
    mcp_results.keep_outputs_apart()
    from gradio.mcp import GradioMCPServer
    assert _run(GradioMCPServer._execute_tool_without_progress(None, TwoOutputJob())) == ["a picture", {"a": 1}]


def _calls(running_app, calls: list[tuple[str, dict]]) -> list:
    async def work(mcp):
        return [await mcp.call_tool(name, arguments) for name, arguments in calls]
    return _mcp(running_app, work)


def _example_call(concept, tool, examples_url: str) -> tuple[str, dict]:
    """The concept's example call as an MCP call: its arguments by name, its files as URLs of `examples_url`."""
    def argument(value):
        if isinstance(value, str) and os.path.isfile(value):
            return f"{examples_url}/{Path(value).relative_to(examples.EXAMPLES_DIR).as_posix()}"
        return value
    names = list(tool.inputSchema["properties"])
    return tool.name, {name: argument(value) for name, value in zip(names, concept.example_call(), strict=True)}


def test_each_tool_answers_without_its_optional_arguments(tools, running_app, example_urls):
    """Only the file, and what a tool cannot guess (a block on the test replicas' 8x8 grid, a question); the rest
    left out, or null, takes its default. A concept's main tool without a call written here is called on its
    example."""
    image, video = example_urls
    written = [("mae_reconstruct", {"image_path": image}),
             ("mae_reconstruct", {"image_path": image, "mask_ratio": None, "checkpoint": None}),
             ("compare_pixels_embeddings", {"image_path": image, "top": 2, "left": 2, "height": 2, "width": 2}),
             ("noise_sweep", {"image_path": image, "top": 2, "left": 2, "height": 2, "width": 2, "noise": "jpeg"}),
             ("tube_preview", {"video": video}),
             ("tube_predict", {"video": video}),
             ("classify_action", {"video": video}),
             ("answer_question", {"video": video, "question": "What happens?"})]
    examples_url = image.removesuffix("/images/chelsea.jpg")
    calls = written + [_example_call(concept, tools[concept.endpoint.removeprefix("/")], examples_url)
                       for concept in app.CONCEPTS if concept.endpoint.removeprefix("/") not in {n for n, _ in written}]
    uncalled = CONCEPT_TOOLS - {name for name, _ in calls}
    assert not uncalled, f"add a call of {sorted(uncalled)} with only the arguments it needs to this test"
    for (name, arguments), result in zip(calls, _calls(running_app, calls), strict=True):
        assert not result.isError, (name, arguments, result.content)
        assert result.content, name


def test_a_bad_argument_is_refused_with_its_name(running_app, example_urls):
    image, video = example_urls
    calls = [("mae_reconstruct", {"image_path": image, "mask_ratio": 2}, "mask_ratio must be a number from 0 to 0.95"),
             ("classify_action", {"video": video, "sampling": None, "start_s": -1}, 'start_s ("Start (s)") must be'),
             ("tube_predict", {"video": image}, "video: This file is a still image")]
    results = _calls(running_app, [(name, arguments) for name, arguments, _ in calls])
    for (name, _, expected), result in zip(calls, results, strict=True):
        text = " ".join(item.text for item in result.content if item.type == "text")
        assert result.isError and expected in text, (name, text)


def test_optional_arguments_admit_null_in_each_tools_schema(tools, running_app):
    """The MCP SDK checks a call against the tool's schema before gradio sees it: null must pass there to mean the
    default. A value of another JSON type is the SDK's to refuse (its message quotes the value, not the argument).
    gradio's own schema admits no null (the defect `api_inputs.nullable_tool_arguments` works around)."""
    from demos.tabs import api_inputs

    upstream, _ = api_inputs.UPSTREAM_INPUT_SCHEMA(running_app.mcp_server_obj, "mae_reconstruct")
    assert upstream["properties"]["mask_ratio"]["type"] == "number" and "required" not in upstream
    for name, tool in tools.items():
        for parameter, schema in tool.inputSchema["properties"].items():
            assert "null" in schema["type"], (name, parameter, schema)
            assert None in schema.get("enum", [None]), (name, parameter, schema)
