"""Hugging Face's side of ZeroGPU, imitated on this machine, for the real `spaces` package to talk to.

On a ZeroGPU Space, `spaces` (0.51.3) asks a device service over HTTP at SPACES_ZERO_DEVICE_API_URL
(`spaces/zero/api.py`, `spaces/zero/client.py`) for each call of a `@spaces.GPU` function:

- `POST /startup-report` once, at `launch()`;
- `POST /schedule?taskId&durationSeconds&token&enableQueue&gpuSize&cgroupPath`: admit the call (or refuse it: 429 with
  what is left and when, the `X-Approve-Result` header saying why), pick a GPU (`nvidiaIndex`, `nvidiaUUID`), say
  whether that GPU's worker of this function is `idle` (the client then reuses it, else it forks a fresh one) and
  hand out an `allowToken`; with every GPU busy, queue the call (a server-sent event stream of `ping`s ending in
  `succeeded` or `failed`);
- `POST /allow?allowToken&pid` from a fresh worker, before it touches the GPU;
- `POST /release?allowToken&fail` when the call ended (`fail`: an exception or an abort).

`ZeroGpuService` answers those, with the rules a test or a bench sets (`Rules`): the quota visitors without a token
share and each token's own, the GPUs of the Space, the queue's patience, how long an idle worker stays, whether an
overdue call is aborted (the service kills its worker: the client never does), and what the quota is charged. The
client multiplies each duration by its GPU model's factor before sending it (`spaces/zero/config.py`); the service
admits and charges what it receives. Everything else is the real package, in the app's own process; the one step
that needs NVIDIA, a worker's move of the packed weights onto its GPU, is done onto the CPU by
`offline/zerogpu_site/sitecustomize.py` (`environment()` puts it on the app's path).

Each scheduled call is recorded (`calls`, and as JSON lines in `log_path` when given): its function (`taskId`, the
id of the function object in the app), the seconds received, the visitor's token, the GPU and whether its worker was
reused, the worker's pid, how long it held the GPU and what the quota was charged, and how it ended.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

SITE = Path(__file__).resolve().parent / "zerogpu_site"  # the worker's move onto the CPU (a sitecustomize)
RTX_PRO_6000 = "NVIDIA RTX PRO 6000 Blackwell Server Edition"  # ZeroGPU's GPUs since 2026-05 (factor 1.5)
H200 = "NVIDIA H200"  # before (factor 1.0)
DAY_S = 24 * 3600
EVENT_GAP_S = 0.05  # between a ping and the next event of a queued call


@dataclass(frozen=True)
class Rules:
    """What the service allows. Infinite quotas by default; `charge` is "used" (the seconds a call held its GPU, at
    most what it asked) or "requested" (what it asked)."""

    quota_s: float = math.inf  # the seconds visitors without a token share (an anonymous day: 120)
    token_quota_s: float = math.inf  # each token's own seconds
    gpus: int = 16  # GPUs that run this Space's calls at once; more calls wait in the queue
    queue_timeout_s: float = 60.0  # how long a queued call waits for a GPU before `failed`
    abort: bool = True  # a call still running past the seconds it asked is aborted: its worker is killed
    abort_grace_s: float = 0.5
    warm_for_s: float = math.inf  # how long a released worker stays idle for its function's next call on its GPU
    cold_start_s: float = 0.0  # a fresh worker's `/allow` answers this late: the start of a GPU worker on ZeroGPU
    charge: str = "used"
    max_duration_s: float = 600.0  # a longer request is an illegal duration


@dataclass
class Call:
    """One scheduled call, from `/schedule` to its release or abort."""

    task_id: int
    seconds: int  # as received: the app's duration times the client's factor
    size: str
    signed_in: bool
    token: str | None
    outcome: str = "queued"  # queued, running, ok, failed, aborted, refused (quota, illegal duration), queue timeout
    gpu: int | None = None
    reused_worker: bool = False
    pid: int | None = None
    scheduled: float = field(default_factory=time.monotonic)
    started: float | None = None
    held: float = 0.0
    charged: float = 0.0
    allow_token: str = field(default_factory=lambda: uuid.uuid4().hex)

    def record(self) -> dict:
        fields = ("task_id", "seconds", "size", "signed_in", "outcome", "gpu", "reused_worker", "pid", "held", "charged")
        return {name: getattr(self, name) for name in fields} | {"fresh_worker": not self.reused_worker}


@dataclass
class _Gpu:
    running: Call | None = None
    idle: dict[int, tuple[int, float]] = field(default_factory=dict)  # task id -> (its released worker's pid, when)


class ZeroGpuService:
    """The device service on a free local port, in a thread of this process (`with ZeroGpuService(rules) as s:`)."""

    def __init__(self, rules: Rules = Rules(), log_path: Path | None = None):
        self.rules, self.log_path = rules, log_path
        self.calls: list[Call] = []
        self.startup_reports = 0
        self._spent: dict[str | None, float] = {}  # token (None: no token) -> seconds charged or set aside
        self._gpus = [_Gpu() for _ in range(rules.gpus)]
        self._by_token: dict[str, Call] = {}
        self._state = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._threads = [threading.Thread(target=self._server.serve_forever, daemon=True),
                         threading.Thread(target=self._abort_overdue, daemon=True)]
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> ZeroGpuService:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stopped.set()
        self._server.shutdown()
        self._server.server_close()
        with self._state:  # the workers the Space leaves behind go with the service's GPUs
            pids = {pid for gpu in self._gpus for pid, _ in gpu.idle.values()}
            pids |= {gpu.running.pid for gpu in self._gpus if gpu.running and gpu.running.pid}
        for pid in pids:
            _kill(pid)

    def reset_quotas(self) -> None:
        with self._state:
            self._spent.clear()

    def records(self) -> list[dict]:
        with self._state:
            return [call.record() for call in self.calls]

    # The API.

    def schedule(self, params: dict) -> tuple[int, dict, dict | None, Call | None]:
        """(HTTP status, headers, JSON body, or None with the queued call to stream)."""
        token = params.get("token")
        call = Call(task_id=int(params["taskId"]), seconds=int(params.get("durationSeconds", 60)),
                    size=params.get("gpuSize", "large"), signed_in=token is not None, token=token)
        credits = call.seconds * (2 if call.size == "xlarge" else 1)
        quota = self.rules.quota_s if token is None else self.rules.token_quota_s
        with self._state:
            self.calls.append(call)
            if credits > self.rules.max_duration_s:
                call.outcome = "refused"
                return self._refused(call, "illegal-duration", left=0, wait_s=-1)
            left = quota - self._spent.get(token, 0.0)
            if credits > left:
                call.outcome = "refused"
                return self._refused(call, "quota-exceeded", left=max(0, math.floor(left)), wait_s=DAY_S - 60)
            self._spent[token] = self._spent.get(token, 0.0) + credits  # set aside while it runs
            if (gpu := self._free_gpu(call)) is not None:
                return 200, {}, self._start(call, gpu), None
            if params.get("enableQueue", "true").lower() != "true":
                self._give_back(call)
                call.outcome = "refused"
                return 503, {}, {"detail": "No GPU available"}, None
        return 200, {"X-Queuing-Reason": "node"}, None, call

    def wait_for_gpu(self, call: Call):
        """A queued call's server-sent events: a ping a second until a GPU is free (`succeeded`) or the queue's
        patience is spent (`failed`). The client parses each chunk it reads as one event: an event that followed a
        ping at once would arrive in the ping's chunk and be lost, so the answer never comes right after a ping."""
        deadline = time.monotonic() + self.rules.queue_timeout_s
        while True:
            with self._state:
                if (gpu := self._free_gpu(call)) is not None:
                    yield "succeeded", json.dumps(self._start(call, gpu))
                    return
                if (left := deadline - time.monotonic()) <= 0:
                    self._give_back(call)
                    call.outcome = "queue timeout"
                    self._log(call)
                    yield "failed", None
                    return
                if self._state.wait(timeout=min(1.0, left)) or time.monotonic() >= deadline:
                    continue  # a GPU may be free, or the patience spent: answer without a ping before it
            yield "ping", None
            time.sleep(EVENT_GAP_S)

    def allow(self, allow_token: str, pid: int) -> int:
        time.sleep(self.rules.cold_start_s)  # within the call's time, as a GPU worker's start is
        with self._state:
            call = self._by_token.get(allow_token)
            if call is None:
                return 404
            call.pid = pid
            if call.outcome == "aborted":  # overdue before its worker even started
                _kill(pid)
        return 200

    def release(self, allow_token: str, fail: bool) -> int:
        with self._state:
            call = self._by_token.pop(allow_token, None)
            if call is None or call.outcome != "running":
                return 404  # aborted, or released before
            call.outcome = "failed" if fail else "ok"
            gpu = self._gpus[call.gpu]
            if fail:  # the client keeps no worker after a failure: the Space's copy of it goes with the GPU
                _kill(call.pid)
            elif call.pid is not None:
                gpu.idle[call.task_id] = (call.pid, time.monotonic())
            self._end(call)
        return 200

    # Inside.

    def _refused(self, call: Call, why: str, left: int, wait_s: float):
        self._log(call)
        return 429, {"X-Approve-Result": why}, {"left": left, "wait": wait_s}, None

    def _free_gpu(self, call: Call) -> int | None:
        """A free GPU, that with this function's idle worker first."""
        free = [i for i, gpu in enumerate(self._gpus) if gpu.running is None]
        warm = [i for i in free if self._warm_worker(i, call.task_id)]
        return (warm or free or [None])[0]

    def _warm_worker(self, gpu: int, task_id: int) -> int | None:
        pid, released = self._gpus[gpu].idle.get(task_id, (None, 0.0))
        if pid is None or time.monotonic() - released > self.rules.warm_for_s or not _alive(pid):
            return None
        return pid

    def _start(self, call: Call, gpu: int) -> dict:
        pid = self._warm_worker(gpu, call.task_id)
        stale = self._gpus[gpu].idle.pop(call.task_id, (None, 0))[0]
        if pid is None and stale is not None:
            _kill(stale)  # the client forks a fresh worker for this GPU and forgets the old one
        call.gpu, call.reused_worker, call.pid = gpu, pid is not None, pid
        call.outcome, call.started = "running", time.monotonic()
        self._gpus[gpu].running = call
        self._by_token[call.allow_token] = call
        return {"idle": pid is not None, "nvidiaIndex": gpu, "nvidiaUUID": f"GPU-imitated-{gpu}",
                "allowToken": call.allow_token}

    def _end(self, call: Call) -> None:
        call.held = time.monotonic() - call.started
        credits = call.seconds * (2 if call.size == "xlarge" else 1)
        used = min(call.held, call.seconds) * (2 if call.size == "xlarge" else 1)
        call.charged = credits if self.rules.charge == "requested" or call.outcome == "aborted" else used
        self._spent[call.token] += call.charged - credits
        self._gpus[call.gpu].running = None
        self._state.notify_all()
        self._log(call)

    def _give_back(self, call: Call) -> None:
        self._spent[call.token] -= call.seconds * (2 if call.size == "xlarge" else 1)

    def _abort_overdue(self) -> None:
        while not self._stopped.wait(0.2):
            if not self.rules.abort:
                continue
            with self._state:
                now = time.monotonic()
                for gpu in self._gpus:
                    call = gpu.running
                    if call and now - call.started > call.seconds + self.rules.abort_grace_s:
                        call.outcome = "aborted"  # its token stays known: a worker that asks `/allow` later is killed
                        if call.pid is not None:
                            _kill(call.pid)
                        self._end(call)

    def _log(self, call: Call) -> None:
        if self.log_path is not None:
            with open(self.log_path, "a") as log:
                log.write(json.dumps(call.record() | {"ended": round(time.time(), 3)}) + "\n")


