"""Benchmark 6.1's click: `/mae_reconstruct` through the running app beside the model's own forward.

    python -m bench.bench_mae_click                        # 6 clicks per client on the tab's example picture
    python -m bench.bench_mae_click --image photo.jpg      # another upload (a phone photo decodes for longer)
    python -m bench.bench_mae_click --compare /tmp/other   # another checkout's app beside this one, click for click

Starts the app on full-size random-weight replicas (its own process, its own dtype policy; `bench/timed_app.py`
runs `app.py` unchanged with its stages timed, and gradio's request profiling on) and reconstructs through three
clients, each click a new request with a new mask seed, so the shared result cache cannot answer:
- `browser`: headless Chromium on the concept page `/masked-autoencoder` (800x900, a course page's column), which
  presses "🎲 New random mask" (one gesture: a new seed, then the reconstruction). A click runs, in the page's own
  clock (`performance.now()`), from the press to the new reconstruction on screen: `#mae-pasted img` has a new
  src and has loaded, and the summary line has changed. This is what a learner waits for.
- gradio_client calls `/mae_reconstruct` the way the page's button does, the same picture uploaded again; a click
  runs from the call to the result, its five PNGs downloaded. `shipped`: gradio_client as it ships, which opens a
  new connection and loads the system's CA certificates for each of its requests (upload, join, stream, five
  downloads) even on plain http; `plain`: the same client with `ssl_verify=False`, which on this plain-http URL
  skips only that loading.
The forward is the model's own work (`demos.compute.mae.masked_forward`) timed inside the app, in the request it
belongs to, so a click and its forward meet the same load on a shared machine; the ratio is the median of
click / forward over the clicks. Then where a click goes: the app's stages (reading the upload, the forward, the
rest of `reconstruct`, the PNGs) within gradio's phases of the request (queue, preprocess, the handler,
postprocess), and the rest (the client, the upload, the stream, the downloads; in
the browser, the seed step, the stream and the pictures' loading), and the browser's timeline within its clicks.
Random weights: speed only. Needs Chromium (`/usr/bin/chromium`, or $PDR_CHROMIUM) for the browser client.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from bench import common

CHECKPOINT = "vit-mae-base"  # the tab's default
RATIO = 0.75
CLIENTS = {"shipped": {}, "plain": {"ssl_verify": False}}  # the gradio_client ones; "browser" is Chromium
KINDS = ("browser", *CLIENTS)
CLIENT_NAMES = {"browser": "browser (Chromium, the concept page)", "shipped": "gradio_client as shipped",
                "plain": "gradio_client with `ssl_verify=False`"}
ENDPOINT, UPLOAD = "mae_reconstruct", "gradio_file_upload"  # names in gradio's traces
CHROMIUM = os.environ.get("PDR_CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # the tests'
CONCEPT_PAGE = "masked-autoencoder"
VIEWPORT = {"width": 800, "height": 900}
# In the page: arm a watch, resolved when the press's reconstruction is on screen. t0 is the press (the click event's
# timeStamp, in the page's performance.now() clock); the end is the first moment the reconstruction's <img> has a
# new src and has loaded and the summary line has changed (checked on every DOM change and image load, and every
# 5 ms besides). The requests the page made meanwhile come back too, relative to the press.
ARM_WATCH = """(timeoutMs) => {
  const img = () => document.querySelector('#mae-pasted img');
  const text = () => (document.querySelector('#mae-summary') || {}).innerText || '';
  const oldSrc = img() ? img().src : null, oldText = text();
  let t0 = null;
  window.__pdrClick = new Promise((resolve, reject) => {
    const done = () => {
      const i = img();
      if (t0 === null || !i || i.src === oldSrc || !i.complete || i.naturalWidth === 0 || text() === oldText) return;
      const t1 = performance.now();
      observer.disconnect(); clearInterval(poll); document.removeEventListener('load', done, true);
      const requests = performance.getEntriesByType('resource').filter(e => e.startTime >= t0 - 1).map(e => ({
        name: e.name, start: e.startTime - t0, end: e.responseEnd - t0}));
      resolve({ms: t1 - t0, requests});
    };
    document.addEventListener('click', e => { if (t0 === null) t0 = e.timeStamp; }, {capture: true, once: true});
    const observer = new MutationObserver(done);
    observer.observe(document.body, {subtree: true, childList: true, attributes: true, characterData: true});
    document.addEventListener('load', done, true);
    const poll = setInterval(done, 5);
    setTimeout(() => reject(new Error('no new reconstruction within ' + timeoutMs + ' ms')), timeoutMs);
  });
}"""
TIMED_APP = Path(__file__).with_name("timed_app.py")
BREAKDOWN = {  # row: how it is computed from one click's figures (seconds)
    "the model's forward (`masked_forward`)": lambda f: f["forward"],
    "`reconstruct` besides the forward (pixels in, pictures and numbers out)": lambda f: f["reconstruct"] - f["forward"],
    "reading the upload (`load_image`)": lambda f: f["load_image"],
    "the handler's rest (checks, result cache, summary)": lambda f: f["fn_call"] - f["reconstruct"] - f["load_image"],
    "five PNGs (`save_png`)": lambda f: f["png"],
    "gradio: queue, preprocess, the rest of postprocess": lambda f: (f["queue_wait"] + f["preprocess"]
                                                                    + f["postprocess"] - f["png"]),
    "the rest: client, upload, stream, downloads (browser: seed step, stream, pictures on screen)":
        lambda f: f["click"] - f["queue_wait"] - f["total"],
}


class Browser:
    """Headless Chromium on the app's 6.1 concept page, pressing "New random mask" as a learner does."""

    def __init__(self, url: str):
        from playwright.sync_api import sync_playwright

        self.playwright = sync_playwright().start()
        self.browser = self.playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        self.page = self.browser.new_page(viewport=VIEWPORT)
        self.page.set_default_timeout(180_000)
        self.page.goto(url.rstrip("/") + "/" + CONCEPT_PAGE)
        # the page opens with its example's result in place: wait for it, so a click changes what is shown
        self.page.wait_for_function("""() => {
          const i = document.querySelector('#mae-pasted img'), s = document.querySelector('#mae-summary');
          return i && i.complete && i.naturalWidth > 0 && s && s.innerText.includes('patches hidden');
        }""", timeout=180_000)
        self.button = self.page.get_by_role("button", name="New random mask")
        self.button.scroll_into_view_if_needed()
        self.timeline: list[dict] = []  # per click: the page's requests, relative to the press

    def click(self) -> float:
        self.page.evaluate(ARM_WATCH, 120_000)
        self.button.click()
        result = self.page.evaluate("window.__pdrClick")
        self.timeline.append(result)
        return result["ms"] / 1000

    def close(self) -> None:
        self.browser.close()
        self.playwright.stop()


