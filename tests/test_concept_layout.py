"""The layout rule of a concept page, checked when its tab is built (no browser): the result it is about (class
`widgets.RESULT`) is the widest picture the page shows on opening in an 800-pixel column.
tests/test_browser_embed.py measures the same on the drawn page."""

import gradio as gr
import pytest

import app
from demos.tabs import widgets
from demos.tabs.concept import Concept
from demos.tabs.widest_result import ResultNotWidest


def _toy(build_tab) -> Concept:
    return Concept("toy", "6.0 Patches and tokens", "patches-and-tokens", build_tab, "Pick a patch size",
                   endpoint="/toy", example_call=tuple, calls=lambda index: {"/toy": ()}, run_button="toy-run",
                   summary="toy-summary", example_summary="patches")


def _build(concept: Concept) -> None:
    with gr.Blocks():
        concept.build(endpoints=False)


@pytest.mark.parametrize("concept", app.CONCEPTS, ids=lambda concept: concept.tab_id)
def test_each_concepts_result_is_the_widest_picture_it_shows(concept):
    _build(concept)  # raises ResultNotWidest otherwise


def test_a_page_without_a_result_fails_when_built_naming_the_concept():
    def build_tab(endpoints=True):
        gr.Image(label="Patches")

    with pytest.raises(ResultNotWidest, match=r"6\.0 Patches and tokens: no block of class widgets\.RESULT"):
        _build(_toy(build_tab))


def test_a_picture_wider_than_the_result_fails_when_built_naming_both():
    def build_tab(endpoints=True):
        gr.Image(label="The picture, whole", elem_id="toy-input")  # the column's whole width
        with gr.Row():
            gr.Image(label="Tokens", elem_id="toy-tokens", elem_classes=[widgets.RESULT])  # half of it
            gr.Markdown("What the tokens are")

    with pytest.raises(ResultNotWidest) as refused:
        _build(_toy(build_tab))
    message = str(refused.value)
    assert message.startswith("6.0 Patches and tokens:"), message
    assert "'toy-tokens' is laid out 400 px wide" in message and "'toy-input' (800 px)" in message, message


def test_a_min_width_past_the_results_share_counts():
    def build_tab(endpoints=True):
        with gr.Row():
            gr.Image(label="Tokens", elem_id="toy-tokens", elem_classes=[widgets.RESULT], scale=2)
            gr.Image(label="Patches", elem_id="toy-patches", min_width=500)  # its scale would give it a third

    with pytest.raises(ResultNotWidest, match="'toy-tokens' is laid out 300 px wide, narrower than .*'toy-patches' "
                                              "\\(500 px\\)"):
        _build(_toy(build_tab))


def test_a_row_whose_minimum_widths_do_not_fit_wraps():
    def build_tab(endpoints=True):
        with gr.Row():
            gr.Image(label="Tokens", elem_id="toy-tokens", elem_classes=[widgets.RESULT], min_width=300)
            gr.Markdown("What the tokens are")  # shares the first line with the result
            gr.Image(label="Patches", elem_id="toy-patches", min_width=600)  # a line of its own, all of it

    with pytest.raises(ResultNotWidest, match="'toy-patches' \\(800 px\\)"):
        _build(_toy(build_tab))


def test_what_a_closed_fold_or_a_hidden_block_holds_is_not_drawn_on_opening():
    def build_tab(endpoints=True):
        with gr.Row():
            gr.Image(label="Tokens", elem_classes=[widgets.RESULT])
            gr.Markdown("What the tokens are")
        with gr.Accordion("More", open=False):
            gr.Image(label="Every patch")
        gr.Plot(visible=False)

    _build(_toy(build_tab))
