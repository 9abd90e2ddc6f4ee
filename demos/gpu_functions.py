"""GPU functions: `@gpu_task(gpu_seconds=..., cpu_seconds=...)` puts a compute function behind the ZeroGPU boundary.

Off ZeroGPU a GPU function runs in this process, one call at a time, on this machine's device. On ZeroGPU each
call runs where it pays, the Space's CPU or a `spaces.GPU` worker (see `gpu_task`). A worker is a forked process
(reused while idle, never reliably); its arguments and result are pickled across. So a GPU function:
1. is a module-level function. It takes CPU values only (numpy arrays, CPU tensors, plain values, checkpoint
   *names*, dataclasses of those; no models, no lambdas or progress callbacks: they do not pickle) and returns CPU
   tensors/arrays. It calls `checkpoints.load(name)` itself (a lookup of the resident model, or of its CPU copy on
   the Space's CPU) and moves inputs with `devices.on_model`.
2. leaves caches (`demos.cache.LRUCache`) to the main process: the parent looks the cache up, passes the cached
   intermediate in (`targets=None` or a tensor), and stores what the GPU function returns. Progress is reported
   by the parent, before and after the call.
3. estimates its work: `gpu_seconds` and `cpu_seconds`, in seconds or callables of the call's own arguments. They
   decide where a call runs, and what it asks ZeroGPU for (`zerogpu.requested_seconds`); the default size
   ("large"). A `UserError` raised inside keeps its message across the process boundary (ZeroGPU would hide it);
   generator functions stream. When ZeroGPU refuses or fails a call, `GpuUnavailable` tells the tab to run the
   action again `on_cpu`.
4. never calls another GPU function: it calls that one's undecorated `.plain` function.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import pickle
import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass

from demos import devices, zerogpu
from demos.errors import NeedsGpu, UserError
from demos.gpu_margins import Ask
from demos.zerogpu import GpuUnavailable, Run

log = logging.getLogger(__name__)

# What a GPU call costs a learner beyond its work: ZeroGPU's scheduling round trip and the hand-off to the worker
# (an estimate; the log of a ZeroGPU Space gives the real figure).
ZEROGPU_CALL_S = 1.0
# An action the Space's CPU finishes within this runs there even where a GPU would be faster: a learner barely
# notices, and the class keeps its shared GPU quota for the actions that need a GPU.
CPU_QUICK_S = 1.5
# The longest a learner is asked to wait for an action on the Space's CPU when ZeroGPU cannot run it; a longer
# one ends with a message saying when to retry.
CPU_PATIENCE_S = 30.0


@dataclass(frozen=True)
class _Failure:
    """A UserError raised inside a GPU function, carried back as a plain value (ZeroGPU hides exceptions)."""

    kind: type
    message: str

    def error(self) -> UserError:
        try:
            return self.kind(self.message)
        except Exception:  # a subclass with another constructor: the message is what matters
            return UserError(self.message)


@dataclass(frozen=True)
class _Timed:
    """A worker's answer (its result, a stream's first item, or a `_Failure`) with the seconds of the function's own
    work before it, measured in the worker: the rest of the time until it arrived is the call's overhead."""

    value: object
    work_s: float


# The seconds decided for the GPU call this thread is making, returned by the duration that `spaces` asks for.
_asked_now: ContextVar[int | None] = ContextVar("pdr_asked_now", default=None)


def _estimate(seconds, args, kwargs) -> float:
    return float(seconds(*args, **kwargs) if callable(seconds) else seconds)


_cpu_backlog = {"seconds": 0.0}  # estimated CPU seconds of the work queued or running in the CPU thread
_backlog_lock = threading.Lock()


@contextlib.contextmanager
def _queued_on_the_cpu(seconds: float):
    with _backlog_lock:
        _cpu_backlog["seconds"] += seconds
    try:
        yield
    finally:
        with _backlog_lock:
            _cpu_backlog["seconds"] -= seconds


