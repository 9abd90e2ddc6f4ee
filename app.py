"""Predict, Don't Reconstruct: the interactive companion to the chapter on self-supervised learning.

Builds the page (a header and one tab per concept) and launches it. Everything else lives in
`demos/` (per concept: `demos/compute/` and `demos/tabs/`) and `checkpoints.py` (which models, how they load).

    python app.py                 # http://127.0.0.1:7860
    python app.py --offline-demo  # tiny random-weight models, for trying the UI without the Hub
"""

from __future__ import annotations

import argparse
import logging
import os

import gradio as gr

import checkpoints  # first of ours: on ZeroGPU it imports `spaces` before anything can touch CUDA
from demos.tabs import common, heads, mae, mae_vs_jepa, tubes

TITLE = "Predict, Don't Reconstruct"
QUEUE_MAX_SIZE = 32  # waiting requests beyond this are turned away instead of piling up on 2 vCPUs

HEADER = f"""
# {TITLE}
Why predict in **embedding space** (JEPA) instead of reconstructing **pixels** (MAE)? Each tab is one
idea of the chapter, run on the real research checkpoints. Start with the masked autoencoder.
"""


def build_app() -> gr.Blocks:
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(HEADER)
        if checkpoints.offline_demo_enabled():
            gr.Markdown(common.OFFLINE_DEMO_BANNER, elem_id="offline-demo-banner")
        with gr.Tabs():
            with gr.Tab("6.1 Masked autoencoder", id="mae"):
                mae.build_tab()
            with gr.Tab("6.2-6.3 Pixels vs embeddings", id="mae-vs-jepa"):
                mae_vs_jepa.build_tab()
            with gr.Tab("6.4 Tube masking", id="tubes"):
                tubes.build_tab()
            with gr.Tab("6.5 One encoder, many tasks", id="heads"):
                heads.build_tab()
    demo.queue(max_size=QUEUE_MAX_SIZE, default_concurrency_limit=1)
    return demo


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
    if checkpoints.ON_ZERO_GPU:  # every model resident before launch(); see checkpoints' docstring
        checkpoints.preload_all()
    build_app().launch(server_name=args.host, server_port=args.port)


if __name__ == "__main__":
    main()
