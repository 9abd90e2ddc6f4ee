"""A class on the free ZeroGPU Space, through the running app: how many of its actions are answered, how soon, and
what GPU quota they spend.

    python -m bench.bench_classroom                        # lesson, lesson-used, hall, burst
    python -m bench.bench_classroom --scenes lesson --learners 10
    python -m bench.bench_classroom --scenes burst --repeat 20   # the same scene 20 times, each in a fresh app
    python -m bench.bench_classroom --baseline ../other    # the same scenes, and another checkout's app.py beside it
    python -m bench.bench_classroom --scenes cpu-fallback  # full-size replicas, no quota: each action on the CPU
    python -m bench.bench_classroom --scenes lesson --cold-start-s 12 --warm-for-s 20 --baseline-commit REV
                                                           # slow fresh workers, kept 20 s; REV's app beside this one

Starts `python app.py` as on a ZeroGPU Space: the real `spaces` package, every model resident on "cuda" under its
emulation and packed at launch, each GPU call in a worker process the package forks and reuses. Only Hugging Face's
side is imitated: a device service (`offline.zerogpu_service`) in this process, one per app, whose rules are
ZeroGPU's: the visitors without a token (every learner on a course site) share one quota; a call is admitted only
when the quota left covers what it asks x 1.5 (the client's factor on the RTX PRO 6000); a call still running past
that is aborted (its worker killed); a fresh worker starts `--cold-start-s` late and an idle one is kept
`--warm-for-s`. A worker's weights are read back onto this CPU (`offline/zerogpu_site`), and it computes there
without the CUDA emulation (`ZEROGPU_IMITATED_WORKER=cpu`: the emulation would multiply a tiny model's cost by ~15).
Learners are gradio_client sessions without a ZeroGPU token, calling the named endpoints as the pages do:

- lesson: LEARNERS work through the four concepts (each page's example, then where their own gesture ends and a
  question of their own: 8 actions), starting within 30 s of each other, on one anonymous day's quota (120 s);
  charged what each call asks (lesson) or what it held the GPU (lesson-used);
- lecture hall: HALL learners click once each within one minute, spread over the four concepts, half of them
  sending the page's example, on a fresh quota; burst: the same clicks all at once ("now click!");
- cpu-fallback (not by default): full-size replicas and no quota at all, one learner's lesson: what each action
  takes when it runs on the Space's CPU, from the click, and what the CPU copies cost at start-up.

Per scene it prints one line of JSON: actions answered of those sent, errors by message ("Queue is full", ZeroGPU's
refusals), actions answered on the Space's CPU after a refusal, answers from the shared result cache; from the
service, GPU calls admitted and refused, those aborted for running past what they asked (in the first and the
second half of the GPU calls, in the order they were scheduled), the calls that got a fresh worker, the quota they
were charged and the longest any call held a GPU; the seconds from the click to the answer (median, 95th percentile,
slowest, and per endpoint); and per GPU function, from the app's own account of each action (`ran_on`), the
durations its calls asked (before the 1.5 factor) and the longest one took. The service knows a call only by its
task id (the decorated function's `id()` in the app), so what a call held and was charged is not given per function.
The app's output, the service's log of GPU calls (`gpu-requests.jsonl`) and each action's figures (`actions.jsonl`) stay
in the scene's work folder, named on stderr.

Tiny random-weight replicas, yet a GPU call's work takes seconds here where a GPU takes hundredths: its worker
computes on this machine's CPU beside the Space's process and the other workers, so calls run past what they asked
(and are aborted) far more often than on ZeroGPU. These figures measure how the Space handles a class (workers,
queue, shared results, quota, fallbacks) on this machine, not ZeroGPU's speed. The Space's CPU is given the tests'
fixed pace (`PDR_CPU_PACE=1.7`), so actions are placed as on a CPU without native bf16. What each action takes on
a CPU or a GPU is in bench_app and bench_gpu; docs/deploy.md turns both into what a class can expect.

A baseline (`--baseline`, `--baseline-commit`) runs on the same harness, with a service of its own: its app must run
under the real `spaces` package.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from pathlib import Path

from bench import common
from offline.zerogpu_service import Rules, ZeroGpuService, environment

ANONYMOUS_DAY_S = 120  # a visitor without an account gets 2 minutes of ZeroGPU a day; tokenless ones share it
LEARNERS, HALL = 30, 60
EXAMPLES = common.ROOT / "examples"
QUESTION = "What changed on the table while the camera looked away?"
CALL_TIMEOUT_S = 600
# gradio_client makes every upload, join and download with httpx's one-off functions, each a new client that builds an
# SSL context, reading the CA bundle, even for http:// (23 ms of CPU here, where SSL_CERT_FILE names the system's
# bundle; `tests/test_gradio_client_costs.py`): some ten per action, spent on the Space's own 2 cores by learners who
# share its machine, as no browser would. The learners share one context (`ssl_verify`, which gradio_client hands
# to each of those calls as httpx's `verify`).
LEARNER_CLIENT = {"httpx_kwargs": {"timeout": CALL_TIMEOUT_S}, "ssl_verify": ssl.create_default_context()}


def lesson(learner: int) -> list[tuple[str, tuple]]:
    """One learner's lesson on the live pages, on the tiny replicas' 8x8 grid: each concept's example as the page opens
    it, then where the learner's own gesture ends (a ratio, a block's place, a tube's place, at the page's own sizes:
    the page plays the gesture back and runs the endpoint on release), and a question no other learner asks."""
    from gradio_client import handle_file

    image = handle_file(str(EXAMPLES / "images" / "chelsea.jpg"))
    video = handle_file(str(EXAMPLES / "videos" / "ball_behind_wall.mp4"))
    clip = handle_file(str(EXAMPLES / "videos" / "cup_covers_ball.mp4"))
    ratio = round(0.05 * (learner % 20), 2)  # one of the slider's 20 steps
    block = (learner % 5, learner // 5 % 5)  # a 4x4 block's place on the 8x8 grid
    tube = (learner % 7, learner // 7 % 7)  # a 2x2 tube's place
    return [
        ("/mae_reconstruct", (image, 0.75, 0, "vit-mae-base")),
        ("/mae_reconstruct", (image, ratio, 0, "vit-mae-base")),
        ("/compare_pixels_embeddings", (image, 4, 4, 4, 4)),
        ("/compare_pixels_embeddings", (image, *block, 4, 4)),
        ("/tube_predict", (video, 0.0, 16, 4, 0, 4, 5, 2, 2, 0, 7)),
        ("/tube_predict", (video, 0.0, 16, 4, 0, *tube, 2, 2, 0, 7)),
        ("/classify_action", (clip, 0.0, "auto")),
        ("/answer_question", (clip, 0.0, f"{QUESTION} ({learner + 1})", "auto")),
    ]


def one_click(learner: int) -> tuple[str, tuple]:
    """A lecture hall's click: on the learner's concept page (one of four), its example or a request of their own."""
    concept, own = learner % 4, learner // 4 % 2
    return lesson(learner)[2 * concept + own]


class App:
    """`python app.py` from `folder` as on a ZeroGPU Space, against a device service of its own in this process that
    keeps `rules` and records every GPU call."""

    def __init__(self, folder: Path, rules: Rules, work: Path, hf_cache: Path | None = None, cpu_pace: str = "1.7"):
        from bench.bench_app import _free_port

        self.output = work / "app.log"
        self.service = ZeroGpuService(rules, log_path=work / "gpu-requests.jsonl").__enter__()
        self.port = _free_port()
        env = {**os.environ, "HF_HUB_CACHE": str(hf_cache or tiny_replicas()), "HF_HUB_OFFLINE": "1",
               "GRADIO_ANALYTICS_ENABLED": "False",
               "GRADIO_TEMP_DIR": str(work / "gradio"),  # its own: another app's sweep of /tmp/gradio spares its files
               "PDR_SWEEP_DIR": str(work / "sweeps"),  # none kept from an earlier run: each run computes its own
               "OMP_WAIT_POLICY": "PASSIVE",  # the Space's and the workers' OpenMP threads sleep, not spin, on 2 cores
               # plain CPU workers: the CUDA emulation would cost every torch call in a worker its Python detour
               **environment(self.service, offload_dir=work / "offload", worker="cpu")}
        env.pop("PDR_DEVICE", None)  # the models are resident on "cuda", as on the Space
        if cpu_pace:  # where actions run, as the tests decide it (tiny replicas take no real CPU time to measure)
            env["PDR_CPU_PACE"] = cpu_pace
        self.log = open(self.output, "w")  # noqa: SIM115 (closed in stop)
        self.server = subprocess.Popen([sys.executable, "app.py", "--port", str(self.port)], cwd=folder, env=env,
                                       stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}/"
        try:
            self._wait_until_up()
        except BaseException:
            self.stop()
            raise

    def _wait_until_up(self, timeout_s: float = 300) -> None:
        from gradio_client import Client

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise RuntimeError(f"app.py exited:\n{self.output.read_text()[-3000:]}")
            try:
                Client(self.url, verbose=False)
                return
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(1)
        raise RuntimeError("app.py did not come up")

    def stop(self) -> None:
        self.server.terminate()
        try:
            self.server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait()
        self.service.__exit__(None, None, None)  # and the workers the app left behind
        self.log.close()


def tiny_replicas() -> Path:
    """Tiny random-weight replicas of every checkpoint under their hub ids, in a Hugging Face cache of their own."""
    import checkpoints
    from offline import replicas

    cache = Path(tempfile.gettempdir()) / "pdr-classroom-replicas"
    for ckpt in checkpoints.REGISTRY.values():
        if ckpt.hub_id and not (cache / f"models--{ckpt.hub_id.replace('/', '--')}").exists():
            replicas.write_checkpoint(ckpt, cache, size="tiny")
    return cache


def run_learners(url: str, plans: list[tuple[float, list[tuple[str, tuple]]]]) -> list[dict]:
    """Each plan (start delay, actions) in its own session, the pages open before the first delay starts; a record per
    action: seconds, outputs or error."""
    from gradio_client import Client

    records: list[dict] = []
    lock = threading.Lock()
    # The learners' pages, opened one after another, as patient as a browser: gradio_client's requests otherwise give
    # up after httpx's 5 s, and the first event of a new session builds its session state in the app's event loop
    # (a page does it when it opens), so a class of new sessions clicking at once waits there longer than that.
    clients = [Client(url, verbose=False, **LEARNER_CLIENT) for _ in plans]

    def learner(index: int, client, delay: float, actions) -> None:
        time.sleep(delay)
        for endpoint, args in actions:
            start = time.perf_counter()
            record = {"learner": index, "endpoint": endpoint, "at": start - began}
            try:
                outputs = client.submit(*args, api_name=endpoint).result(timeout=CALL_TIMEOUT_S)
                record.update(seconds=time.perf_counter() - start, outputs=outputs)
            except Exception as error:  # noqa: BLE001 - every failure is a figure here
                record.update(seconds=time.perf_counter() - start, error=_described(error))
            with lock:
                records.append(record)

    began = time.perf_counter()
    threads = [threading.Thread(target=learner, args=(index, client, *plan))
               for index, (client, plan) in enumerate(zip(clients, plans, strict=True))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return records


def summary(records: list[dict], calls: list[dict]) -> dict:
    """The figures of a scene: `records` the learners' actions, `calls` the service's record of each GPU call."""
    answered = [r for r in records if "outputs" in r]
    numbers = [r["outputs"][-1] for r in answered if isinstance(r["outputs"][-1], dict)]
    seconds = sorted(r["seconds"] for r in answered)
    admitted = [c for c in calls if c["outcome"] != "refused"]
    return {
        "answered": len(answered), "sent": len(records),
        "errors": dict(Counter(_error_kind(r["error"]) for r in records if "error" in r)),
        "on_cpu_after_refusal": sum(any(run["fallback"] for run in n.get("ran_on", [])) for n in numbers),
        "from_result_cache": sum(bool(n.get("from_result_cache")) for n in numbers),
        "gpu_calls": len(admitted), "gpu_refused": len(calls) - len(admitted),
        "gpu_aborted": [sum(c["outcome"] == "aborted" for c in half) for half in _halves(admitted)],
        "gpu_queue_timeouts": sum(c["outcome"] == "queue timeout" for c in admitted),
        "fresh_workers": sum(c["fresh_worker"] for c in admitted if c["outcome"] != "queue timeout"),
        "quota_charged_s": round(sum(c["charged"] for c in calls), 1),
        "held_max_s": round(max((c["held"] for c in admitted), default=0.0), 2),
        # per GPU function, as the app accounts for its actions: the seconds each call asked (before the client's
        # 1.5 factor) -> calls, and the longest a call took from the app's side
        "asks": {function: {"asked_s": dict(sorted(Counter(run["asked"] for run in runs).items())),
                            "took_max_s": round(max(run["seconds"] for run in runs), 2)}
                 for function, runs in _gpu_runs_by_function(numbers).items()},
        "seconds_median": round(statistics.median(seconds), 2) if seconds else None,
        "seconds_p95": round(seconds[int(0.95 * (len(seconds) - 1))], 2) if seconds else None,
        "seconds_max": round(seconds[-1], 2) if seconds else None,
        # per endpoint: the median and 95th percentile of its answered actions
        "by_endpoint": {endpoint: _median_p95(times) for endpoint, times in _seconds_by_endpoint(answered).items()},
    }


def write_actions(records: list[dict], path: Path) -> None:
    """One line per action, in the order they started: learner, endpoint, when it started (seconds from the first
    learner's start), seconds to its answer, and from the app's numbers where its GPU functions ran and whether a
    shared result answered it, and a question's own timings (or the error)."""
    with path.open("w") as out:
        for record in sorted(records, key=lambda r: r["at"]):
            line = {name: record[name] for name in ("learner", "endpoint")}
            line.update(at=round(record["at"], 2), seconds=round(record["seconds"], 2))
            numbers = record["outputs"][-1] if "outputs" in record else None
            if isinstance(numbers, dict):
                line.update(from_result_cache=bool(numbers.get("from_result_cache")),
                            ran_on=[{name: run[name] for name in ("function", "device", "fallback") if name in run}
                                    for run in numbers.get("ran_on", [])],
                            **{name: numbers[name] for name in ANSWER_TIMES if name in numbers})
            elif "error" in record:
                line["error"] = record["error"]
            out.write(json.dumps(line) + "\n")


# A question's own account: how many it was answered with, and when (from its start in the app) its inputs were ready,
# its first token came and its answer ended.
ANSWER_TIMES = ("answered_together", "inputs_seconds", "first_token_s", "total_s")


def _seconds_by_endpoint(records: list[dict]) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {}
    for record in records:
        times.setdefault(record["endpoint"], []).append(record["seconds"])
    return times


def _median_p95(times: list[float]) -> list[float]:
    times = sorted(times)
    return [round(statistics.median(times), 2), round(times[int(0.95 * (len(times) - 1))], 2)]


def _halves(calls: list[dict]) -> tuple[list[dict], list[dict]]:
    return calls[:len(calls) // 2], calls[len(calls) // 2:]


def _gpu_runs_by_function(numbers: list[dict]) -> dict[str, list[dict]]:
    """The app's account of its GPU runs (`ran_on`, device "gpu"), by function. An answer from the shared result
    cache repeats the runs of the action that computed it, and questions answered together share one run: those
    count once."""
    runs: dict[str, list[dict]] = {}
    for run in (run for n in numbers if not n.get("from_result_cache") for run in n.get("ran_on", [])
                if not run.get("shared")):
        if run["device"] == "gpu":
            runs.setdefault(run["function"], []).append(run)
    return runs


def _described(error: Exception) -> str:
    """The error's class and message, and the gradio_client step that raised it (an upload, the join, the stream)."""
    steps = [frame.name for frame in traceback.extract_tb(error.__traceback__) if "gradio_client" in frame.filename]
    return f"{type(error).__name__}: {error}" + (f" (gradio_client's {steps[-1]})" if steps else "")


def _error_kind(message: str) -> str:
    for kind in ("Queue is full", "GPU limit", "quota", "No GPU", "aborted"):
        if kind.lower() in message.lower():
            return kind
    return message[:100]


def cpu_fallback(folder: Path) -> dict:
    """On full-size replicas, with no GPU quota at all: one learner's lesson, every action on the Space's CPU,
    each timed from the click; and what the app said at start-up (the CPU copies' memory)."""
    import checkpoints

    cache = common.use_full_size_replicas([name for name, ckpt in checkpoints.REGISTRY.items() if ckpt.hub_id])
    work = Path(tempfile.mkdtemp(prefix="pdr-classroom-fallback-"))
    started = time.perf_counter()
    app = App(folder, Rules(quota_s=0), work, hf_cache=cache, cpu_pace="")  # this CPU's own pace, measured
    up_s = time.perf_counter() - started
    try:
        records = run_learners(app.url, [(0.0, lesson(0))])
    finally:
        app.stop()
    startup = next((line.split("Start-up: ", 1)[1] for line in app.output.read_text().splitlines()
                    if "Start-up: " in line), "")
    return {"up_s": round(up_s, 1), "start_up": startup.strip(),
            "actions": [(r["endpoint"], round(r["seconds"], 2),
                         sorted({run["device"] + (" after a refusal" if run["fallback"] else "")
                                 for run in r["outputs"][-1].get("ran_on", [])}) if "outputs" in r else r["error"])
                        for r in records]}


def scene(name: str, folder: Path, learners: int, hall: int, workers: dict, quota_s: float) -> dict:
    """Run one scene against a fresh app from `folder`, its GPU workers starting and kept as `workers` says (the
    service's cold_start_s and warm_for_s), on a quota of `quota_s`; returns its summary, with the seconds the app
    took to come up and the scene's own."""
    work = Path(tempfile.mkdtemp(prefix=f"pdr-classroom-{name}-"))
    print(f"{name}: the app's output and its GPU calls in {work}", file=sys.stderr, flush=True)
    rng = random.Random(0)
    if name.startswith("lesson"):
        charge = "requested" if name == "lesson" else "used"
        plans = [(rng.uniform(0, 30), lesson(i)) for i in range(learners)]
    else:
        charge = "used"
        spread = 60 if name == "hall" else 0
        plans = [(rng.uniform(0, spread), [one_click(i)]) for i in range(hall)]
    started = time.perf_counter()
    app = App(folder, Rules(quota_s=quota_s, abort=True, charge=charge, **workers), work)
    up_s = time.perf_counter() - started
    try:
        records = run_learners(app.url, plans)
        write_actions(records, work / "actions.jsonl")
        return {**summary(records, app.service.records()), "up_s": round(up_s, 1),
                "wall_s": round(time.perf_counter() - started - up_s, 1)}
    finally:
        app.stop()


def _checkout(commit: str) -> Path:
    """The files of `commit` in a temporary folder (its app runs there, against this checkout's imitated service)."""
    folder = Path(tempfile.mkdtemp(prefix="pdr-classroom-baseline-"))
    archive = subprocess.run(["git", "archive", commit], cwd=common.ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", nargs="*", default=["lesson", "lesson-used", "hall", "burst"],
                        choices=["lesson", "lesson-used", "hall", "burst", "cpu-fallback"])
    parser.add_argument("--learners", type=int, default=LEARNERS)
    parser.add_argument("--hall", type=int, default=HALL)
    parser.add_argument("--baseline", type=Path, help="another checkout whose app.py runs the same scenes beside this one")
    parser.add_argument("--baseline-commit", help="a commit of this repository whose app.py runs beside this one")
    parser.add_argument("--quota-s", type=float, default=ANONYMOUS_DAY_S, help="the quota visitors without a token "
                        "share (default: one anonymous day)")
    parser.add_argument("--cold-start-s", type=float, default=0.0, help="a fresh GPU worker's start (default 0)")
    parser.add_argument("--warm-for-s", type=float, default=math.inf, help="how long an idle worker is kept (default: "
                        "always)")
    parser.add_argument("--repeat", type=int, default=1, help="run each scene this many times, each in a fresh app")
    args = parser.parse_args()
    sys.path.insert(0, str(common.ROOT))
    baseline = args.baseline.resolve() if args.baseline else (_checkout(args.baseline_commit) if args.baseline_commit else None)
    apps = {"this app": common.ROOT, **({"baseline": baseline} if baseline else {})}
    workers = {"cold_start_s": args.cold_start_s, "warm_for_s": args.warm_for_s}
    for name in args.scenes:
        for run in range(1, args.repeat + 1):
            for label, folder in apps.items():
                result = (cpu_fallback(folder) if name == "cpu-fallback" else
                          scene(name, folder, args.learners, args.hall, workers, args.quota_s))
                number = f" {run}/{args.repeat}" if args.repeat > 1 else ""
                print(f"{name + number:12} {label:9} {json.dumps(result)}", flush=True)


if __name__ == "__main__":
    main()
