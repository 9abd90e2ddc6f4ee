"""The layout rule every concept page keeps: in a course page's 800-pixel column, the result it is about (blocks of
class `widgets.RESULT`) is the widest picture it shows when it opens (closed accordions and hidden blocks are not
drawn then).

`check` lays the blocks a tab built out as the browser's flex rows would at that width (each row shares its width by
`scale`, a row wraps where its children's `min_width` do not fit) and raises `ResultNotWidest`, naming the concept
and what to change, when no block is a result or a picture outside the results gets more width than the narrowest
result. tests/test_browser_embed.py measures the drawn page.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import gradio as gr
from gradio.blocks import Block

from demos.tabs import widgets

COLUMN_PX = 800  # a course page's column
SAME_PX = 0.5  # widths this close count as equal: a row's shares are fractions of a pixel
COLUMN_MIN_PX = 280  # app.py's CSS: a column keeps this much of its row's width (or all of it, where less)
# Blocks that may draw a picture, a video or a canvas (a BlockPicker is a gr.HTML, so every gr.HTML counts); an
# example's gallery (gr.Dataset) is not among them, as the browser check leaves galleries out. A gr.HTML that says
# `draws_pictures = False` of itself (a SweepPlayer's line of text) is not either.
DRAWN = (gr.Image, gr.Video, gr.Plot, gr.HTML, gr.ImageEditor, gr.AnnotatedImage, gr.Model3D, gr.LinePlot,
         gr.ScatterPlot, gr.BarPlot)


class ResultNotWidest(ValueError):
    """A concept page whose result is not the widest picture on it."""


def check(title: str, blocks: Iterable[Block]) -> None:
    """Raise `ResultNotWidest` unless some of `blocks` (what the concept `title`'s tab built) shown on opening are of
    class RESULT and no picture shown outside them is laid out wider than the narrowest of them, in an 800-pixel
    column."""
    widths: dict[Block, float] = {}
    for block in blocks:
        _lay_out(block, COLUMN_PX, widths)
    results = [block for block in widths if widgets.RESULT in _classes(block)]
    if not results:
        raise ResultNotWidest(f"{title}: no block of class widgets.RESULT shown on opening; mark the output the page "
                              f"is about with elem_classes=[widgets.RESULT] (demos/tabs/widgets.py), outside closed "
                              f"accordions")
    narrowest = min(results, key=widths.get)
    inside_results = {inner for result in results for inner in _descendants(result)}
    wider = [block for block in widths if isinstance(block, DRAWN) and getattr(block, "draws_pictures", True)
             and block not in results
             and block not in inside_results and widths[block] > widths[narrowest] + SAME_PX]
    if wider:
        named = ", ".join(f"{_name(block)} ({widths[block]:.0f} px)" for block in wider)
        raise ResultNotWidest(
            f"{title}: at {COLUMN_PX} px its result {_name(narrowest)} is laid out {widths[narrowest]:.0f} px wide, "
            f"narrower than {named}; the result must be the widest picture on the page: give it more of its row "
            f"(scale, min_width) or give the other picture less (share its row, a smaller scale)")


def _lay_out(block: Block, width: float, widths: dict[Block, float]) -> None:
    """`widths` gets `block` and what it shows on opening, each with the width it is laid out at."""
    if not _shown(block):
        return
    widths[block] = width
    children = [child for child in getattr(block, "children", []) if _shown(child)]
    child_widths = _row_widths(children, width) if isinstance(block, gr.Row) else [width] * len(children)
    for child, child_width in zip(children, child_widths, strict=True):
        _lay_out(child, child_width, widths)


def _row_widths(children: list[Block], width: float) -> list[float]:
    """The widths a wrapping flex row of `width` px gives its children: lines filled while their minimum widths fit,
    each line shared by scale, a child never below its minimum."""
    widths: list[float] = []
    line: list[Block] = []
    for child in children:
        if line and sum(_min_width(other, width) for other in [*line, child]) > width:
            widths += _line_widths(line, width)
            line = []
        line.append(child)
    return widths + _line_widths(line, width) if line else widths


def _line_widths(line: list[Block], width: float) -> list[float]:
    fixed: dict[int, float] = {}  # children held at their minimum
    while True:
        free = width - sum(fixed.values())
        scales = sum(_scale(child) for index, child in enumerate(line) if index not in fixed)
        if scales <= 0:  # scale=0 everywhere: nothing grows past its minimum
            return [_min_width(child, width) for child in line]
        shares = {index: free * _scale(child) / scales for index, child in enumerate(line) if index not in fixed}
        below = {index: _min_width(line[index], width) for index, share in shares.items()
                 if share < _min_width(line[index], width)}
        if not below or len(fixed) + len(below) == len(line):
            return [fixed.get(index, shares.get(index, 0.0)) for index in range(len(line))]
        fixed.update(below)


def _shown(block: Block) -> bool:
    return getattr(block, "visible", True) is not False and not (isinstance(block, gr.Accordion) and not block.open)


def _min_width(block: Block, row_width: float) -> float:
    if isinstance(block, gr.Column):
        return min(COLUMN_MIN_PX, row_width)
    return min(getattr(block, "min_width", None) or 0, row_width)


def _scale(block: Block) -> float:
    scale = getattr(block, "scale", None)
    return 1 if scale is None else scale


def _classes(block: Block) -> list[str]:
    classes = getattr(block, "elem_classes", None) or []
    return [classes] if isinstance(classes, str) else list(classes)


def _descendants(block: Block) -> Iterator[Block]:
    for child in getattr(block, "children", []):
        yield child
        yield from _descendants(child)


def _name(block: Block) -> str:
    what = getattr(block, "elem_id", None) or getattr(block, "label", None) or "unnamed"
    return f"{type(block).__name__} '{what}'"