class App:
    """One checkout's running app, timed (`timed_app.py`), its two gradio_client clients and its browser."""

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
        self.browser = Browser(client.src)
        self.clicks: dict[str, list[dict]] = {kind: [] for kind in KINDS}
        print(f"{name}: app answering after {start_s:.1f} s (log: {work / f'{index}.log'})", flush=True)

    def _stages(self) -> list[dict]:
        return [json.loads(line) for line in self.stages_file.read_text().splitlines()] if self.stages_file.exists() else []

    def _traces(self, kind: str) -> list[dict]:
        """gradio's request profiling: the phases of each request so far of what `kind`'s click calls. The page's
        reconstruction is a private event, traced under a made-up name (`false_99`); gradio traces only queued
        events and uploads, and once the page has shown its example, the page's only queued event is the click's."""
        with urllib.request.urlopen(self.clients["plain"].src.rstrip("/") + "/gradio_api/profiling/traces") as reply:
            traces = json.load(reply)
        if kind == "browser":
            return [trace for trace in traces if trace["fn_name"] not in (ENDPOINT, UPLOAD)]
        return [trace for trace in traces if trace["fn_name"] == ENDPOINT]

    def click(self, kind: str, image_path: str, seed: int) -> dict:
        """One click's figures: its time, its stages in the app (summed per stage), gradio's phases."""
        from gradio_client import handle_file

        seen, traced = len(self._stages()), len(self._traces(kind))
        if kind == "browser":  # its own new seed, as the page draws it
            click = self.browser.click()
        else:
            start = time.perf_counter()
            self.clients[kind].predict(handle_file(image_path), RATIO, seed, CHECKPOINT, api_name="/mae_reconstruct")
            click = time.perf_counter() - start
        figures = {"click": click, "forward": 0.0, "reconstruct": 0.0, "load_image": 0.0, "png": 0.0}
        for record in self._stages()[seen:]:
            figures[record["stage"]] += record["seconds"]
        while len(traces := self._traces(kind)) == traced:  # gradio files a request's trace once its reply is sent
            time.sleep(0.01)
        trace = traces[-1]
        figures.update({phase: trace[f"{phase}_ms"] / 1000 for phase in
                        ("queue_wait", "preprocess", "fn_call", "postprocess", "total")})
        return figures


