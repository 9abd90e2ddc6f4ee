"""Predict, Don't Reconstruct: the interactive companion to the chapter on self-supervised learning.

Builds the pages and launches them: at `/` a header and one tab per concept; at `/<concept>` (e.g.
`/tube-masking`) that concept alone, for a course page to embed in an iframe. Every page opens with
its example's result in place. Everything else lives in `demos/` (per concept: `demos/compute/` and
`demos/tabs/`) and `checkpoints.py` (which models, how they load).

    python app.py                 # http://127.0.0.1:7860
    python app.py --offline-demo  # tiny random-weight models, for trying the UI without the Hub
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
from pathlib import Path

import gradio as gr

import checkpoints  # first of ours: through `demos.zerogpu`, on ZeroGPU it imports `spaces` before anything touches CUDA
from demos import startup, uploads, zerogpu
from demos.tabs import api_inputs, mcp_results, theme, widgets

TITLE = "Predict, Don't Reconstruct"
# Off ZeroGPU the models' events run one at a time (two at once only thrash a 2-vCPU Space), and the queue turns
# away what minutes of such work could not answer. On ZeroGPU each GPU call has a worker of its own, scheduled by
# ZeroGPU, and the Space's CPU work runs one computation at a time in its own thread (`gpu_functions.gpu_task`): the
# events run side by side, and the queue holds a lecture hall (100 learners, each with a page, a pick, a click and
# a prepare waiting at once).
QUEUE_MAX_SIZE = 32
ZEROGPU_QUEUE_MAX_SIZE = 400
ZEROGPU_CONCURRENCY = 16

# The concepts' tab modules (demos/tabs), in tab order, each with its `CONCEPT`: a new concept is its compute module,
# its tab module and its name here.
CONCEPT_TABS = ("mae", "mae_vs_jepa", "tubes", "heads")
CONCEPTS = tuple(importlib.import_module(f"demos.tabs.{name}").CONCEPT for name in CONCEPT_TABS)


def _first_idea(concept) -> str:
    """How the header names the first tab's concept: "6.1 Masked autoencoder" is "the masked autoencoder"."""
    name = concept.title.split(" ", 1)[1]  # without its section number
    return f"the {name[0].lower()}{name[1:]}"


HEADER = f"""
# {TITLE}
Why predict in **embedding space** (JEPA) instead of reconstructing **pixels** (MAE)? Each tab is one
idea of the chapter, run on the real research checkpoints. Start with {_first_idea(CONCEPTS[0])}.
"""

# Embedded in an iframe 800 px wide or on a 390 px phone, nothing may push the page sideways: rows wrap,
# columns may shrink below gradio's default minimum, pictures, plots and wide tables scale or scroll inside.
# gradio copies each rule and prefixes it with its container's classes, but keeps only the prefixed copy of a
# rule inside @media: there, selectors name no .gradio-container and list no alternatives inside :is().
CSS = """
.gradio-container { max-width: 100% !important; }
.gradio-container .row { flex-wrap: wrap; }
.gradio-container .column { min-width: min(100%, 280px) !important; }
.gradio-container img, .gradio-container video, .gradio-container canvas, .gradio-container svg {
    max-width: 100%; }
.gradio-container .prose table { display: block; max-width: 100%; overflow-x: auto; }
.gradio-container .prose th, .gradio-container .prose td { word-break: normal; overflow-wrap: normal; }
.gradio-container .prose pre, .gradio-container .prose code { white-space: pre-wrap; overflow-wrap: anywhere; }
@media (max-width: 480px) { .prose th, .prose td { padding: 0.3em 0.45em; } }
/* In a course page's 800-pixel column or on a phone, the result a concept is about (class "result") fills its
   box's width, its picture scaled up to fit (at most 480 px tall): the widest thing on the page. */
@media (max-width: 900px) {
    .result, .claim { height: auto !important; }
    .result .image-container, .result .image-frame, .result .image-container > button,
    .claim .image-container, .claim .image-frame, .claim .image-container > button { width: 100%; height: auto; }
    .result img, .result video, .claim img, .claim video {
        width: 100%; height: auto; max-height: 480px; object-fit: contain; }
}
/* A probe's labels as a claim: the top label a heading of normal size, the ranked list in the body's font. */
.claim .output-class { padding: var(--size-2) var(--size-3); font-size: var(--text-lg); justify-content: flex-start; }
.claim .confidence-set { font-family: var(--font); font-size: var(--text-sm); margin-bottom: var(--size-1); }
.call-to-action h2 { margin: 0.2em 0; border-left: 4px solid var(--color-accent); padding-left: 0.6em;
    font-size: var(--text-lg); }
/* For screen readers only: a concept page's title (the course page around it shows its own). */
.visually-hidden { position: absolute !important; width: 1px; height: 1px; overflow: hidden; clip-path: inset(50%);
    white-space: nowrap; }
/* The navbar would only link "Home" (concept pages are left out of it); gr.Navbar(visible=False) does not
   hide it in gradio 6.31 (gradio-app/gradio#12532). */
.nav-holder { display: none !important; }
"""
HEAD_DIR = Path(__file__).parent / "demos" / "tabs" / "head"  # scripts every page runs
LAUNCH_OPTIONS = {
    "css": CSS + theme.CSS,  # gradio 6 takes page styling at launch(), not in gr.Blocks()
    "theme": theme.THEME,
    "head_paths": [HEAD_DIR / "embed_height.html",  # tells an iframe's host how tall the content is
                   HEAD_DIR / "example_names.html"],  # names for gradio's nameless example buttons
    "mcp_server": True,  # every documented endpoint is also an MCP tool, at /gradio_api/mcp (README: "Use from an assistant")
    # An upload over the limit is refused while it arrives (gradio's multipart parser stops and deletes the part),
    # so it never fills the disk.
    "max_file_size": uploads.MAX_UPLOAD_BYTES,
}


