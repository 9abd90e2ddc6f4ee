"""A fake `spaces` package that imitates ZeroGPU's `spaces.GPU` contract on a CPU machine, for tests.

Put `tests/fake_spaces` first on `sys.path` (or PYTHONPATH) so that `import spaces` finds this
module instead of the real one. What it imitates, as spaces 0.51.3 does it
(spaces/zero/decorator.py, spaces/zero/wrappers.py and spaces/zero/client.py):

- `GPU` works bare (`@GPU`) or with keywords (`@GPU(duration=..., size=...)`). Unless
  SPACES_ZERO_GPU is "1", "t" or "true" when a function is decorated, it returns the function itself.
- Each call first sizes its duration in the caller's process: a callable `duration` is called with
  the call's own arguments. The result is recorded in `requested` as the whole seconds that the real
  client schedules (`timedelta.seconds`: 2.7 becomes 2; a request under 1 s is refused here), and
  appended to the file named by FAKE_SPACES_LOG, when set, with the caller's torch thread count and
  what became of the call.
- Admission, as ZeroGPU's scheduler decides it (`Rules`, read from the environment at each call): the
  request is multiplied by the hardware's duration factor (1.5 on the RTX PRO 6000 Blackwell that
  ZeroGPU runs on, `spaces/zero/configs.json`), and the call is refused unless the visitor's quota left
  covers it. Visitors without a ZeroGPU token (no `X-IP-Token` header on the gradio request: every
  visitor of an iframe on another site) share one quota; each token has its own. The refusals carry
  the real titles and messages: "ZeroGPU quota exceeded" with "Space app has reached its GPU limit..."
  (no token) or "You have exceeded your free ZeroGPU quota (Ns requested vs. Ms left)..." (a token);
  with a limited number of GPUs a call waits for one, up to the queue timeout, then "No GPU was
  available after 60s" (titled "ZeroGPU quota exceeded" without a token, "ZeroGPU queue timeout"
  with one). What an admitted call asks is set aside until it ends (ZeroGPU counts the credits of running
  tasks), then the quota is charged the seconds it held its GPU, or what it asked
  (FAKE_SPACES_CHARGE=requested), times the factor.
- The arguments are pickled (one that does not pickle, a lambda say, raises PicklingError in the
  caller, as on ZeroGPU), a child process is forked ('fork' context), and the function runs there
  in a new thread on unpickled copies, as ZeroGPU runs it. That thread matters: a forked child's
  first parallel CPU torch op hangs only in the thread that forked, if that thread had used torch's
  OpenMP pool before the fork (libgomp). Its result, or each item of a generator function, is
  pickled back.
- A `gr.Error` raised in the function reaches the caller as itself, message kept. Any other
  exception becomes `gr.Error(<its class name>, title="ZeroGPU worker error")`, its traceback
  printed: ZeroGPU hides the message of every exception that is not a `gr.Error`.
- A child that has not answered within its duration (FAKE_SPACES_ABORT=1) or within `timeout`
  seconds (a hang) is killed and the call raises `gr.Error("GPU task aborted")`.
- Workers' start and reuse, as a ZeroGPU Space may see them: a call that finds no idle worker of its
  function released within FAKE_SPACES_WARM_FOR_S (default: forever) gets a fresh one, which first
  takes FAKE_SPACES_COLD_START_S (default 0) to start, within the call's duration. A call that ends
  without an abort leaves its worker idle.
- async functions are refused at decoration (NotImplementedError); a GPU function called inside
  a worker runs directly.

It differs from ZeroGPU in that every call gets a fresh child, only its start imitated (ZeroGPU reuses an
idle worker of the same function, so state left in a worker survives some calls and not others: never rely on it);
values travel as plain pickles (ZeroGPU's multiprocessing queues share CPU tensors' memory instead);
progress reported in the child is not forwarded; there is no CUDA emulation; and the quota never
refills (ZeroGPU's refills over a day).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import math
import multiprocessing
import os
import pickle
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from datetime import timedelta

__all__ = ["GPU", "Request", "Rules", "requested", "reset_quotas", "timeout"]

# spaces 0.51.3, spaces/zero/client.py
_EXAMPLES_RETRY = "Try re-running outside of examples if it happened after clicking one"
_NO_GPU_IN_QUEUE = "No GPU was available after 60s"


@dataclass(frozen=True)
class Request:
    """One call's request for a GPU, as ZeroGPU's scheduler would receive it."""

    function: str
    seconds: int
    size: str


@dataclass(frozen=True)
class Rules:
    """What ZeroGPU allows, read from the environment at each call (unset: no limit)."""

    quota_s: float  # FAKE_SPACES_QUOTA_S: the GPU seconds visitors without a token share
    token_quota_s: float  # FAKE_SPACES_TOKEN_QUOTA_S: each token's own GPU seconds
    factor: float  # FAKE_SPACES_DURATION_FACTOR: requests and charges are multiplied by it (default 1.5)
    charge_requested: bool  # FAKE_SPACES_CHARGE=requested: charge what a call asked, not what it used
    gpus: int  # FAKE_SPACES_GPUS: GPU calls at once; more wait in the queue
    queue_timeout_s: float  # FAKE_SPACES_QUEUE_TIMEOUT_S: how long a call waits for a GPU (default 60)
    abort: bool  # FAKE_SPACES_ABORT=1: a call that runs past its duration is aborted
    cold_start_s: float  # FAKE_SPACES_COLD_START_S: a fresh worker's start, before the function runs
    warm_for_s: float  # FAKE_SPACES_WARM_FOR_S: how long an idle worker is kept

    @classmethod
    def from_environment(cls) -> Rules:
        env = os.environ.get
        return cls(float(env("FAKE_SPACES_QUOTA_S", "inf")), float(env("FAKE_SPACES_TOKEN_QUOTA_S", "inf")),
                   float(env("FAKE_SPACES_DURATION_FACTOR", "1.5")), env("FAKE_SPACES_CHARGE", "used") == "requested",
                   int(env("FAKE_SPACES_GPUS", "0")) or sys.maxsize, float(env("FAKE_SPACES_QUEUE_TIMEOUT_S", "60")),
                   env("FAKE_SPACES_ABORT", "") == "1", float(env("FAKE_SPACES_COLD_START_S", "0")),
                   float(env("FAKE_SPACES_WARM_FOR_S", "inf")))


requested: list[Request] = []  # every active call appends one; tests read and clear it
LOG_ENV = "FAKE_SPACES_LOG"  # a file path: each request is also appended there as a JSON line, with the
# caller's torch thread count (`parent_torch_threads`), for tests that run the app in a subprocess
timeout = 300.0  # seconds a child may take before it counts as hung

_FORK = multiprocessing.get_context("fork")
_SIZES = ("large", "xlarge")
_in_worker = False  # set in the forked child: nested GPU functions run directly there
_spent: dict[str | None, float] = {}  # token (None: no token) -> quota seconds charged, or set aside for running calls
_busy = {"gpus": 0}  # GPU calls running now
_idle_workers: dict[str, list[float]] = {}  # function -> when each of its idle workers was released
_state = threading.Condition()


def reset_quotas() -> None:
    """Give every visitor their whole quota again (tests)."""
    with _state:
        _spent.clear()
        _idle_workers.clear()


def GPU(fn=None, *, duration=60, size="large"):
    """Run `fn` in a forked worker when SPACES_ZERO_GPU is set; return it unchanged otherwise."""
    if fn is None:
        return functools.partial(GPU, duration=duration, size=size)
    if os.environ.get("SPACES_ZERO_GPU", "").lower() not in ("1", "t", "true"):
        return fn
    if inspect.iscoroutinefunction(fn):
        raise NotImplementedError("ZeroGPU does not run async functions")
    if size not in _SIZES:
        raise ValueError(f"size must be one of {_SIZES}, not {size!r}")

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def stream(*args, **kwargs):
            if _in_worker:
                yield from fn(*args, **kwargs)
                return
            with _scheduled(fn, duration, size, args, kwargs) as call:
                child, receiver = _fork(fn, args, kwargs, streams=True, start_s=call.start_s)
                deadline = call.deadline
                try:
                    while (item := _receive(child, receiver, deadline)) is not _END:
                        yield item
                finally:
                    _finish(child, receiver)

        return stream

    @functools.wraps(fn)
    def call(*args, **kwargs):
        if _in_worker:
            return fn(*args, **kwargs)
        with _scheduled(fn, duration, size, args, kwargs) as call:
            child, receiver = _fork(fn, args, kwargs, streams=False, start_s=call.start_s)
            try:
                return _receive(child, receiver, call.deadline)
            finally:
                _finish(child, receiver)

    return call


class _scheduled:
    """One GPU call from its request to its release: admission, a GPU from the queue, the charge."""

    def __init__(self, fn, duration, size, args, kwargs):
        self.rules = Rules.from_environment()
        self.token = _visitor_token()
        self.function = fn.__qualname__
        value = duration(*args, **kwargs) if callable(duration) else duration
        value = 60 if value is None else value
        self.seconds = (value if isinstance(value, timedelta) else timedelta(seconds=value)).seconds
        if self.seconds < 1:
            raise ValueError(f"{fn.__qualname__} asks for {value!r} s of GPU, which ZeroGPU schedules as {self.seconds} s")
        self.request = Request(self.function, self.seconds, size)
        self.asked = round(self.seconds * self.rules.factor)  # what the client sends the scheduler
        self.outcome, self.started, self.start_s, self.deadline = "refused", None, 0.0, 0.0

    def __enter__(self) -> _scheduled:
        requested.append(self.request)
        try:
            self._admit()
        except BaseException:
            self._log(charged=0.0)
            raise
        try:
            self._take_a_gpu()
        except BaseException:
            self._charge(0.0)
            self._log(charged=0.0)
            raise
        self.started = time.monotonic()
        self.start_s = 0.0 if self._warm_worker() else self.rules.cold_start_s
        self.deadline = self.started + (self.asked if self.rules.abort else timeout)
        return self

    def _warm_worker(self) -> bool:
        """Take the idle worker of this function released last, if it is still kept."""
        with _state:
            idle = [t for t in _idle_workers.get(self.function, []) if self.started - t < self.rules.warm_for_s]
            _idle_workers[self.function] = idle
            if not idle:
                return False
            idle.pop()
            return True

    def __exit__(self, kind, error, _):
        held = time.monotonic() - self.started
        charged = self.asked if self.rules.charge_requested else min(held * self.rules.factor, self.asked)
        with _state:
            _busy["gpus"] -= 1
        self._charge(charged)
        self.outcome = "ok" if error is None else ("aborted" if "aborted" in str(error) else "error")
        if self.outcome != "aborted":  # its worker stays, idle
            with _state:
                _idle_workers.setdefault(self.function, []).append(time.monotonic())
        self._log(charged=charged, held=held)

    def _admit(self) -> None:
        """Set aside what the call asks, or refuse it as ZeroGPU does."""
        quota = self.rules.quota_s if self.token is None else self.rules.token_quota_s
        with _state:
            left = quota - _spent.get(self.token, 0.0)
            if self.asked <= left:
                _spent[self.token] = _spent.get(self.token, 0.0) + self.asked
                return
        if self.token is None:
            raise _zerogpu_error("ZeroGPU quota exceeded", f"Space app has reached its GPU limit. {_EXAMPLES_RETRY}")
        raise _zerogpu_error("ZeroGPU quota exceeded", f"You have exceeded your free ZeroGPU quota ({self.asked}s "
                             f"requested vs. {max(0, math.floor(left))}s left). Try again in 23:59:00. ")

    def _charge(self, seconds: float) -> None:
        """Charge the quota `seconds` in place of what was set aside."""
        with _state:
            _spent[self.token] += seconds - self.asked
            _state.notify_all()

    def _take_a_gpu(self) -> None:
        with _state:
            if not _state.wait_for(lambda: _busy["gpus"] < self.rules.gpus, timeout=self.rules.queue_timeout_s):
                self.outcome = "queue timeout"
                if self.token is None:
                    raise _zerogpu_error("ZeroGPU quota exceeded", f"{_NO_GPU_IN_QUEUE}. {_EXAMPLES_RETRY}")
                raise _zerogpu_error("ZeroGPU queue timeout", f"{_NO_GPU_IN_QUEUE} [Subscribe to Pro]"
                                     "(https://huggingface.co/subscribe/pro?from=ZeroGPU) to get the highest priority in "
                                     "ZeroGPU queues.")
            _busy["gpus"] += 1

    def _log(self, charged: float, held: float = 0.0) -> None:
        if log_path := os.environ.get(LOG_ENV):  # a test that runs the app in a subprocess reads the requests here
            torch = sys.modules.get("torch")
            threads = torch.get_num_threads() if torch is not None else None
            line = {**dataclasses.asdict(self.request), "parent_torch_threads": threads, "signed_in": self.token is not None,
                    "asked": self.asked, "outcome": self.outcome, "held": round(held, 3), "charged": round(charged, 3),
                    "fresh_worker": self.start_s > 0, "ended": round(time.time(), 3)}
            with open(log_path, "a") as log:
                log.write(json.dumps(line) + "\n")


def _visitor_token() -> str | None:
    """The visitor's ZeroGPU token, as spaces reads it: the `X-IP-Token` header of the gradio request."""
    gradio = sys.modules.get("gradio")
    if gradio is None:
        return None
    from gradio.context import LocalContext

    request = LocalContext.request.get(None)
    headers = getattr(request, "headers", None) or {}
    return headers.get("x-ip-token")


