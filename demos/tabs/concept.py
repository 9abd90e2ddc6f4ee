"""What a concept of the chapter is to the app: its tab on `/`, its own page, and the facts about them that scripts
and tests rely on. Each concept's tab module defines its `CONCEPT`; app.py lists them in tab order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gradio.context import Context

from demos.tabs import widest_result
from demos.tabs.ready_examples import ReadyExample


@dataclass(frozen=True)
class Concept:
    tab_id: str
    title: str  # its tab's label and its page's title
    path: str  # its own page: /<path>
    build_tab: Callable[..., ReadyExample]  # lays out its tab and wires it, returns the example it opens with
    call_to_action: str  # the line its tab leads with
    endpoint: str  # its main action's api_name, e.g. "/mae_reconstruct"
    example_call: Callable[[], tuple]  # arguments of a call to `endpoint` on its page's example (files as paths)
    # Every documented endpoint its tab owns, `endpoint` first, each with the arguments of a call on bundled example
    # i (`demos.examples.image(i)` or `video(i)`; files as paths): light enough for a CPU Space, its blocks and tubes
    # inside any grid the Space may serve (8x8 patches for the tiny replicas). What `checks.deployed` calls, and the
    # tests' clients where no call of an endpoint is written.
    calls: Callable[[int], dict[str, tuple]]
    run_button: str  # elem_id of the button that runs `endpoint`
    summary: str  # elem_id of the text that describes its result
    example_summary: str  # words in `summary` once the example's result is in place
    pictures: int = 0  # output pictures its page shows with a result
    prepare: str | None = None  # its undocumented endpoint that warms the cache for the next click, if any

    def __post_init__(self):
        if self.endpoints[:1] != (self.endpoint,):
            raise ValueError(f"{self.title}: its calls must name its main endpoint {self.endpoint} first, not "
                             f"{self.endpoints}")

    @property
    def endpoints(self) -> tuple[str, ...]:
        """Every documented endpoint its tab owns, `endpoint` first."""
        return tuple(self.calls(0))

    def build(self, endpoints: bool = True) -> ReadyExample:
        """Build its tab where gradio is building (its endpoints named when `endpoints`); the example it opens with.
        Raises `widest_result.ResultNotWidest` when its result is not the widest picture on the page."""
        parent = Context.block
        first = len(parent.children) if parent is not None else 0
        ready = self.build_tab(endpoints=endpoints)
        if parent is not None:  # outside a gr.Blocks gradio keeps no tree to check
            widest_result.check(self.title, parent.children[first:])
        return ready
