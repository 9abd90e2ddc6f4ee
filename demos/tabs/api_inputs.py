"""What a named endpoint takes from any client: null means the parameter's default, and a value it cannot take is
refused with a sentence that names the parameter.

Clients differ. The Python `gradio_client` and gradio's MCP server fill each parameter left out with the default the
API page documents (the component's initial value); the JS client `@gradio/client`, called with a list, sends the
items given and no more, sends null where a script passes null or NaN, and plain HTTP sends whatever it is given.
gradio preprocesses null as a value (`gr.Slider` compares it with its minimum and raises a TypeError), and whatever
a component's preprocessing raises other than `gr.Error` reaches the caller as "An error occurred".

`serve_every_client(demo)` puts one check in front of gradio's preprocessing, for every named endpoint (its page's
events included, whose values are good already):
- an item left out at the end of the list is null, and null is the parameter's documented default;
- a null file where the action needs one (`actions.action` with a name), a number that is not a finite number or
  lies outside its control's range, a choice not among the choices, text that is not text, a file that is not a
  file's description: each a `gr.Error` naming the parameter (its API name and its label) and what it takes.
A file that cannot be read is explained by the component itself (`widgets.ImageInput`, `widgets.VideoInput`); its
message is given the parameter's name here.

A radio or dropdown whose choices are numbers is declared text in gradio's API info (`gr.Radio.api_info`,
`gr.Dropdown.api_info`: `"type": "string"` beside an enum of numbers, a schema no value meets): the MCP SDK then
refuses the number and the text alike, and the API page asks for text the radio refuses. `typed_choices` declares
such choices as what they are (integer or number), for the API page, gradio_client and MCP.

gradio's MCP server fills in the arguments a tool call leaves out, but the MCP SDK checks a call against the tool's
input schema first, and gradio's schema (`GradioMCPServer.get_input_schema`) admits no null: there every argument
with a default also admits null (`nullable_tool_arguments`). A value of the wrong JSON type is refused by the SDK,
with its own message ("Input validation error: 'six' is not of type 'number'"), before the app sees it.
"""

from __future__ import annotations

import json
import math
import types
from dataclasses import dataclass
from typing import Any

import gradio as gr
import pydantic
from gradio.exceptions import InvalidPathError
from gradio.mcp import GradioMCPServer

NUMBERS = (gr.Slider, gr.Number)
CHOICES = (gr.Radio, gr.Dropdown)
TEXTS = (gr.Textbox,)
FILES = (gr.Image, gr.Video)

# What a script sends for a file: an upload's path (POST /gradio_api/upload) or an http(s) URL, as gradio's FileData.
FILE_FORM = ('a file: {"path": <its path from POST /gradio_api/upload, or an http(s) URL>, '
             '"meta": {"_type": "gradio.FileData"}}')
NO_FILE = {
    gr.Image: "No image given for {who}: upload an image, take a photo with the webcam, or pick an example; "
              "a script sends an image file or its http(s) URL.",
    gr.Video: "No video given for {who}: upload a clip, record one with the webcam, or pick an example; "
              "a script sends a video file or its http(s) URL.",
}


@dataclass(frozen=True)
class Parameter:
    name: str  # its name in the API (gradio_client's keyword, the MCP tool's argument)
    default: Any  # the value the API page documents, the component's initial value (None: no default)