def cell(values: list[float], unit: str = "s") -> str:
    if unit == "ms":
        return f"{statistics.median(values) * 1000:.0f} ms ({min(values) * 1000:.0f}-{max(values) * 1000:.0f})"
    return f"{statistics.median(values):.3f} s ({min(values):.2f}-{max(values):.2f})"


def print_timeline(app: App) -> None:
    """The browser's clicks as the page saw them: each request it made, when it started and ended after the press."""
    steps: dict[str, list[tuple[float, float]]] = {}
    for click in app.browser.timeline:
        counts: dict[str, int] = {}
        for request in click["requests"]:
            name = request_name(request["name"])
            counts[name] = counts.get(name, 0) + 1
            key = name if counts[name] == 1 else f"{name} ({counts[name]})"
            steps.setdefault(key, []).append((request["start"], request["end"]))
    print(f"\nThe browser's clicks{'' if app.name == 'this checkout' else ', ' + app.name}, in the page: each request "
          "after the press, start and end, medians (ms)\n\n| request | start | end | in clicks |\n| --- | --- | --- | --- |")
    for key, spans in sorted(steps.items(), key=lambda item: statistics.median(s for s, _ in item[1])):
        print(f"| {key} | {statistics.median(s for s, _ in spans):.0f} | {statistics.median(e for _, e in spans):.0f} "
              f"| {len(spans)} of {len(app.browser.timeline)} |")
    print(f"| the reconstruction on screen | | {statistics.median(c['ms'] for c in app.browser.timeline):.0f} | |")


def request_name(url: str) -> str:
    """A request's path without the session's or the file's own part: `/gradio_api/run/predict`, `file=...pasted`."""
    path = urllib.parse.urlsplit(url).path
    if "/file=" in path:
        return "a picture (`/gradio_api/file=`)"
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=None, help="the picture to upload (default: the tab's example)")
    parser.add_argument("--repeats", type=int, default=6, help="clicks per client and app")
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
            warm = [app.click(kind, image_path, next(seeds))["click"] for kind in KINDS]
            print(f"{app.name}: warm-up clicks {', '.join(f'{s:.2f}' for s in warm)} s", flush=True)
            app.browser.timeline.clear()
        for _ in range(args.repeats):
            for app in apps:
                for kind in KINDS:
                    app.clicks[kind].append(app.click(kind, image_path, next(seeds)))
    finally:
        for app in apps:
            app.browser.close()
            stop_app(app.server)

    dtype = next((line.split("Models run on ")[-1].strip() for line in (work / "0.log").read_text().splitlines()
                  if "Models run on" in line), "the app's policy")
    columns = [(app, kind) for app in apps for kind in KINDS]
    names = [CLIENT_NAMES[kind] if len(apps) == 1 else f"{app.name}: {kind}" for app, kind in columns]
    head = "| | " + " | ".join(names) + " |\n| --- |" + " --- |" * len(columns)
    print(f"\n6.1's reconstruction, {CHECKPOINT}, ratio {RATIO}, {Path(image_path).name}, {dtype}, "
          f"{args.repeats} clicks per client, medians (min-max), {os.cpu_count()} CPUs\n")
    print(head)
    print("| click | " + " | ".join(cell([f["click"] for f in app.clicks[kind]]) for app, kind in columns) + " |")
    print("| the model's forward, in the app (the same requests) | " + " | ".join(
        cell([f["forward"] for f in app.clicks[kind]]) for app, kind in columns) + " |")
    print("| **click / forward** (goal <= 2x) | " + " | ".join(
        f"**{statistics.median(f['click'] / f['forward'] for f in app.clicks[kind]):.2f}x**"
        for app, kind in columns) + " |")
    print(f"\nWhere a click goes:\n\n{head}")
    for row, figure in BREAKDOWN.items():
        print(f"| {row} | " + " | ".join(cell([figure(f) for f in app.clicks[kind]], "ms") for app, kind in columns)
              + " |")
    for app in apps:
        print_timeline(app)

if __name__ == "__main__":
    main()
