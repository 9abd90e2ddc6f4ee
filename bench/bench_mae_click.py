"""Benchmark 6.1's click: `/mae_reconstruct` through the running app beside the model's own forward.

    python -m bench.bench_mae_click                        # 8 clicks on the tab's example picture
    python -m bench.bench_mae_click --image photo.jpg      # another upload (a phone photo decodes for longer)
    python -m bench.bench_mae_click --compare /tmp/other   # another checkout's app beside this one, click for click

Starts `python app.py` on full-size random-weight replicas (its own process, its own dtype policy, gradio's
request profiling on) and calls `/mae_reconstruct` through gradio_client the way the page's button does, each
call a new request: the same picture, uploaded again, with a new mask seed, so the shared result cache cannot
answer. A click runs from the call to the result, its five PNGs downloaded, by two clients: gradio_client as it
ships, which opens a new connection and loads the system's CA certificates for each of its requests (upload,
join, stream, five downloads) even on plain http, and the same client with `ssl_verify=False`, which on this
plain-http URL skips only that loading and so stands nearer a browser, whose page keeps its connections. Between
clicks, in this process with the same dtype policy, the model's own forward (`demos.compute.mae.masked_forward`
on the same picture and mask), so both meet the same load on a shared machine; the ratio is the median of each
round's click / forward.
Then where a click goes: gradio's phases of each request in the app (queue, preprocess, the handler,
postprocess; the rest is the client, the upload, the stream and the downloads), and the handler's and the
postprocess's stages timed with the app's own functions, in a process of the checkout's own. Random weights:
speed only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench import common

CHECKPOINT = "vit-mae-base"  # the tab's default
RATIO = 0.75
CLIENTS = {"shipped": {}, "plain": {"ssl_verify": False}}
CLIENT_ROWS = {"shipped": "click, gradio_client as shipped", "plain": "click, gradio_client with `ssl_verify=False`"}
PHASES = ("queue_wait", "preprocess", "fn_call", "postprocess")
PHASE_ROWS = {"queue_wait": "queue", "preprocess": "preprocess (the upload's path)", "fn_call": "the handler",
              "postprocess": "postprocess (five PNGs, numbers)"}


def forward_seconds(image_path: str, seed: int) -> float:
    """The model's own work for one click: `masked_forward` on the picture as the model sees it, the same mask."""
    import torch

    from demos import devices, images, masks
    from demos.compute import mae

    loaded = mae.load(CHECKPOINT)
    model, processor = loaded.model, loaded.processor
    grid = masks.PatchGrid.square(model.config.image_size, model.config.patch_size)
    view = images.center_square(images.load_image(image_path), model.config.image_size)
    pixels = devices.on_model(model, processor(images=view, do_resize=False, return_tensors="pt")["pixel_values"])
    hidden = masks.hidden_mask(grid.num_patches, masks.random_hidden_ids(grid.num_patches, RATIO, seed))
    with torch.inference_mode():
        start = time.perf_counter()
        mae.masked_forward(model, pixels, hidden, loaded.position_layouts)
        return time.perf_counter() - start


def handler_stages(image_path: str, repeats: int) -> dict[str, list[float]]:
    """A click's handler and postprocess, stage by stage, with the functions of the checkout this process imports:
    the same picture each time, a new seed each time, after one call that loads the model."""
    import gradio as gr

    from demos import images, masks, results
    from demos.compute import mae
    from demos.tabs import common as tab_common
    from demos.tabs import mae as mae_tab

    stages: dict[str, list[float]] = {}

    def timed(name: str, fn, *args, **kwargs):
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        stages.setdefault(name, []).append(time.perf_counter() - start)
        return out

    def postprocess(component, values):
        return [component.postprocess(value) for value in values]

    picture, numbers = tab_common.output_image("bench"), gr.JSON()
    for seed in range(repeats + 1):
        timed("result cache key (the file's digest)", results.request_key, "mae_reconstruct",
              [image_path, RATIO, seed, CHECKPOINT])
        image = timed("read the upload (`load_image`)", images.load_image, image_path)
        result = timed("`reconstruct` (the forward, drawing, numbers)", mae.reconstruct, image, CHECKPOINT,
                       ratio=masks.validate_ratio(RATIO), seed=masks.validate_seed(seed))
        timed("summary", mae_tab.summary_markdown, result, CHECKPOINT)
        timed("five PNGs (`OutputImage.postprocess`)", postprocess, picture,
              (result.model_view, result.masked, result.reconstruction, result.pasted, result.error_map))
        timed("numbers (JSON)", postprocess, numbers, [result.stats()])
        if seed == 0:  # loaded the model
            stages = {name: [] for name in stages}
    return stages