def _handler(service: ZeroGpuService):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # a streamed body ends when the connection closes

        def log_message(self, *_):  # quiet
            pass

        def do_POST(self):  # noqa: N802 (http.server's name)
            url = urlparse(self.path)
            params = {key: values[-1] for key, values in parse_qs(url.query).items()}
            if url.path == "/startup-report":
                service.startup_reports += 1
                return self._json(200, {})
            if url.path == "/schedule":
                status, headers, body, queued = service.schedule(params)
                if queued is None:
                    return self._json(status, body, headers)
                return self._stream(service.wait_for_gpu(queued), headers)
            if url.path == "/allow":
                return self._json(service.allow(params["allowToken"], int(params["pid"])), {})
            if url.path == "/release":
                fail = params.get("fail", "false").lower() == "true"
                return self._json(service.release(params["allowToken"], fail), {})
            return self._json(404, {"detail": "Not Found"})

        def do_GET(self):  # noqa: N802
            if urlparse(self.path).path == "/queue-size":
                return self._json(200, 0)
            return self._json(404, {"detail": "Not Found"})

        def _json(self, status: int, body, headers: dict | None = None):
            data = json.dumps(body).encode()
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, events, headers: dict):
            self.send_response(200)
            for name, value in {"Content-Type": "text/event-stream", **headers}.items():
                self.send_header(name, value)
            self.end_headers()
            with contextlib.suppress(OSError):  # the visitor left
                for event, data in events:
                    self.wfile.write((f"event: {event}\n" + (f"data: {data}\n" if data else "") + "\n").encode())
                    self.wfile.flush()

    return Handler


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    with contextlib.suppress(OSError):  # a zombie (exited, not reaped by its parent yet) is gone too
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    return True


