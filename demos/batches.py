"""Work asked by several visitors at once, done once for all of them: a stream per batch, read by every member.

A request joins the batch of its key that is still forming; the first request of a batch leads it. A batch starts as
soon as no batch of its lane (its key, or a wider one) is running: alone when nothing else runs, and otherwise with
every request that arrived while the one before it ran (up to `max_size`; batches start in the order they formed).
So a lone request waits for nothing, and a class asking together costs one computation per round instead of one per
request. Where each computation has a price of its own (a GPU call charged to a class's shared quota), a batch that
forms in a busy lane (another request joined it within the last `busy_s`) may linger a moment for companions before
it starts: a lone request still waits for nothing. 6.5's questions about one clip use it: their answers decode in one
batch (`demos.compute.heads.answering`).

The batch's stream runs in a thread of its own, in the leading request's context (`contextvars`), so that a member
who leaves (a closed page) stops only its own reading; the stream is closed when every member has left. Each step of
the stream is a sequence with one entry per member, in the order they joined; an error ends every member's stream
with it.
"""

from __future__ import annotations

import contextvars
import math
import queue
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

_END = object()  # a batch's stream has ended: (_END, None), or (_END, the error it raised)


@dataclass
class _Batch:
    key: Hashable
    starts_at: float  # time.monotonic(): the earliest it starts (when it formed, or after lingering)
    requests: list = field(default_factory=list)
    outboxes: list[queue.Queue] = field(default_factory=list)
    left: list[bool] = field(default_factory=list)

    def join(self, request) -> int:
        self.requests.append(request)
        self.outboxes.append(queue.Queue())
        self.left.append(False)
        return len(self.requests) - 1


class Batches:
    """The batches of one kind of work, by key; batches in one lane run one at a time."""

    def __init__(self, max_size: int, busy_s: float = 60.0):
        if max_size < 1:
            raise ValueError(f"a batch holds at least one request, not {max_size}")
        self.max_size, self.busy_s = max_size, busy_s
        self._changed = threading.Condition()
        self._waiting: dict[Hashable, list[_Batch]] = {}  # per lane, the batches not started yet, oldest first
        self._running: set[Hashable] = set()  # the lanes where a batch runs
        self._last_joined: dict[Hashable, float] = {}  # per lane, when a request last joined one of its batches

    def stream(self, key: Hashable, request, run: Callable[[list], Iterator[Sequence]],
               lane: Hashable | None = None, linger_s: float = 0.0) -> Iterator[tuple[Any, int]]:
        """This request's entries of its batch's stream, `run(requests)` (run once per batch, by its leader), each with
        the size of the batch. Batches of the same `lane` (by default the key) run one after another, oldest first:
        work that differs only in what an earlier batch leaves cached waits for it. A batch this request forms in a
        busy lane starts no sooner than `linger_s` after it formed, unless it fills. The leader's call returns once
        its batch has started."""
        lane = key if lane is None else lane
        with self._changed:
            now = time.monotonic()
            busy = now - self._last_joined.get(lane, -math.inf) < self.busy_s
            self._last_joined = {other: at for other, at in self._last_joined.items() if now - at < self.busy_s}
            self._last_joined[lane] = now
            waiting = self._waiting.setdefault(lane, [])
            batch = next((b for b in waiting if b.key == key and len(b.requests) < self.max_size), None)
            leads = batch is None
            if leads:
                batch = _Batch(key, starts_at=now + (linger_s if busy else 0.0))
                waiting.append(batch)
            index = batch.join(request)
            self._changed.notify_all()  # a lingering batch may be full now
        if leads:
            self._start(lane, batch, run)
        return self._read(batch, index)

    def waiting(self) -> int:
        """How many requests wait for their batch to start."""
        with self._changed:
            return sum(len(batch.requests) for batches in self._waiting.values() for batch in batches)

    def _start(self, lane: Hashable, batch: _Batch, run: Callable[[list], Iterator[Sequence]]) -> None:
        with self._changed:
            self._changed.wait_for(lambda: lane not in self._running and self._waiting[lane][0] is batch)
            self._changed.wait_for(lambda: len(batch.requests) >= self.max_size,
                                   timeout=max(0.0, batch.starts_at - time.monotonic()))
            self._waiting[lane].pop(0)
            if not self._waiting[lane]:
                del self._waiting[lane]
            self._running.add(lane)
        context = contextvars.copy_context()
        threading.Thread(target=context.run, args=(self._feed, lane, batch, run), daemon=True,
                         name="pdr-batch").start()

    def _feed(self, lane: Hashable, batch: _Batch, run: Callable[[list], Iterator[Sequence]]) -> None:
        ended: tuple = (_END, None)
        try:
            steps = run(list(batch.requests))
            try:
                for step in steps:
                    for box, entry in zip(batch.outboxes, step, strict=True):
                        box.put((entry, len(batch.requests)))
                    if all(batch.left):
                        break
            finally:
                getattr(steps, "close", lambda: None)()
        except BaseException as error:  # noqa: BLE001 - every member raises it
            ended = (_END, error)
        finally:
            with self._changed:
                self._running.discard(lane)
                self._changed.notify_all()
            for box in batch.outboxes:
                box.put(ended)

    @staticmethod
    def _read(batch: _Batch, index: int) -> Iterator[tuple[Any, int]]:
        try:
            while True:
                entry, more = batch.outboxes[index].get()
                if entry is _END:
                    if more is not None:
                        raise more
                    return
                yield entry, more
        finally:
            batch.left[index] = True