def serve_every_client(demo: gr.Blocks) -> gr.Blocks:
    """Check and complete every named endpoint's inputs before gradio preprocesses them (see the module's doc)."""
    upstream = demo.preprocess_data
    if getattr(upstream, "serves_every_client", False):
        return demo
    parameters: dict[str, list[Parameter]] = {}

    def parameters_of(block_fn) -> list[Parameter] | None:
        """The endpoint's parameters as the API lists them; None for an event that is no endpoint (a private one)."""
        if block_fn.api_name not in parameters:
            endpoints = demo.get_api_info(all_endpoints=True)["named_endpoints"]
            info = endpoints.get(f"/{block_fn.api_name}")
            parameters[block_fn.api_name] = info and [Parameter(p["parameter_name"], p["parameter_default"])
                                                      for p in info["parameters"]]
        return parameters[block_fn.api_name]

    async def preprocess_data(block_fn, inputs, state, explicit_call=False):
        # gradio names every event (`api_name=False` becomes a private "false_3"); the page's own events pass as they are.
        if block_fn.api_visibility == "private" or block_fn.batch or not parameters_of(block_fn):
            return await upstream(block_fn, inputs, state, explicit_call)
        named = _named_inputs(block_fn, parameters_of(block_fn))
        inputs = complete(block_fn, named, list(inputs), state)
        try:
            return await upstream(block_fn, inputs, state, explicit_call)
        except gr.Error as error:
            raise _with_name(error, named, state) from error
        except pydantic.ValidationError as error:  # a file's description gradio could not read
            raise gr.Error(f"{_files(named)} must be {FILE_FORM}.") from error
        except InvalidPathError as error:  # a path on the server that no one uploaded
            raise gr.Error(f"{_files(named)} must be a file uploaded to this app (POST /gradio_api/upload gives its "
                           "path) or an http(s) URL.") from error

    preprocess_data.serves_every_client = True
    demo.preprocess_data = preprocess_data
    for block in demo.blocks.values():
        if isinstance(block, CHOICES):
            typed_choices(block)
    nullable_tool_arguments()
    return demo


def json_type(values: list) -> str | list[str]:
    """The JSON type of a list of choices: "integer", "number", "string" or "boolean", or a list of them when mixed."""
    def one(value) -> str:
        if isinstance(value, bool):
            return "boolean"
        if isinstance(value, int):
            return "integer"
        return "number" if isinstance(value, float) else "string"
    kinds = {one(value) for value in values}
    if kinds == {"integer", "number"}:
        return "number"
    return kinds.pop() if len(kinds) == 1 else sorted(kinds)


def typed_choices(block) -> None:
    """Let a radio's or dropdown's API info declare its choices' own JSON type where gradio says "string"."""
    upstream = block.api_info
    if getattr(upstream, "typed", False):
        return

    def api_info(self) -> dict[str, Any]:
        info = upstream()
        values = [value for _, value in self.choices]
        typed = info.get("items", info)  # a multiselect dropdown's choices are its items
        if values and typed.get("type") == "string":
            typed["type"] = json_type(values)
        return info

    api_info.typed = True
    block.api_info = types.MethodType(api_info, block)


UPSTREAM_INPUT_SCHEMA = GradioMCPServer.get_input_schema


def nullable_tool_arguments() -> None:
    """Let each MCP tool's optional arguments (those with a default) be null in its input schema."""
    if getattr(GradioMCPServer.get_input_schema, "nullable", False):
        return

    def get_input_schema(self, tool_name: str, parameters: dict[str, str] | None = None):
        schema, file_positions = UPSTREAM_INPUT_SCHEMA(self, tool_name, parameters)
        for name, prop in schema.get("properties", {}).items():
            if name in schema.get("required", ()):
                continue
            if isinstance(prop.get("type"), str):
                prop["type"] = [prop["type"], "null"]
            elif isinstance(prop.get("type"), list) and "null" not in prop["type"]:  # choices of mixed types
                prop["type"] = [*prop["type"], "null"]
            if isinstance(prop.get("enum"), list) and None not in prop["enum"]:
                prop["enum"] = [*prop["enum"], None]
        return schema, file_positions

    get_input_schema.nullable = True
    GradioMCPServer.get_input_schema = get_input_schema


def _named_inputs(block_fn, parameters: list[Parameter]) -> dict[int, tuple[Any, Parameter]]:
    """Input index -> (its component, its API parameter), in the order the API lists them."""
    documented = [(i, block) for i, block in enumerate(block_fn.inputs) if not block.skip_api]
    return {i: (block, parameter) for (i, block), parameter in zip(documented, parameters, strict=False)}