_END = object()  # stands for the end of a stream in the parent


def _fork(fn, args, kwargs, streams, start_s=0.0):
    try:  # in the caller, before any child starts, as ZeroGPU's argument queue does (spaces/utils.py)
        payload = pickle.dumps((args, kwargs))
    except Exception as exc:
        if isinstance(exc, pickle.PicklingError) or "pickle" not in str(exc):
            raise
        raise pickle.PicklingError(str(exc)) from exc
    receiver, sender = _FORK.Pipe(duplex=False)
    child = _FORK.Process(target=_work, args=(fn, payload, sender, streams, start_s), daemon=True)
    child.start()
    sender.close()
    return child, receiver


def _work(fn, payload, sender, streams, start_s):
    """In the child: start (a fresh worker's `start_s`), run `fn` in a new thread, as ZeroGPU's worker does, and send
    back what it gives."""
    global _in_worker
    _in_worker = True
    time.sleep(start_s)
    args, kwargs = pickle.loads(payload)

    def run():
        try:
            if streams:
                for item in fn(*args, **kwargs):
                    _send(sender, ("item", item))
                _send(sender, ("end", None))
            else:
                _send(sender, ("result", fn(*args, **kwargs)))
        except Exception as exc:
            _send(sender, ("error", _describe(exc)))

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    sender.close()


