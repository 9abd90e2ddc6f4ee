"""Benchmark the running app the way a learner or a script meets it: pick a clip, click.

    python -m bench.bench_app                                  # every row, the tab's frames, wait 5 s
    python -m bench.bench_app --rows tube --frames 8 --repeats 1 --wait 2   # a quick run

Starts `python app.py` on full-size random-weight replicas (its own process, its own dtype policy)
and calls it through gradio_client. Every "just picked" clip is a freshly generated file with content
never seen before, so no cache can serve it. Each row's time runs from the call to the result (for
VQA, to the first generated token: the first update whose numbers count one, or an app that does not count
them, its first non-empty answer), upload included:
- clip just picked: the call comes right after the clip was written;
- picked >= WAIT s before: the page's own reaction to a new clip (`PICK_ENDPOINTS`: the preview and the
  start-early prepare, `/tube_prepare` or `/prepare_clip`) is started, then the bench waits WAIT seconds,
  then calls (the call queues behind a prepare still running, as on the page);
- same clip, tube moved / same clip again: what the app's caches give.
Models are loaded by a warm-up call on another clip first (its time, load included, is printed).
Then the app stops and the model-card recipe for the same work runs in this process, in fp32 as the
recipe does (transformers' documented code): for 6.4 the plain `VJEPA2Model` forward with
`context_mask`/`target_mask` (the encoder sees the hidden tube: it leaks, but it is the documented way),
for 6.5 `VJEPA2ForVideoClassification` forward per probe on the frames it was evaluated on. The ratio
is recipe time / app time: above 1, the app is faster. Random weights: speed only.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import common
from bench.bench_heads import write_clip

ROWS = ("tube", "classify", "vqa")
CHECKPOINTS = {"tube": ["vjepa2-vitl"], "classify": ["vjepa2-vitl", "vjepa2-ssv2-probe", "vjepa2-diving48-probe"],
               "vqa": ["vjepa2-vitl", "vjepa2-ssv2-probe", "vjepa2-diving48-probe", "qwen2.5-0.5b-instruct"]}
# What the page calls when a clip is picked (a video's change event), submitted without waiting as the page
# does: the preview, and the start-early prepare whose encoder pass the "picked before" rows measure.
PICK_ENDPOINTS = {"tube": ("/tube_preview", "/tube_prepare"), "classify": ("/prepare_clip",), "vqa": ("/prepare_clip",)}
FRAME_STEP = 4  # the 6.4 tab's default
TUBE = (5, 5, 5, 5)  # the 6.4 tab's default tube: top, left, height, width (all tubelets)
MOVED_TUBE = (8, 3, 4, 4)
QUESTION = "What is happening in this video?"
APP_START_TIMEOUT_S = 180


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Clips:
    """Fresh clips: each one new content (a new noise seed), long enough for 32 frames at step 4."""

    def __init__(self, folder: Path):
        self.folder, self.count = folder, 0

    def new(self) -> str:
        self.count += 1
        seed = time.time_ns() % 2**32
        return write_clip(self.folder / f"clip-{self.count}.mp4", seconds=5.0, seed=seed)


def start_app(dtype: str, log_path: Path, root: Path = common.ROOT, script: str = "app.py"):
    """`python app.py` (or `script`) in the checkout at `root` on the replicas, and a gradio_client `Client` of it."""
    from gradio_client import Client

    env = {**os.environ, "HF_HUB_CACHE": str(common.REPLICA_CACHE), "HF_HUB_OFFLINE": "1",
           "GRADIO_ANALYTICS_ENABLED": "False"}
    env.pop("PDR_OFFLINE_DEMO", None)
    if dtype:
        env["PDR_DTYPE"] = dtype
    else:
        env.pop("PDR_DTYPE", None)
    port = _free_port()
    log = open(log_path, "w")  # noqa: SIM115 (closed with the process in stop_app)
    server = subprocess.Popen([sys.executable, script, "--port", str(port)], cwd=root, env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    deadline = time.monotonic() + APP_START_TIMEOUT_S
    started = time.perf_counter()
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"app.py exited:\n{log_path.read_text()[-3000:]}")
        try:
            client = Client(f"http://127.0.0.1:{port}/", verbose=False)
            return server, client, time.perf_counter() - started
        except Exception:
            time.sleep(0.5)
    server.kill()
    raise RuntimeError(f"app.py did not answer within {APP_START_TIMEOUT_S} s")


def stop_app(server) -> None:
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


class AppRows:
    """The app's side of each row, through gradio_client."""

    def __init__(self, client, clips: Clips, frames: int, wait_s: float, sampling: str):
        self.client, self.clips, self.frames, self.wait_s, self.sampling = client, clips, frames, wait_s, sampling

    def pick(self, tab: str, clip: str) -> None:
        """What the page does when this clip is picked (its events start, the bench does not wait for them),
        then the learner's pause before the click (which queues behind them, as on the page)."""
        from gradio_client import handle_file

        video = handle_file(clip)
        for api_name in PICK_ENDPOINTS[tab]:
            if api_name == "/tube_preview":
                args = (video, 0.0, self.frames, FRAME_STEP, 0, *TUBE, 0, self.frames // 2 - 1)
            elif api_name == "/tube_prepare":
                args = (video, 0.0, self.frames, FRAME_STEP, 0)
            else:  # /prepare_clip: the question reads the device's default sampling
                args = (video, 0.0, self.sampling if tab == "classify" else "auto")
            self.client.submit(*args, api_name=api_name)
        time.sleep(self.wait_s)

    def call(self, tab: str, clip: str, tube=TUBE, api_name: str | None = None):
        from gradio_client import handle_file

        video = handle_file(clip)
        if tab == "tube":
            return self.client.predict(video, 0.0, self.frames, FRAME_STEP, 0, *tube, 0, self.frames // 2 - 1,
                                       api_name=api_name or "/tube_predict")
        if tab == "classify":
            return self.client.predict(video, 0.0, self.sampling, api_name=api_name or "/classify_action")
        return self.first_token(video)

    def first_token(self, video) -> float:
        """Seconds from the call to the first generated token (the call's own time is the whole answer). The
        replica's stand-in tokenizer decodes most of a random-weight LLM's tokens to nothing, so the first
        visible text can come only at the answer's end: the app's numbers count tokens (`new_tokens`)."""
        start = time.perf_counter()
        job = self.client.submit(video, 0.0, QUESTION, api_name="/answer_question")
        first = None
        for update in job:
            if first is None and update and (update[0] or (update[-1] or {}).get("new_tokens")):
                first = time.perf_counter() - start
        numbers = job.result()[-1]
        first = first if first is not None else float("nan")
        print(f"  first token {first:.2f} s; the app's numbers: " + ", ".join(
            f"{key} {numbers[key]}" for key in ("encoder_passes_run", "heads_run", "probe_seconds", "inputs_seconds",
                                                 "first_token_s", "first_text_s", "new_tokens", "total_s")
            if key in numbers), flush=True)
        return first

    def seconds(self, tab: str, clip: str, tube=TUBE) -> float:
        """Time of one click; for VQA the time to its first token."""
        elapsed, out = timed(lambda: self.call(tab, clip, tube))
        return out if tab == "vqa" else elapsed

    def warm_up(self, tab: str) -> float:
        """One whole call on another clip: loads the tab's models."""
        return timed(lambda: self.call(tab, self.clips.new()))[0]

    def run(self, tab: str, repeats: int) -> dict[str, list[float]]:
        rows: dict[str, list[float]] = {}

        def add(name: str, value: float) -> None:
            rows.setdefault(name, []).append(value)

        for _ in range(repeats):
            add("clip just picked", self.seconds(tab, self.clips.new()))
            clip = self.clips.new()
            self.pick(tab, clip)
            add(f"picked {self.wait_s:g} s before", self.seconds(tab, clip))
            if tab == "tube":
                add("same clip, tube moved", self.seconds(tab, clip, MOVED_TUBE))
            else:
                add("same clip again", self.seconds(tab, clip))
        return rows


class Recipe:
    """transformers' model-card code for the same work, fp32 (the checkpoints' own dtype), in this process."""

    def __init__(self, frames: int):
        self.frames = frames
        self.loaded: dict[str, tuple] = {}

    def model_card(self, name: str, auto_class):
        """`Auto*.from_pretrained(hub_id)` and `AutoVideoProcessor.from_pretrained(hub_id)`, once per checkpoint."""
        from transformers import AutoVideoProcessor

        import checkpoints

        if name not in self.loaded:
            hub_id = checkpoints.get(name).hub_id
            self.loaded[name] = (auto_class.from_pretrained(hub_id, cache_dir=common.REPLICA_CACHE).eval(),
                                 AutoVideoProcessor.from_pretrained(hub_id, cache_dir=common.REPLICA_CACHE))
        return self.loaded[name]

    @staticmethod
    def pixels(processor, clip: str, num_frames: int, frame_step: int):
        import torch

        from demos import videos

        frames = videos.sample_frames(clip, start_s=0.0, num_frames=num_frames, frame_step=frame_step).frames
        video = torch.from_numpy(frames).permute(0, 3, 1, 2)  # (T, C, H, W), as the model card's decoder returns
        return processor(video, return_tensors="pt")["pixel_values_videos"]

    def tube(self, clip: str) -> None:
        import torch
        from transformers import AutoModel

        from demos import masks

        model, processor = self.model_card("vjepa2-vitl", AutoModel)
        pixels = self.pixels(processor, clip, self.frames, FRAME_STEP)
        grid = masks.PatchGrid.square(model.config.crop_size, model.config.patch_size)
        tubelets = self.frames // model.config.tubelet_size
        hidden = masks.spatiotemporal_ids(grid, masks.block_ids(grid, *TUBE), range(tubelets))
        context = masks.complement(grid.num_patches * tubelets, hidden)
        with torch.no_grad():
            model(pixels, context_mask=[torch.as_tensor(context)[None]], target_mask=[torch.as_tensor(hidden)[None]])

    def classify(self, clip: str) -> None:
        import torch
        from transformers import AutoModelForVideoClassification

        from demos.compute import heads

        for spec in heads.PROBES:
            model, processor = self.model_card(spec.name, AutoModelForVideoClassification)
            pixels = self.pixels(processor, clip, spec.num_frames, spec.frame_step)
            with torch.no_grad():
                model(pixel_values_videos=pixels).logits.argmax()

    def seconds(self, tab: str, clips: Clips, repeats: int) -> float | None:
        """Median seconds of the recipe on a fresh clip, after one call that loads the models."""
        work = {"tube": self.tube, "classify": self.classify}.get(tab)
        if work is None:  # no model-card recipe answers a question about a video
            return None
        clip = clips.new()
        work(clip)
        return statistics.median(timed(lambda: work(clip))[0] for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="*", default=list(ROWS), choices=ROWS)
    parser.add_argument("--frames", type=int, default=None,
                        help="6.4 frames per clip (default: the tab's on this machine, 8 on a CPU, 16 on a GPU)")
    parser.add_argument("--sampling", default="per_probe", choices=["per_probe", "shared"],
                        help="6.5 frame sampling (the tab's default, 'auto', is 'shared' on a CPU)")
    parser.add_argument("--wait", type=float, default=5.0, help="seconds between picking a clip and the click")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--dtype", default="", help="PDR_DTYPE for the app ('' = the app's own policy)")
    parser.add_argument("--no-recipe", action="store_true")
    args = parser.parse_args()
    if args.frames is None:
        from demos.compute import tube_clips

        args.frames = tube_clips.default_frames()

    names = sorted({name for row in args.rows for name in CHECKPOINTS[row]})
    common.use_full_size_replicas(names)
    work = Path(tempfile.mkdtemp(prefix="pdr-bench-app-"))
    clips = Clips(work)
    server, client, start_s = start_app(args.dtype, work / "app.log")
    print(f"app answering after {start_s:.1f} s (log: {work / 'app.log'})", flush=True)
    results: dict[str, dict[str, list[float]]] = {}
    try:
        app = AppRows(client, clips, args.frames, args.wait, args.sampling)
        for tab in args.rows:
            print(f"{tab}: warm-up call, models loaded: {app.warm_up(tab):.1f} s", flush=True)
            results[tab] = app.run(tab, args.repeats)
            print(f"{tab}: {results[tab]}", flush=True)
    finally:
        stop_app(server)
    dtype_line = next((line.strip() for line in (work / "app.log").read_text().splitlines()
                       if "Models run on" in line), "dtype: see the app log")
    recipes = {}
    if not args.no_recipe:
        recipe = Recipe(args.frames)
        for tab in args.rows:
            recipes[tab] = recipe.seconds(tab, clips, args.repeats)
            print(f"{tab}: recipe {recipes[tab]}", flush=True)
    print_table(results, recipes, args)
    print(f"\napp: {dtype_line.split(' INFO ')[-1]}; recipe: float32; {args.repeats} repeat(s), medians; "
          f"{os.cpu_count()} CPUs")


TITLES = {"tube": "6.4 `/tube_predict`, {frames} frames", "classify": "6.5 `/classify_action` ({sampling})",
          "vqa": "6.5 `/answer_question`, first token"}
RECIPES = {"tube": "leaky VJEPA2Model forward with masks", "classify": "VJEPA2ForVideoClassification x2"}


def print_table(results: dict, recipes: dict, args) -> None:
    print("\n| action | app | model-card recipe | ratio |\n| --- | --- | --- | --- |")
    for tab, rows in results.items():
        recipe = recipes.get(tab)
        title = TITLES[tab].format(frames=args.frames, sampling=args.sampling)
        for i, (row, times) in enumerate(rows.items()):
            seconds = statistics.median(times)
            recipe_cell = f"{recipe:.1f} s ({RECIPES[tab]})" if recipe and i == 0 else ""
            ratio = f"{recipe / seconds:.2f}x" if recipe else ""
            print(f"| {title}, {row} | {seconds:.2f} s | {recipe_cell} | {ratio} |")


if __name__ == "__main__":
    main()