def _kill(pid: int | None) -> None:
    """End a worker, unless it is gone already (a pid that ended may be another process's before long)."""
    if pid is not None and _alive(pid):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def visitor_token(name: str) -> str:
    """An X-IP-Token as the Hub's handshake gives a signed-in visitor (a JWT; the service trusts it here)."""
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none'})}.{part({'user': name})}.signature"


def environment(service: ZeroGpuService, *, gpu_model: str = RTX_PRO_6000, offload_dir: Path,
                worker: str = "emulated") -> dict[str, str]:
    """The environment variables of an app that runs as on a ZeroGPU Space, against `service`: `spaces` switched on,
    pointed at the service, packing to `offload_dir`; its workers' weights moved onto the CPU, under the CUDA emulation
    or not (`worker`: "emulated" or "cpu", see `offline/zerogpu_site`); the driver reporting `gpu_model` (its duration
    factor is the client's). Add them to the app's environment; PYTHONPATH is extended."""
    return {"SPACES_ZERO_GPU": "true", "SPACES_ZERO_DEVICE_API_URL": service.url, "ZEROGPU_OFFLOAD_DIR": str(offload_dir),
            "ZEROGPU_IMITATED_GPU": gpu_model, "ZEROGPU_IMITATED_WORKER": worker,
            "PYTHONPATH": os.pathsep.join(p for p in (str(SITE), os.environ.get("PYTHONPATH", "")) if p)}