def stages_of(root: Path, image_path: str, repeats: int) -> dict[str, list[float]]:
    """`handler_stages` of the checkout at `root`, in a process of its own."""
    out = subprocess.run([sys.executable, __file__, "--stages-only", "--image", image_path, "--repeats", str(repeats)],
                         cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def profiling(url: str) -> list[dict]:
    """Each request's phases, from gradio's request profiling (GRADIO_PROFILING=1)."""
    with urllib.request.urlopen(url.rstrip("/") + "/gradio_api/profiling/traces") as response:
        return json.load(response)


class App:
    """One checkout's running app and its two clients."""

    def __init__(self, name: str, root: Path, dtype: str, work: Path):
        from gradio_client import Client

        from bench.bench_app import start_app

        self.name, self.root = name, root
        # a cache folder of its own: an app deletes the files it handed out when it stops, whoever else shares them
        os.environ["GRADIO_TEMP_DIR"] = str(Path(tempfile.mkdtemp(prefix="gradio-", dir=work)))
        log = work / f"{len(list(work.glob('*.log')))}.log"
        self.server, client, start_s = start_app(dtype, log, root)
        self.clients = {kind: Client(client.src, verbose=False, **kwargs) for kind, kwargs in CLIENTS.items()}
        self.clicks: dict[str, list[float]] = {kind: [] for kind in CLIENTS}
        self.order: list[str] = []  # which client made each counted click, in order
        print(f"{name}: app answering after {start_s:.1f} s (log: {log})", flush=True)

    def click(self, kind: str, image_path: str, seed: int, count: bool = True) -> float:
        from gradio_client import handle_file

        start = time.perf_counter()
        self.clients[kind].predict(handle_file(image_path), RATIO, seed, CHECKPOINT, api_name="/mae_reconstruct")
        seconds = time.perf_counter() - start
        if count:
            self.clicks[kind].append(seconds)
            self.order.append(kind)
        return seconds

    def phases(self) -> dict[str, dict[str, list[float]]]:
        """Per client: gradio's phases of each counted click, and the rest of its time (client and transfers)."""
        traces = [t for t in profiling(self.clients["plain"].src) if t["fn_name"] == "mae_reconstruct"]
        traces = traces[-len(self.order):]
        rows: dict[str, dict[str, list[float]]] = {kind: {} for kind in CLIENTS}
        seen = {kind: 0 for kind in CLIENTS}
        for kind, trace in zip(self.order, traces, strict=True):
            click = self.clicks[kind][seen[kind]]
            seen[kind] += 1
            for phase in PHASES:
                rows[kind].setdefault(phase, []).append(trace[f"{phase}_ms"] / 1000)
            rows[kind].setdefault("rest", []).append(click - (trace["queue_wait_ms"] + trace["total_ms"]) / 1000)
        return rows


def cell(values: list[float], unit: str = "s") -> str:
    if not values:
        return ""
    if unit == "ms":
        return f"{statistics.median(values) * 1000:.0f} ms ({min(values) * 1000:.0f}-{max(values) * 1000:.0f})"
    return f"{statistics.median(values):.3f} s ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=None, help="the picture to upload (default: the tab's example)")
    parser.add_argument("--repeats", type=int, default=8, help="clicks per client (each round beside one forward)")
    parser.add_argument("--dtype", default="", help="PDR_DTYPE for the app and the forward ('' = the app's policy)")
    parser.add_argument("--compare", type=Path, default=None, help="another checkout, its app clicked alternately")
    parser.add_argument("--stages-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    common.use_full_size_replicas([CHECKPOINT])
    if args.dtype:
        os.environ["PDR_DTYPE"] = args.dtype
    from demos import devices
    from demos.tabs import mae as mae_tab

    image_path = str(Path(args.image or mae_tab.EXAMPLE_IMAGE).resolve())
    if args.stages_only:
        print(json.dumps(handler_stages(image_path, args.repeats)))
        return

    os.environ["GRADIO_PROFILING"] = "1"  # each request's phases at /gradio_api/profiling/traces
    work = Path(tempfile.mkdtemp(prefix="pdr-bench-mae-click-"))
    roots = {"this checkout": common.ROOT}
    if args.compare:
        roots[f"{args.compare}"] = args.compare.resolve()
    apps: list[App] = []
    forwards: list[float] = []
    seeds = iter(range(1, 10**6))
    try:
        for name, root in roots.items():
            apps.append(App(name, root, args.dtype, work))
        for app in apps:  # loads the model in each app, then each client's first connection
            warm = [app.click(kind, image_path, next(seeds), count=False) for kind in CLIENTS]
            print(f"{app.name}: warm-up clicks {', '.join(f'{s:.2f}' for s in warm)} s (the first loads the model)")
        forward_seconds(image_path, 0)
        for _ in range(args.repeats):
            for app in apps:
                for kind in CLIENTS:
                    app.click(kind, image_path, next(seeds))
            forwards.append(forward_seconds(image_path, next(seeds)))
        phases = {app.name: app.phases() for app in apps}
    finally:
        for app in apps:
            from bench.bench_app import stop_app

            stop_app(app.server)
    stages = {name: stages_of(root, image_path, args.repeats) for name, root in roots.items()}

    dtype = str(devices.device_and_dtype()[1]).replace("torch.", "")
    names = list(roots)
    head = "| what | " + " | ".join(names) + " |\n| --- |" + " --- |" * len(names)
    print(f"\n6.1 `/mae_reconstruct`, {CHECKPOINT}, ratio {RATIO}, {Path(image_path).name}, {dtype}, "
          f"{args.repeats} clicks per client, medians (min-max), {os.cpu_count()} CPUs\n")
    print(head)
    for kind in CLIENTS:
        print(f"| {CLIENT_ROWS[kind]} | " + " | ".join(cell(app.clicks[kind]) for app in apps) + " |")
    print(f"| the model's forward (`masked_forward`, in the bench) | {cell(forwards)} |" + " |" * (len(names) - 1))
    for kind in CLIENTS:  # each click against the forward of its own round: a shared machine's load drifts
        print(f"| **{CLIENT_ROWS[kind].split(', ')[1]}: click / forward** | " + " | ".join(
            f"**{statistics.median(c / f for c, f in zip(app.clicks[kind], forwards, strict=True)):.2f}x**"
            for app in apps) + " |")

    for kind in CLIENTS:
        print(f"\nWhere a click goes ({CLIENT_ROWS[kind].split(', ')[1]}), gradio's request profiling in the app:\n")
        print(head)
        for phase in (*PHASES, "rest"):
            label = PHASE_ROWS.get(phase, "the rest: client, upload, stream, downloads")
            print(f"| {label} | " + " | ".join(cell(phases[name][kind][phase], "ms") for name in names) + " |")

    print("\nThe handler and the postprocess, stage by stage, in a process of each checkout:\n")
    print(head)
    for stage in stages[names[0]]:
        print(f"| {stage} | " + " | ".join(cell(stages[name].get(stage, []), "ms") for name in names) + " |")


if __name__ == "__main__":
    main()
