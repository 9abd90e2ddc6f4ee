"""gradio's MCP server, with each output of a tool as its own result item.

gradio 6.31 (`gradio/mcp.py`, `GradioMCPServer._execute_tool_without_progress`) returns `[job.result()]`. For an
endpoint with several outputs `job.result()` is already the tuple of them, so a client that asks for no
progress notifications gets one text item holding every output (its pictures as dicts of file paths), while a
client that asks for progress gets each output apart, pictures as images. With `keep_outputs_apart()` both get
each output apart. `tests/test_mcp.py` shows the defect on gradio's own method: when that test fails, gradio has
fixed it and this module can go.
"""

import functools

from gradio.mcp import GradioMCPServer

UPSTREAM_EXECUTE = GradioMCPServer._execute_tool_without_progress


def keep_outputs_apart() -> None:
    """Make gradio's MCP server return a multi-output tool's outputs as a list, as its progress path does."""
    if getattr(GradioMCPServer._execute_tool_without_progress, "keeps_outputs_apart", False):
        return

    @functools.wraps(UPSTREAM_EXECUTE)
    async def execute_tool(self, job) -> list:
        (result,) = await UPSTREAM_EXECUTE(self, job)
        return list(result) if isinstance(result, tuple) else [result]

    execute_tool.keeps_outputs_apart = True
    GradioMCPServer._execute_tool_without_progress = execute_tool