def _send(sender, message):
    try:
        data = pickle.dumps(message)
    except Exception as exc:  # a result that does not pickle fails the call, as on ZeroGPU
        data = pickle.dumps(("error", _describe(exc)))
    sender.send_bytes(data)


def _describe(exc):
    """A `gr.Error` travels as itself; of any other exception only its class name and traceback."""
    gradio = sys.modules.get("gradio")  # a gr.Error can only exist once gradio is imported
    if gradio is not None and isinstance(exc, gradio.Error):
        return exc
    return (type(exc).__name__, "".join(traceback.format_exception(exc)))


def _receive(child, receiver, deadline):
    if not receiver.poll(max(0.0, deadline - time.monotonic())):
        raise _zerogpu_error("ZeroGPU worker error", "GPU task aborted")  # _finish kills the child
    try:
        kind, value = pickle.loads(receiver.recv_bytes())
    except EOFError:  # the child died without answering
        raise _zerogpu_error("ZeroGPU worker error", "GPU task aborted") from None
    if kind == "error":
        if not isinstance(value, tuple):
            raise value
        name, formatted = value
        print(formatted)
        raise _zerogpu_error("ZeroGPU worker error", name)
    return _END if kind == "end" else value


def _finish(child, receiver):
    receiver.close()  # a child still streaming fails on its next send and ends
    child.join(timeout=1)
    if child.is_alive():  # a hung child, or one busy long after its stream was closed
        child.kill()
        child.join()


def _zerogpu_error(title, message):
    """A `gr.Error` as `spaces` raises them (spaces/zero/gradio.py `error`)."""
    import gradio as gr

    return gr.Error(message, title=title, print_exception=False)
