"""Benchmark 6.1's click: `/mae_reconstruct` through the running app beside the model's own forward.

    python -m bench.bench_mae_click                        # 8 clicks per client on the tab's example picture
    python -m bench.bench_mae_click --image photo.jpg      # another upload (a phone photo decodes for longer)
    python -m bench.bench_mae_click --compare /tmp/other   # another checkout's app beside this one, click for click

Starts the app on full-size random-weight replicas (its own process, its own dtype policy; `bench/timed_app.py`
runs `app.py` unchanged with its stages timed, and gradio's request profiling on) and calls `/mae_reconstruct`
through gradio_client the way the page's button does, each call a new request: the same picture, uploaded again,
with a new mask seed, so the shared result cache cannot answer. A click runs from the call to the result, its five
PNGs downloaded, by two clients: gradio_client as it ships, which opens a new connection and loads the system's CA
certificates for each of its requests (upload, join, stream, five downloads) even on plain http, and the same
client with `ssl_verify=False`, which on this plain-http URL skips only that loading and so stands nearer a
browser, whose page keeps its connections. The forward is the model's own work (`demos.compute.mae.masked_forward`)
timed inside the app, in the request it belongs to, so a click and its forward meet the same load on a shared
machine; the ratio is the median of click / forward over the clicks. Then where a click goes: the app's stages
(reading the upload, the forward, the rest of `reconstruct`, the PNGs) within gradio's phases of the request
(queue, preprocess, the handler, postprocess), and the rest (the client, the upload, the stream, the downloads).
Random weights: speed only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

from bench import common

CHECKPOINT = "vit-mae-base"  # the tab's default
RATIO = 0.75
CLIENTS = {"shipped": {}, "plain": {"ssl_verify": False}}
CLIENT_NAMES = {"shipped": "gradio_client as shipped", "plain": "gradio_client with `ssl_verify=False`"}
TIMED_APP = Path(__file__).with_name("timed_app.py")
BREAKDOWN = {  # row: how it is computed from one click's figures (seconds)
    "the model's forward (`masked_forward`)": lambda f: f["forward"],
    "`reconstruct` besides the forward (pixels in, pictures and numbers out)": lambda f: f["reconstruct"] - f["forward"],
    "reading the upload (`load_image`)": lambda f: f["load_image"],
    "the handler's rest (checks, result cache, summary)": lambda f: f["fn_call"] - f["reconstruct"] - f["load_image"],
    "five PNGs (`save_png`)": lambda f: f["png"],
    "gradio: queue, preprocess, the rest of postprocess": lambda f: (f["queue_wait"] + f["preprocess"]
                                                                    + f["postprocess"] - f["png"]),
    "the rest: client, upload, stream, downloads": lambda f: f["click"] - f["queue_wait"] - f["total"],
}


class App:
    """One checkout's running app, timed (`timed_app.py`), and its two clients."""

    def __init__(self, name: str, root: Path, dtype: str, work: Path):
        from gradio_client import Client

        from bench.bench_app import start_app

        index = len(list(work.glob("*.log")))
        self.name, self.stages_file = name, work / f"{index}.stages.jsonl"
        # a cache folder of its own: an app deletes the files it handed out when it stops, whoever else shares them
        os.environ.update(GRADIO_TEMP_DIR=tempfile.mkdtemp(prefix="gradio-", dir=work), PYTHONPATH=str(root),
                          PDR_BENCH_STAGES=str(self.stages_file), GRADIO_PROFILING="1")
        self.server, client, start_s = start_app(dtype, work / f"{index}.log", root, str(TIMED_APP))
        self.clients = {kind: Client(client.src, verbose=False, **kwargs) for kind, kwargs in CLIENTS.items()}
        self.clicks: dict[str, list[dict]] = {kind: [] for kind in CLIENTS}
        print(f"{name}: app answering after {start_s:.1f} s (log: {work / f'{index}.log'})", flush=True)

    def _stages(self) -> list[dict]:
        return [json.loads(line) for line in self.stages_file.read_text().splitlines()] if self.stages_file.exists() else []

    def _traces(self) -> list[dict]:
        """gradio's request profiling: the phases of each `/mae_reconstruct` request so far."""
        with urllib.request.urlopen(self.clients["plain"].src.rstrip("/") + "/gradio_api/profiling/traces") as reply:
            return [trace for trace in json.load(reply) if trace["fn_name"] == "mae_reconstruct"]

    def click(self, kind: str, image_path: str, seed: int) -> dict:
        """One click's figures: its time, its stages in the app (summed per stage), gradio's phases."""
        from gradio_client import handle_file

        seen, traced = len(self._stages()), len(self._traces())
        start = time.perf_counter()
        self.clients[kind].predict(handle_file(image_path), RATIO, seed, CHECKPOINT, api_name="/mae_reconstruct")
        figures = {"click": time.perf_counter() - start, "forward": 0.0, "reconstruct": 0.0, "load_image": 0.0,
                   "png": 0.0}
        for record in self._stages()[seen:]:
            figures[record["stage"]] += record["seconds"]
        while len(traces := self._traces()) == traced:  # gradio files a request's trace once its reply is sent
            time.sleep(0.01)
        trace = traces[-1]
        figures.update({phase: trace[f"{phase}_ms"] / 1000 for phase in
                        ("queue_wait", "preprocess", "fn_call", "postprocess", "total")})
        return figures


