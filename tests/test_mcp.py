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


def _concept_call(tool, args: tuple, examples_url: str) -> tuple[str, dict]:
    """A concept's call of `tool` as an MCP call: its arguments by name, its files as URLs of `examples_url`."""
    def argument(value):
        if isinstance(value, str) and os.path.isfile(value):
            return f"{examples_url}/{Path(value).relative_to(examples.EXAMPLES_DIR).as_posix()}"
        return value
    names = list(tool.inputSchema["properties"])
    return tool.name, {name: argument(value) for name, value in zip(names, args, strict=False)}


def test_each_tool_answers_without_its_optional_arguments(tools, running_app, example_urls):
    """Only the file, and what a tool cannot guess (a block on the test replicas' 8x8 grid, a question); the rest
    left out, or null, takes its default. A tool without a call written here is called as its concept calls it
    (`Concept.calls`)."""
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
    calls = written + [_concept_call(tools[endpoint.removeprefix("/")], args, examples_url)
                       for concept in app.CONCEPTS for endpoint, args in concept.calls(0).items()
                       if endpoint.removeprefix("/") not in {n for n, _ in written}]
    assert {name for name, _ in calls} == CONCEPT_TOOLS
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


def _radio_app():
    """A bare gradio app whose one endpoint takes a radio of numbers."""
    import gradio as gr

    def double(levels: int) -> str:
        """Twice the levels.

        Args:
            levels: how many levels: 1, 2 or 4.
        """
        return str(2 * levels)

    with gr.Blocks() as demo:
        levels = gr.Radio([1, 2, 4], value=2, label="Levels")
        gr.Button().click(double, levels, gr.Textbox(), api_name="double")
    return demo


def _radio_schema_and_calls(demo) -> tuple[dict, list]:
    """The tool's schema of `levels`, and its answers to 4 and to "4", from the app's MCP server."""
    async def work(mcp):
        (tool,) = (await mcp.list_tools()).tools
        return tool.inputSchema["properties"]["levels"], [await mcp.call_tool("double", {"levels": value})
                                                          for value in (4, "4")]
    demo.launch(prevent_thread_lock=True, quiet=True, mcp_server=True)
    try:
        return _mcp(demo, work)
    finally:
        demo.close()


def test_gradio_declares_a_number_radio_text_so_mcp_refuses_every_value_without_the_workaround():
    """The upstream defect `api_inputs.typed_choices` works around: `gr.Radio.api_info` (gradio/components/radio.py;
    `gr.Dropdown.api_info` the same) declares "string" beside an enum of numbers. The MCP SDK checks a call against
    that schema: the number is not a string, the text not in the enum, so no call can reach the radio. When this
    test fails, gradio declares the choices' own type; drop the workaround."""
    import gradio as gr

    from demos.tabs import api_inputs

    assert gr.Radio([1, 2, 4]).api_info() == {"enum": [1, 2, 4], "title": "Radio", "type": "string"}
    assert gr.Dropdown([1, 2, 4]).api_info() == {"enum": [1, 2, 4], "type": "string"}
    schema, (number, text) = _radio_schema_and_calls(_radio_app())
    # (null too, where the app's own workaround of nullable arguments ran in this process: it patches gradio's class)
    assert schema["type"] in ("string", ["string", "null"]) and schema["enum"] in ([1, 2, 4], [1, 2, 4, None])
    assert number.isError and "is not of type 'string'" in number.content[0].text, number.content
    assert text.isError and "is not one of" in text.content[0].text, text.content

    schema, (number, text) = _radio_schema_and_calls(api_inputs.serve_every_client(_radio_app()))
    assert schema["type"] == ["integer", "null"] and schema["enum"] == [1, 2, 4, None]
    assert not number.isError and number.content[0].text == "8", number.content
    assert text.isError  # the schema asks for a number now: the SDK refuses the text, as for any number argument