def _placed_on_cpu(function: str, gpu_work_s: float, cpu_s: float) -> bool:
    """The GPU only where it pays: the CPU takes an action it finishes quickly, or sooner than a GPU call would
    (ZeroGPU's scheduling, and a fresh worker's start, included), counting the CPU work already waiting: in a
    lecture hall the GPU takes what the one CPU thread would only queue."""
    extra_start_s = 0.0
    if not zerogpu.worker_is_warm(function):
        extra_start_s = zerogpu.margins.margin(function, False) - zerogpu.margins.margin(function, True)
    with _backlog_lock:
        cpu_s += _cpu_backlog["seconds"]
    gpu_s = ZEROGPU_CALL_S + gpu_work_s + max(0.0, extra_start_s)
    return cpu_s <= max(CPU_QUICK_S, gpu_s)


_REFUSALS = (  # (what ZeroGPU's message says, what the learner reads, its kind)
    ("Space app has reached its GPU limit", "the GPU time this Space shares among visitors who are not signed in "
     "on huggingface.co is used up for now", "quota"),
    ("No GPU was available after", "no GPU was free within a minute", "quota"),
    ("exceeded your", "your ZeroGPU quota is used up for now", "quota"),
    ("No GPU was available", "no GPU was available", "quota"),
    ("GPU task aborted", "the GPU call ran out of its time", "aborted"),
    ("illegal duration", "ZeroGPU refused the GPU time this asked for", "failed"),
)


def _as_refusal(error: Exception) -> GpuUnavailable | None:
    """What `spaces` raised, as a `GpuUnavailable`; None for an error that is the caller's (a value that does not
    pickle, a visitor who left while queued)."""
    if isinstance(error, pickle.PicklingError) or "closed by visitor" in str(error):
        return None
    detail = " ".join(str(part) for part in (getattr(error, "title", ""), getattr(error, "message", error)) if part)
    for marker, why, kind in _REFUSALS:
        if marker.lower() in detail.lower():
            return GpuUnavailable(why, detail, kind)
    return GpuUnavailable("the GPU call failed", detail or type(error).__name__, "failed")


def too_slow_on_cpu(why: str, seconds: float) -> UserError:
    return UserError(
        f"No GPU can run this right now ({why}), and on the Space's CPU it would take about {seconds:.0f} s, longer "
        f"than the {CPU_PATIENCE_S:.0f} s a learner should wait. Lighter settings (fewer frames, one shared clip) "
        "run on the CPU; or try again in a few minutes. Signed-in visitors have GPU time of their own: open this "
        "Space on huggingface.co and sign in there."
    )


def _on_the_cpu(fn, args, kwargs, why: str, seconds: float):
    """Run `fn` on the Space's CPU copies (its result, or for a generator function a generator), in the CPU thread;
    `seconds` is its estimate, counted in the CPU's backlog until it is done."""
    context = zerogpu.cpu_context(why)
    pool = zerogpu.cpu_thread()
    if not inspect.isgeneratorfunction(fn):
        with _queued_on_the_cpu(seconds):
            return pool.submit(context.run, fn, *args, **kwargs).result()

    def stream():
        items = context.run(fn, *args, **kwargs)
        with _queued_on_the_cpu(seconds):
            try:
                while True:
                    try:  # each step in the CPU thread: other learners' CPU work can run between two tokens
                        yield pool.submit(context.run, next, items).result()
                    except StopIteration:
                        return
            finally:
                pool.submit(context.run, items.close).result()

    return stream()


# One GPU function runs at a time in this process, off ZeroGPU. The queue's concurrency_id bounds the events, but
# gradio cancels an event (a stale clip's prepare) by abandoning its thread, which runs on: the next GPU function
# waits for it here instead of running beside it. A plain Lock: a stream holds it across the threads that gradio
# runs its steps in, until it ends or is closed. On ZeroGPU each call has a worker of its own (ZeroGPU schedules
# them), and the Space's CPU work runs in `zerogpu.cpu_thread()`.
_device_lock = threading.Lock()


def device_busy() -> bool:
    """Whether a GPU function is running (or a stream of one is open) in this process, off ZeroGPU."""
    return _device_lock.locked()


def _one_at_a_time(call):
    if inspect.isgeneratorfunction(call):

        @functools.wraps(call)
        def stream(*args, **kwargs):
            with _device_lock:
                yield from call(*args, **kwargs)

        return stream

    @functools.wraps(call)
    def locked(*args, **kwargs):
        with _device_lock:
            return call(*args, **kwargs)

    return locked