def _banner() -> None:
    if checkpoints.offline_demo_enabled():
        gr.Markdown(widgets.OFFLINE_DEMO_BANNER, elem_id="offline-demo-banner")


def build_app() -> gr.Blocks:
    """`/`: the header and one tab per concept (they own the named endpoints); `/<concept.path>`: one concept."""
    mcp_results.keep_outputs_apart()  # gradio 6.31's MCP server would merge a tool's outputs into one text
    # Every upload and result file gradio writes is deleted once no page can still ask for it: the disk a Space
    # uses stays bounded however long it serves.
    with gr.Blocks(title=TITLE, delete_cache=(uploads.FILES_SWEEP_S, uploads.FILES_KEPT_S)) as demo:
        gr.Markdown(HEADER)
        _banner()
        with gr.Tabs():
            for index, concept in enumerate(CONCEPTS):
                with gr.Tab(concept.title, id=concept.tab_id) as tab:
                    # The open tab shows its example on load; the others when first selected, not all at once.
                    concept.build().show_on([demo.load] if index == 0 else [tab.select])
    for concept in CONCEPTS:
        with demo.route(concept.title, concept.path, show_in_navbar=False):
            gr.Markdown(f"# {concept.title}: {TITLE}", elem_classes=["visually-hidden"])
            _banner()
            concept.build(endpoints=False).show_on([demo.load], from_address=True)
    if zerogpu.ON_ZERO_GPU:
        demo.queue(max_size=ZEROGPU_QUEUE_MAX_SIZE, default_concurrency_limit=ZEROGPU_CONCURRENCY)
    else:
        demo.queue(max_size=QUEUE_MAX_SIZE, default_concurrency_limit=1)
    # Any client, not only gradio_client: null (or an item left out) is a parameter's default, a bad value is refused
    # with a sentence naming the parameter.
    return api_inputs.serve_every_client(demo)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=TITLE)
    parser.add_argument("--offline-demo", action="store_true",
                        default=os.environ.get(checkpoints.ENV_OFFLINE_DEMO) == "1",
                        help="run on tiny random-weight models (outputs are meaningless); also PDR_OFFLINE_DEMO=1")
    parser.add_argument("--host", default=None, help="default: GRADIO_SERVER_NAME or 127.0.0.1")
    parser.add_argument("--port", type=int, default=None, help="default: GRADIO_SERVER_PORT or 7860")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.offline_demo:
        where = checkpoints.enable_offline_demo()
        logging.getLogger(__name__).warning("Offline demo mode: tiny random-weight models in %s", where)
    if zerogpu.ON_ZERO_GPU:  # every model resident before launch(); see demos.startup
        startup.preload_all()
    build_app().launch(server_name=args.host, server_port=args.port, **LAUNCH_OPTIONS)


if __name__ == "__main__":
    main()
