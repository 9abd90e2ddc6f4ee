"""A fake `spaces` package that imitates ZeroGPU's `spaces.GPU` contract on a CPU machine, for tests.

Put `tests/fake_spaces` first on `sys.path` (or PYTHONPATH) so that `import spaces` finds this
module instead of the real one. What it imitates, as spaces 0.51.3 does it
(spaces/zero/decorator.py and spaces/zero/wrappers.py):

- `GPU` works bare (`@GPU`) or with keywords (`@GPU(duration=..., size=...)`). Unless
  SPACES_ZERO_GPU is "1", "t" or "true" when a function is decorated, it returns the function itself.
- Each call first sizes its duration in the caller's process: a callable `duration` is called with
  the call's own arguments. The result is recorded in `requested` as the whole seconds that the real
  client schedules (`timedelta.seconds`: 2.7 becomes 2; a request under 1 s is refused here), and
  appended to the file named by FAKE_SPACES_LOG, when set, with the caller's torch thread count.
- The arguments are pickled (one that does not pickle, a lambda say, raises PicklingError in the
  caller, as on ZeroGPU), a child process is forked ('fork' context), and the function runs there
  in a new thread on unpickled copies, as ZeroGPU runs it. That thread matters: a forked child's
  first parallel CPU torch op hangs only in the thread that forked, if that thread had used torch's
  OpenMP pool before the fork (libgomp). Its result, or each item of a generator function, is
  pickled back.
- A `gr.Error` raised in the function reaches the caller as itself, message kept. Any other
  exception becomes `gr.Error(<its class name>, title="ZeroGPU worker error")`, its traceback
  printed: ZeroGPU hides the message of every exception that is not a `gr.Error`.
- A child that has not answered within `timeout` seconds is killed and the call raises
  `gr.Error("GPU task aborted")`, so a hang in the child fails the test instead of stalling it.
- async functions are refused at decoration (NotImplementedError); a GPU function called inside
  a worker runs directly.

It differs from ZeroGPU in that every call gets a fresh child (ZeroGPU reuses an idle worker of the
same function, so state left in a worker survives some calls and not others: never rely on it);
values travel as plain pickles (ZeroGPU's multiprocessing queues share CPU tensors' memory instead);
progress reported in the child is not forwarded; and there is no CUDA emulation, queue, quota, or
duration limit other than `timeout`.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import multiprocessing
import os
import pickle
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from datetime import timedelta

__all__ = ["GPU", "Request", "requested", "timeout"]


@dataclass(frozen=True)
class Request:
    """One call's request for a GPU, as ZeroGPU's scheduler would receive it."""

    function: str
    seconds: int
    size: str


requested: list[Request] = []  # every active call appends one; tests read and clear it
LOG_ENV = "FAKE_SPACES_LOG"  # a file path: each request is also appended there as a JSON line, with the
# caller's torch thread count (`parent_torch_threads`), for tests that run the app in a subprocess
timeout = 300.0  # seconds a child may take before it counts as hung

_FORK = multiprocessing.get_context("fork")
_SIZES = ("large", "xlarge")
_in_worker = False  # set in the forked child: nested GPU functions run directly there


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
            _request(fn, duration, size, args, kwargs)
            child, receiver = _fork(fn, args, kwargs, streams=True)
            deadline = time.monotonic() + timeout
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
        _request(fn, duration, size, args, kwargs)
        child, receiver = _fork(fn, args, kwargs, streams=False)
        try:
            return _receive(child, receiver, time.monotonic() + timeout)
        finally:
            _finish(child, receiver)

    return call


def _request(fn, duration, size, args, kwargs):
    """Size the call as ZeroGPU does: a callable duration gets the call's own arguments."""
    value = duration(*args, **kwargs) if callable(duration) else duration
    value = 60 if value is None else value
    seconds = (value if isinstance(value, timedelta) else timedelta(seconds=value)).seconds
    if seconds < 1:
        raise ValueError(f"{fn.__qualname__} asks for {value!r} s of GPU, which ZeroGPU schedules as {seconds} s")
    request = Request(fn.__qualname__, seconds, size)
    requested.append(request)
    if log_path := os.environ.get(LOG_ENV):  # a test that runs the app in a subprocess reads the requests here
        torch = sys.modules.get("torch")
        threads = torch.get_num_threads() if torch is not None else None
        with open(log_path, "a") as log:
            log.write(json.dumps({**dataclasses.asdict(request), "parent_torch_threads": threads}) + "\n")


_END = object()  # stands for the end of a stream in the parent


def _fork(fn, args, kwargs, streams):
    try:  # in the caller, before any child starts, as ZeroGPU's argument queue does (spaces/utils.py)
        payload = pickle.dumps((args, kwargs))
    except Exception as exc:
        if isinstance(exc, pickle.PicklingError) or "pickle" not in str(exc):
            raise
        raise pickle.PicklingError(str(exc)) from exc
    receiver, sender = _FORK.Pipe(duplex=False)
    child = _FORK.Process(target=_work, args=(fn, payload, sender, streams), daemon=True)
    child.start()
    sender.close()
    return child, receiver


def _work(fn, payload, sender, streams):
    """In the child: run `fn` in a new thread, as ZeroGPU's worker does, and send back what it gives."""
    global _in_worker
    _in_worker = True
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
        raise _worker_error("GPU task aborted")  # _finish kills the child
    try:
        kind, value = pickle.loads(receiver.recv_bytes())
    except EOFError:  # the child died without answering
        raise _worker_error("GPU task aborted") from None
    if kind == "error":
        if not isinstance(value, tuple):
            raise value
        name, formatted = value
        print(formatted)
        raise _worker_error(name)
    return _END if kind == "end" else value


def _finish(child, receiver):
    receiver.close()  # a child still streaming fails on its next send and ends
    child.join(timeout=1)
    if child.is_alive():  # a hung child, or one busy long after its stream was closed
        child.kill()
        child.join()


def _worker_error(message):
    import gradio as gr

    return gr.Error(message, title="ZeroGPU worker error", print_exception=False)