def cell(values: list[float], unit: str = "s") -> str:
    if unit == "ms":
        return f"{statistics.median(values) * 1000:.0f} ms ({min(values) * 1000:.0f}-{max(values) * 1000:.0f})"
    return f"{statistics.median(values):.3f} s ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=None, help="the picture to upload (default: the tab's example)")
    parser.add_argument("--repeats", type=int, default=8, help="clicks per client and app")
    parser.add_argument("--dtype", default="", help="PDR_DTYPE for the app ('' = the app's own policy)")
    parser.add_argument("--compare", type=Path, default=None, help="another checkout, its app clicked alternately")
    args = parser.parse_args()

    common.use_full_size_replicas([CHECKPOINT])
    from bench.bench_app import stop_app
    from demos.tabs import mae as mae_tab

    image_path = str(Path(args.image or mae_tab.EXAMPLE_IMAGE).resolve())
    work = Path(tempfile.mkdtemp(prefix="pdr-bench-mae-click-"))
    roots = {"this checkout": common.ROOT}
    if args.compare:
        roots[str(args.compare)] = args.compare.resolve()
    apps: list[App] = []
    seeds = iter(range(1, 10**6))
    try:
        for name, root in roots.items():
            apps.append(App(name, root, args.dtype, work))
        for app in apps:  # the first loads the model, then each client's first connection
            warm = [app.click(kind, image_path, next(seeds))["click"] for kind in CLIENTS]
            print(f"{app.name}: warm-up clicks {', '.join(f'{s:.2f}' for s in warm)} s", flush=True)
        for _ in range(args.repeats):
            for app in apps:
                for kind in CLIENTS:
                    app.clicks[kind].append(app.click(kind, image_path, next(seeds)))
    finally:
        for app in apps:
            stop_app(app.server)

    dtype = next((line.split("Models run on ")[-1].strip() for line in (work / "0.log").read_text().splitlines()
                  if "Models run on" in line), "the app's policy")
    head = "| what | " + " | ".join(roots) + " |\n| --- |" + " --- |" * len(roots)
    print(f"\n6.1 `/mae_reconstruct`, {CHECKPOINT}, ratio {RATIO}, {Path(image_path).name}, {dtype}, "
          f"{args.repeats} clicks per client, medians (min-max), {os.cpu_count()} CPUs\n")
    print(head)
    for kind in CLIENTS:
        print(f"| click, {CLIENT_NAMES[kind]} | " + " | ".join(
            cell([f["click"] for f in app.clicks[kind]]) for app in apps) + " |")
    every = {app.name: app.clicks["shipped"] + app.clicks["plain"] for app in apps}
    print("| the model's forward, in the app (every click) | " + " | ".join(
        cell([f["forward"] for f in every[app.name]]) for app in apps) + " |")
    for kind in CLIENTS:
        print(f"| **click / forward, {CLIENT_NAMES[kind]}** | " + " | ".join(
            f"**{statistics.median(f['click'] / f['forward'] for f in app.clicks[kind]):.2f}x**" for app in apps) + " |")
    for kind in CLIENTS:
        print(f"\nWhere a click goes, {CLIENT_NAMES[kind]}:\n\n{head}")
        for row, figure in BREAKDOWN.items():
            print(f"| {row} | " + " | ".join(cell([figure(f) for f in app.clicks[kind]], "ms") for app in apps) + " |")


if __name__ == "__main__":
    main()