def complete(block_fn, named: dict[int, tuple[Any, Parameter]], inputs: list, state) -> list:
    """The inputs with null (or left out) as each parameter's default; a gr.Error for a value it cannot take."""
    inputs = inputs + [None] * (len(block_fn.inputs) - len(inputs))
    needs_files = getattr(block_fn.fn, "files_needed", False)
    for i, (block, parameter) in named.items():
        if block.stateful or i in block_fn.component_prop_inputs:
            continue
        if state is not None and block._id in state:
            block = state[block._id]  # the page may have changed a control's range
        value = inputs[i]
        if value is None:
            if isinstance(block, FILES):
                if needs_files:
                    kind = next(kind for kind in NO_FILE if isinstance(block, kind))
                    raise gr.Error(NO_FILE[kind].format(who=_who(block, parameter)))
                continue
            if parameter.default is None:
                raise gr.Error(f"{_who(block, parameter)} is needed: {_takes(block)}.")
            value = inputs[i] = parameter.default
        problem = _problem(block, value)
        if problem:
            raise gr.Error(f"{_who(block, parameter)} {problem}")
    return inputs


def _who(block, parameter: Parameter) -> str:
    label = getattr(block, "label", None)
    same = not label or label.lower().replace(" ", "_") == parameter.name
    return parameter.name if same else f'{parameter.name} ("{label}")'


def _takes(block) -> str:
    """What a control takes, in words: 'a number from 0 to 0.95', 'one of "auto", "shared"'."""
    if isinstance(block, NUMBERS):
        kind = "a whole number" if block.precision == 0 else "a number"
        low, high = block.minimum, block.maximum
        if low is not None and high is not None:
            return f"{kind} from {low:.10g} to {high:.10g}"
        if low is not None:
            return f"{kind}, {low:.10g} or more"
        return f"{kind}, {high:.10g} or less" if high is not None else kind
    if isinstance(block, CHOICES):
        return "one of " + ", ".join(json.dumps(value, ensure_ascii=False) for _, value in block.choices)
    if isinstance(block, TEXTS):
        return "text"
    if isinstance(block, FILES):
        return FILE_FORM
    return "a value"


def _problem(block, value) -> str | None:
    """What is wrong with `value` for `block`, as the end of a sentence that starts with the parameter; None if nothing."""
    if isinstance(block, NUMBERS):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"must be {_takes(block)}, not {value!r}."
        if not math.isfinite(value):
            return f"must be a finite number ({_takes(block)}), not {value!r}."
        if (block.minimum is not None and value < block.minimum) or (block.maximum is not None and value > block.maximum):
            return f"must be {_takes(block)}; got {value:.10g}."
        return None
    if isinstance(block, CHOICES):
        if not getattr(block, "multiselect", False) and value not in [choice for _, choice in block.choices]:
            return f"must be {_takes(block)}, not {value!r}."
        return None
    if isinstance(block, TEXTS):
        return None if isinstance(value, str) else f"must be text, not {value!r}."
    if isinstance(block, FILES):
        fine = isinstance(value, dict) and any(isinstance(value.get(key), str) for key in ("path", "url"))
        return None if fine else f"must be {FILE_FORM}, not {_short(value)}."
    return None


def _files(named: dict[int, tuple[Any, Parameter]]) -> str:
    """The endpoint's file parameters, for a refusal gradio raised without saying which."""
    return " or ".join(_who(block, parameter) for block, parameter in named.values() if isinstance(block, FILES)) or "A file"


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _with_name(error: gr.Error, named: dict[int, tuple[Any, Parameter]], state) -> gr.Error:
    """A component's own refusal (`widgets.ImageInput`, `widgets.VideoInput` set `input_component`), with the
    parameter's name in front."""
    component = getattr(error, "input_component", None)
    for block, parameter in named.values():
        if component is not None and component in (block, state.get(block._id, block) if state is not None else block):
            return gr.Error(f"{_who(block, parameter)}: {error.message}")
    return error