def gpu_task(fn=None, *, gpu_seconds, cpu_seconds):
    """Mark a compute function as a GPU function. Elsewhere than ZeroGPU it runs in this process, one call at a
    time, on this machine's device. On ZeroGPU each call runs where it pays:

    - on the Space's CPU (its CPU copies of the models) when the CPU finishes it within `CPU_QUICK_S` or sooner
      than a GPU call would, or when the action runs on the CPU already (`zerogpu.on_cpu`); one that would take
      longer than `CPU_PATIENCE_S` there raises a UserError saying when to retry;
    - else in a `spaces.GPU` worker, asking `zerogpu.requested_seconds` (a warm or cold start margin plus the work).
      When ZeroGPU refuses or fails the call it raises `GpuUnavailable`, and the tab runs the action again on the
      CPU.

    `gpu_seconds` and `cpu_seconds` estimate the work on each (seconds, or callables of the call's own
    arguments); `cpu_seconds` is of the development CPU (`devices.on_this_cpu` adjusts it to this one). Each call
    records a `Run`. `wrapper.plain` is the undecorated function (for calls from inside another GPU function),
    `wrapper.duration` the duration as asked of ZeroGPU (a callable), for `bench.bench_gpu`.
    """
    if fn is None:
        return functools.partial(gpu_task, gpu_seconds=gpu_seconds, cpu_seconds=cpu_seconds)
    name = fn.__qualname__

    def duration(*args, **kwargs) -> int:
        asked = _asked_now.get()
        return asked if asked is not None else zerogpu.requested_seconds(name, _estimate(gpu_seconds, args, kwargs))

    if not zerogpu.ON_ZERO_GPU:
        return _as_task(_recording(fn, name), fn, duration)
    import spaces

    streams = inspect.isgeneratorfunction(fn)
    if streams:

        def stream_in_worker(*args, **kwargs):
            zerogpu.use_all_cores()
            started, first = time.perf_counter(), True
            try:
                for item in fn(*args, **kwargs):
                    yield _Timed(item, time.perf_counter() - started) if first else item
                    first = False
            except UserError as error:
                failure = _Failure(type(error), str(error))
                yield _Timed(failure, time.perf_counter() - started) if first else failure

        on_gpu = spaces.GPU(functools.wraps(fn)(stream_in_worker), duration=duration)
    else:

        def run_in_worker(*args, **kwargs):
            zerogpu.use_all_cores()
            started = time.perf_counter()
            try:
                value = fn(*args, **kwargs)
            except UserError as error:
                value = _Failure(type(error), str(error))
            return _Timed(value, time.perf_counter() - started)

        on_gpu = spaces.GPU(functools.wraps(fn)(run_in_worker), duration=duration)

    def where(args, kwargs) -> tuple[str | None, bool, float]:
        """(why it runs on the CPU, or None for a GPU; whether that is a fallback; its CPU estimate)."""
        cpu_s = devices.on_this_cpu(_estimate(cpu_seconds, args, kwargs))
        why = zerogpu.cpu_reason()
        if why is not None:
            if cpu_s > CPU_PATIENCE_S:
                raise too_slow_on_cpu(why, cpu_s)
            return why, True, cpu_s
        if _placed_on_cpu(name, _estimate(gpu_seconds, args, kwargs), cpu_s):
            return f"the Space's CPU does this in about {cpu_s:.1f} s, and it spends no GPU quota", False, cpu_s
        return None, False, cpu_s

    def asking(args, kwargs) -> tuple[Ask, int]:
        """The margin this call asks (it takes an idle worker, if any) and its whole seconds, for `duration`."""
        ask = zerogpu.margins.ask(name, time.monotonic())
        asked = zerogpu.requested_seconds(name, _estimate(gpu_seconds, args, kwargs), ask.margin)
        _asked_now.set(asked)
        return ask, asked

    def refused(error: Exception, ask: Ask, started: float) -> GpuUnavailable:
        refusal = _as_refusal(error)
        if refusal is None:
            raise error
        if refusal.kind == "aborted":
            zerogpu.margins.aborted(name, ask)
        else:
            zerogpu.margins.refused(name, ask, time.monotonic())
        zerogpu.remember_refusal(refusal)
        log.warning("GPU call %s refused or failed after %.2f s: %s", name, time.monotonic() - started, refusal.detail)
        return refusal

    def arrived(timed: _Timed, ask: Ask, started: float, asked: int):
        """The worker's first answer: learn the call's overhead from it; its value. A stream's worker is busy until
        the stream ends."""
        warm, overhead = zerogpu.margins.returned(name, ask, started=started, now=time.monotonic(), work_s=timed.work_s,
                                                  release=not streams)
        log.info("GPU call %s: asked %d s for a %s worker, returned after %.2f s: work %.2f s, overhead %.2f s (%s); %s",
                 name, asked, "warm" if ask.warm else "fresh", time.monotonic() - started, timed.work_s, overhead,
                 "warm" if warm else "cold", zerogpu.margins.describe(name))
        return timed.value

    def ran_on_gpu(started: float, asked: int) -> None:
        zerogpu.record(Run(name, "gpu", "", False, time.monotonic() - started, asked))

    if streams:

        @functools.wraps(fn)
        def call(*args, **kwargs):
            why, fallback, cpu_s = where(args, kwargs)
            started = time.monotonic()
            if why is not None:
                items = _on_the_cpu(fn, args, kwargs, why, cpu_s)
                try:
                    first = [next(items)]
                except StopIteration:
                    first = []
                except NeedsGpu:
                    if fallback:
                        raise
                    first = None  # placed on the CPU, where its model has no copy: a GPU call after all
                if first is not None:
                    yield from first
                    yield from items
                    zerogpu.record(Run(name, "cpu", why, fallback, time.monotonic() - started))
                    return
            ask, asked = asking(args, kwargs)
            ended = True  # unless ZeroGPU refused or aborted it: its worker is then gone
            try:
                for item in on_gpu(*args, **kwargs):
                    if isinstance(item, _Timed):
                        item = arrived(item, ask, started, asked)
                    if isinstance(item, _Failure):
                        raise item.error()
                    yield item
            except UserError:
                raise
            except Exception as error:
                ended = False
                raise refused(error, ask, started) from error
            finally:
                _asked_now.set(None)
                if ended:
                    zerogpu.margins.released(name, time.monotonic())
            ran_on_gpu(started, asked)
    else:

        @functools.wraps(fn)
        def call(*args, **kwargs):
            why, fallback, cpu_s = where(args, kwargs)
            started = time.monotonic()
            if why is not None:
                try:
                    result = _on_the_cpu(fn, args, kwargs, why, cpu_s)
                except NeedsGpu:
                    if fallback:
                        raise
                    # placed on the CPU, where its model has no copy: a GPU call after all
                else:
                    zerogpu.record(Run(name, "cpu", why, fallback, time.monotonic() - started))
                    return result
            ask, asked = asking(args, kwargs)
            try:
                result = on_gpu(*args, **kwargs)
            except Exception as error:
                refusal = refused(error, ask, started)
                again, asked_again = asking(args, kwargs)  # what was learned from the abort
                if refusal.kind != "aborted" or asked_again <= asked:
                    zerogpu.margins.refused(name, again, time.monotonic())
                    raise refusal from error
                log.warning("GPU call %s: asking again, with the margin the abort taught (%d s)", name, asked_again)
                ask, asked, started = again, asked_again, time.monotonic()
                try:
                    result = on_gpu(*args, **kwargs)
                except Exception as error_again:
                    raise refused(error_again, ask, started) from error_again
            finally:
                _asked_now.set(None)
            result = arrived(result, ask, started, asked)
            if isinstance(result, _Failure):
                raise result.error()
            ran_on_gpu(started, asked)
            return result

    call.plain, call.duration = fn, duration
    return call


def _recording(fn, name: str):
    """`fn` that records a `Run` on this machine's device for each call (off ZeroGPU)."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def stream(*args, **kwargs):
            started = time.perf_counter()
            yield from fn(*args, **kwargs)
            zerogpu.record(Run(name, "gpu" if devices.models_on_gpu() else "cpu", "", False,
                               time.perf_counter() - started))

        return stream

    @functools.wraps(fn)
    def call(*args, **kwargs):
        started = time.perf_counter()
        result = fn(*args, **kwargs)
        zerogpu.record(Run(name, "gpu" if devices.models_on_gpu() else "cpu", "", False, time.perf_counter() - started))
        return result

    return call


def _as_task(call, fn, duration):
    """`call` run one at a time, with the undecorated function (`.plain`) and its duration (`.duration`)."""
    call = _one_at_a_time(call)
    call.plain, call.duration = fn, duration
    return call
