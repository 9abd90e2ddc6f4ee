"""The one way from a click to a device: where each model computation runs, run there, and what a refusal does.

A click reaches a tab's handler through `tabs.actions.action`, which runs it as `DISPATCHER.action`: the visitor's
request scope (`zerogpu.request_scope`), on the Space's CPU from its start while a recent quota refusal of visitors
who are not signed in lasts (`placement.action_on_cpu`, `REFUSED_BACKOFF_S`). Each GPU function the handler calls
(`gpu_functions.gpu_task`) is `DISPATCHER.run`:

1. off ZeroGPU, in this process on this machine's device, one call at a time (the device lock);
2. on ZeroGPU, where `placement.place` says, from the call's GPU and CPU estimates (the CPU's at this CPU's pace),
   the CPU work queued, whether a worker of it is warm and the learned start margins:
   - the Space's CPU: in the one CPU thread, on the CPU copies of the models, counted in the CPU queue meanwhile;
     a call placed there by choice whose model has no CPU copy (`NeedsGpu`) goes to a GPU after all;
   - a ZeroGPU worker: asking `requested_seconds` (the learned start margin of the worker it likely gets, plus its
     work); its first answer teaches the margins (`demos.gpu_margins`);
   - nowhere: an action already on the CPU that would take longer than `CPU_PATIENCE_S` there ends with a message.
3. when ZeroGPU refuses or fails a call: an abort of a plain call is asked again once with the margin it taught,
   where that asks more (`placement.asks_again`); otherwise `GpuUnavailable` ends the call, `action` runs the whole
   action again on the Space's CPU, and a quota refusal of a visitor who is not signed in sends the next actions of
   such visitors to the CPU for a while (`placement.backs_off`).

A plain function is a stream of one item (`streams.as_stream`), so one path runs both kinds. The dispatcher owns
the state these decisions read: the learned margins and warm workers, the last refusal, the CPU queue, the device
lock (`DISPATCHER`, one per process; `reset()` between tests).
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from demos import devices, gpu_worker, placement, zerogpu
from demos.errors import NeedsGpu, UserError
from demos.gpu_margins import Ask, Assumed, GpuMargins
from demos.placement import Placement
from demos.streams import as_stream
from demos.zerogpu import GpuUnavailable, Run

log = logging.getLogger(__name__)

_END = object()  # a stream has no more items

# The seconds decided for the GPU call this thread is making, returned by the duration that `spaces` asks for.
_asked_now: ContextVar[int | None] = ContextVar("pdr_asked_now", default=None)


def _estimate(seconds, args, kwargs) -> float:
    return float(seconds(*args, **kwargs) if callable(seconds) else seconds)


@dataclass(frozen=True)
class GpuFunction:
    """What the dispatcher knows of a GPU function (built by `gpu_functions.gpu_task`)."""

    name: str
    fn: Callable  # the compute function itself
    streams: bool  # a generator function
    gpu_seconds: float | Callable  # its work on a GPU: seconds, or a callable of the call's own arguments
    cpu_seconds: float | Callable  # its work on the development CPU, likewise
    on_gpu: Callable | None = None  # `fn` behind `spaces.GPU`; None when decorated off ZeroGPU

    def gpu_work_s(self, args, kwargs) -> float:
        return _estimate(self.gpu_seconds, args, kwargs)

    def cpu_work_s(self, args, kwargs) -> float:
        """Its work on this CPU, in the dtype its models run in here."""
        return devices.on_this_cpu(_estimate(self.cpu_seconds, args, kwargs))


# ZeroGPU queues a call at most 60 s and kills a worker past the duration it received (what it asked x the GPU
# model's factor): an answer that has not come 10 s after both never will.
_PLATFORM_PATIENCE_S = 60 + 10


def _awaited(call: Callable[[], Iterator], patience_s: float) -> Iterator:
    """The answers of a ZeroGPU call (`call()`, a stream), each awaited at most `patience_s`, else "GPU task aborted".
    `spaces` can wait for ever on a worker killed mid-answer (the torn message in its result pipe, or an answer that
    can no longer be unpickled, whose error its stream reader loses): the call is made in a thread of its own, left
    behind then."""
    handoff: queue.Queue = queue.Queue()
    stop = threading.Event()

    def pull():
        try:
            items = call()
            for item in items:
                handoff.put((True, item))
                if stop.is_set():
                    getattr(items, "close", lambda: None)()
                    return
            handoff.put((False, None))
        except BaseException as error:  # noqa: BLE001 - handed to the caller
            handoff.put((False, error))

    threading.Thread(target=contextvars.copy_context().run, args=(pull,), daemon=True,
                     name="pdr-gpu-call").start()
    try:
        while True:
            try:
                more, value = handoff.get(timeout=patience_s)
            except queue.Empty:
                raise GpuUnavailable("the GPU call ran out of its time", "GPU task aborted (no answer came)",
                                     "aborted") from None
            if not more:
                if value is not None:
                    raise value
                return
            yield value
    finally:
        stop.set()


class Dispatcher:
    """Runs every action and every call of a GPU function where `demos.placement` says; owns the state it reads."""

    def __init__(self, assumed: Assumed):
        self.margins = GpuMargins(assumed)  # learned from this process's GPU calls; which workers are idle
        self._refused_until, self._refused_why = 0.0, ""  # the last quota refusal of a visitor not signed in
        self._cpu_queued_s = 0.0  # estimated CPU seconds of the work queued or running in the CPU thread
        self._lock = threading.Lock()
        # Off ZeroGPU, one GPU function runs at a time. The queue's concurrency_id bounds the events, but gradio
        # cancels an event (a stale clip's prepare) by abandoning its thread, which runs on: the next call waits for
        # it here instead of running beside it. A plain Lock: a stream holds it across the threads that gradio runs
        # its steps in, until it ends or is closed. On ZeroGPU each GPU call has a worker of its own (ZeroGPU
        # schedules them), and the Space's CPU work runs in `zerogpu.cpu_thread()`.
        self._device_lock = threading.Lock()

    def reset(self) -> None:
        """Forget the learned margins, which workers are warm and any refusal: the state a process starts in."""
        with self._lock:
            self.margins = GpuMargins(self.margins.assumed)
            self._refused_until, self._refused_why = 0.0, ""

    # One visitor's action.

    @contextlib.contextmanager
    def request_scope(self, *, signed_in: bool = False):
        """One visitor's action (`zerogpu.request_scope`, its `Run`s yielded), on the Space's CPU from its start where
        `placement.action_on_cpu` says so."""
        why = placement.action_on_cpu(on_zero_gpu=zerogpu.ON_ZERO_GPU, signed_in=signed_in,
                                      refused_why=self._refusal_backoff())
        with zerogpu.request_scope(signed_in=signed_in, cpu_reason=why) as runs:
            yield runs

    def action(self, fn, args, kwargs, *, signed_in: bool) -> Iterator:
        """A tab's action (a plain function: one item; or a stream) in its request scope. When ZeroGPU refuses or fails
        one of its GPU calls, the whole action runs again on the Space's CPU, planned for the CPU (`zerogpu.on_cpu`):
        the page shows the rerun's items in place of the refused run's."""
        streams = inspect.isgeneratorfunction(fn)
        with self.request_scope(signed_in=signed_in) as runs:
            try:
                yield from as_stream(fn, args, kwargs, streams=streams)
            except GpuUnavailable as refusal:
                runs.clear()
                with zerogpu.on_cpu(refusal.why):
                    yield from as_stream(fn, args, kwargs, streams=streams)

    def _refusal_backoff(self) -> str | None:
        with self._lock:
            return self._refused_why if time.monotonic() < self._refused_until else None

    # One call of a GPU function.

    def run(self, task: GpuFunction, args, kwargs) -> Iterator:
        """One call of `task`, as a stream (a plain function's result is its one item), where it is placed."""
        if task.on_gpu is None:  # decorated off ZeroGPU: one device, this machine's
            yield from self._here(task, args, kwargs)
            return
        cpu_work_s = task.cpu_work_s(args, kwargs)
        where = self.place(task, args, kwargs, cpu_work_s)
        if where.device == placement.NOWHERE:
            raise UserError(where.why)
        if where.device == placement.CPU:
            ran = yield from self._on_the_cpu(task, args, kwargs, where, cpu_work_s)
            if ran:
                return
        yield from self._on_a_gpu(task, args, kwargs)

    def place(self, task: GpuFunction, args, kwargs, cpu_work_s: float) -> Placement:
        """Where a call of `task` starting now runs on ZeroGPU (`placement.place`, with this process's state)."""
        with self._lock:
            queued_s = self._cpu_queued_s
        return placement.place(
            action_on_cpu=zerogpu.cpu_reason(), gpu_work_s=task.gpu_work_s(args, kwargs), cpu_work_s=cpu_work_s,
            cpu_queued_s=queued_s, worker_warm=self.margins.peek(task.name, time.monotonic()).warm,
            warm_start_s=self.margins.margin(task.name, True), cold_start_s=self.margins.margin(task.name, False))

    def _here(self, task: GpuFunction, args, kwargs) -> Iterator:
        """Off ZeroGPU: in this process, on this machine's device, one call at a time."""
        with self._device_lock:
            started = time.perf_counter()
            yield from as_stream(task.fn, args, kwargs, streams=task.streams)
            zerogpu.record(Run(task.name, "gpu" if devices.models_on_gpu() else "cpu", "", False,
                               time.perf_counter() - started))

    def device_busy(self) -> bool:
        """Whether a GPU function is running (or a stream of one is open) in this process, off ZeroGPU."""
        return self._device_lock.locked()

    def _on_the_cpu(self, task: GpuFunction, args, kwargs, where: Placement, cpu_work_s: float):
        """On the Space's CPU; returns whether it ran there. One placed there by choice whose model has no CPU copy
        (the memory plan left it out: `NeedsGpu` before its first item) did not: a GPU call after all. After a
        refusal there is no GPU either, and the learner reads that it needs one."""
        started = time.monotonic()
        items = self._in_cpu_thread(task, args, kwargs, where.why, cpu_work_s)
        try:
            first = next(items, _END)
        except NeedsGpu:
            if where.fallback:
                raise
            return False
        if first is not _END:
            yield first
            yield from items
        zerogpu.record(Run(task.name, "cpu", where.why, where.fallback, time.monotonic() - started))
        return True

    def _in_cpu_thread(self, task: GpuFunction, args, kwargs, why: str, cpu_work_s: float) -> Iterator:
        """The call's items, computed in the CPU thread on the CPU copies (`zerogpu.cpu_context`), one computation at
        a time: counted in the CPU queue until done. A plain call is one turn of the thread; a stream takes a turn per
        item, so that other learners' CPU work runs between two of its items."""
        context, pool = zerogpu.cpu_context(why), zerogpu.cpu_thread()

        def turn(call, *call_args, **call_kwargs):
            return pool.submit(context.run, call, *call_args, **call_kwargs).result()

        with self._queued_on_the_cpu(cpu_work_s):
            if not task.streams:
                yield turn(task.fn, *args, **kwargs)
                return
            items = context.run(task.fn, *args, **kwargs)  # a generator: nothing runs yet
            try:
                while (item := turn(next, items, _END)) is not _END:
                    yield item
            finally:
                turn(items.close)

    @contextlib.contextmanager
    def _queued_on_the_cpu(self, seconds: float):
        with self._lock:
            self._cpu_queued_s += seconds
        try:
            yield
        finally:
            with self._lock:
                self._cpu_queued_s -= seconds

    def _on_a_gpu(self, task: GpuFunction, args, kwargs) -> Iterator:
        """In a ZeroGPU worker, asking the start margin of the worker it likely gets and its work. A refusal is
        learned from and raised as `GpuUnavailable`, unless `placement.asks_again` says to ask once more."""
        gpu_worker.check_crossing((args, kwargs), f"an argument of {task.name}")  # before ZeroGPU schedules a GPU
        work_s = task.gpu_work_s(args, kwargs)
        ask = self.margins.ask(task.name, time.monotonic())  # it takes the idle worker that returned last, if any
        asked_again = False
        while True:
            asked, started = self.requested_seconds(task.name, work_s, ask.margin), time.monotonic()
            _asked_now.set(asked)
            ended = True  # unless ZeroGPU refused or aborted the call: its worker is then gone
            try:
                for answer in _awaited(lambda: as_stream(task.on_gpu, args, kwargs, streams=task.streams),
                                       _PLATFORM_PATIENCE_S + asked * (zerogpu.duration_factor() or 1.0)):
                    if isinstance(answer, gpu_worker.Timed):
                        self._arrived(task.name, answer.work_s, ask, started, asked)
                    yield gpu_worker.value_of(answer)
            except UserError:
                raise
            except Exception as error:
                ended = False
                refusal = self._refused(task.name, error, ask, started, asked)
                would_ask = self.requested_seconds(task.name, work_s)
                if not placement.asks_again(kind=refusal.kind, streams=task.streams, asked_again_before=asked_again,
                                            asked_s=asked, would_ask_s=would_ask):
                    raise refusal from error
                log.warning("GPU call %s: asking again, with the margin the abort taught (%d s)", task.name, would_ask)
                ask, asked_again = self.margins.ask(task.name, time.monotonic()), True
                continue
            finally:
                _asked_now.set(None)
                if ended:
                    self.margins.released(task.name, time.monotonic())
            zerogpu.record(Run(task.name, "gpu", "", False, time.monotonic() - started, asked))
            return

    def _arrived(self, name: str, work_s: float, ask: Ask, started: float, asked: int) -> None:
        """A worker's first answer: learn the call's overhead from it (its worker is busy until the call ends)."""
        warm, overhead = self.margins.returned(name, ask, started=started, now=time.monotonic(), work_s=work_s,
                                               release=False)
        log.info("GPU call %s: asked %d s for a %s worker, returned after %.2f s: work %.2f s, overhead %.2f s (%s); %s",
                 name, asked, "warm" if ask.warm else "fresh", time.monotonic() - started, work_s, overhead,
                 "warm" if warm else "cold", self.margins.describe(name))

    def _refused(self, name: str, error: Exception, ask: Ask, started: float, asked: int) -> GpuUnavailable:
        """ZeroGPU's error as a `GpuUnavailable`: learned from, remembered for the back-off, logged. An error that is
        the caller's (`zerogpu.refusal` says None) is raised as it is."""
        refusal = zerogpu.refusal(error)
        if refusal is None:
            raise error
        if refusal.kind == "aborted" and time.monotonic() - started < asked * (zerogpu.duration_factor() or 1.0):
            # `spaces` says "GPU task aborted" for a worker that died too (`spaces/zero/wrappers.py`, its result queue
            # closed): one that stopped before its time ran out was not cut off, and asking more would not help.
            refusal = GpuUnavailable("the GPU worker stopped", refusal.detail, "failed")
        if refusal.kind == "aborted":
            self.margins.aborted(name, ask)
        else:
            self.margins.refused(name, ask, time.monotonic())
        if placement.backs_off(kind=refusal.kind, signed_in=zerogpu.signed_in()):
            with self._lock:
                self._refused_until = time.monotonic() + placement.REFUSED_BACKOFF_S
                self._refused_why = refusal.why
        log.warning("GPU call %s refused or failed after %.2f s: %s", name, time.monotonic() - started, refusal.detail)
        return refusal

    # What a GPU call asks ZeroGPU for.

    def requested_seconds(self, function: str, work_s: float, margin_s: float | None = None) -> int:
        """The whole seconds a GPU call asks ZeroGPU for: its work (the estimate, or what its recent calls took where
        that was more) and a start margin (by default the learned margin of the worker a call starting now would get;
        ZeroGPU drops fractions of a second, so round up)."""
        if margin_s is None:
            margin_s = self.margins.peek(function, time.monotonic()).margin
        return max(1, math.ceil(margin_s + self.margins.work(function, work_s)))

    def duration(self, function: str, work_s: float) -> int:
        """The seconds `spaces` asks ZeroGPU for a call of `function`: what this thread's call decided, or else what a
        call starting now would ask (`bench.bench_gpu` asks it of calls made elsewhere)."""
        asked = _asked_now.get()
        return asked if asked is not None else self.requested_seconds(function, work_s)


DISPATCHER = Dispatcher(Assumed(zerogpu.GPU_COLD_START_S, zerogpu.GPU_WARM_START_S, zerogpu.GPU_WARM_FOR_S))
