"""What a ZeroGPU call asks beyond its work, learned from the calls the Space sees.

A GPU call's overhead is the time until it returned minus its own work, measured inside the worker: ZeroGPU's
hand-off and, for a fresh worker, its start (CUDA, the packed weights, the first kernels). Per function and per warm
or cold worker, the margin asked is a high percentile of the recent overheads with some headroom, bounded; until a
function has been seen, what the other functions' calls taught, or else the assumed starting margins. A call that
ran out of time raises the next one's margin. A call counts as cold when it found no idle worker or its overhead is
nearer the cold margin than the warm one; the warm window (how long an idle worker is kept) is learned from the idle
times after which calls found their worker warm or gone. The work a call asks for is its estimate, or what the
function's recent calls measured where that was more.

Pure: every method takes the time (`now`, in seconds of a monotonic clock) as an argument; `demos.dispatcher` keeps
one instance for the process.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass

RECENT_CALLS = 12  # overheads kept per function and kind: enough for a high percentile, short enough to follow change
PERCENTILE = 0.9
HEADROOM = 1.25  # the margin asked over the percentile: a learner's call should not be the one that runs past it
PAD_S = 0.5  # and a little more, for calls whose overhead is tiny and noisy
SMALLEST_MARGIN_S = 0.5
LARGEST_MARGIN_S = 30.0  # a cold request stays admissible on a day's anonymous quota (120 s, x1.5 on request)
ABORT_GROWTH = 2.0  # after an abort the next call of that kind asks this much more margin, until one returns


@dataclass(frozen=True)
class Assumed:
    """Where learning starts: the margins and the warm window assumed before any call was seen."""

    cold_s: float
    warm_s: float
    warm_for_s: float


@dataclass(frozen=True)
class Ask:
    """What one GPU call asks on top of its work, and why: the worker it expects, and that worker's idle time."""

    warm: bool
    margin: float
    idle_s: float | None  # seconds since the idle worker it takes last returned; None: no idle worker, a fresh one


def percentile(values, fraction: float) -> float:
    """The `fraction` quantile of `values` (nearest rank, so it is one of them)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


class GpuMargins:
    """The margins a process's GPU calls ask, per function and per warm or cold worker, and the warm window.

    Each function has a pool of idle workers (when each last returned): a call takes the one that returned last, warm
    if that was within the warm window, and gives it back when it returns. A call that finds no idle worker gets a
    fresh one, and says nothing about the window.
    """

    def __init__(self, assumed: Assumed):
        self.assumed = assumed
        self._overheads: dict[tuple[str, bool], deque] = {}  # (function, warm) -> recent overheads
        self._work: dict[str, deque] = {}  # function -> the recent work its calls measured in the worker
        self._after_abort: dict[bool, float] = {}  # warm -> the least margin the next call of that kind asks
        self._idle: dict[str, list[float]] = {}  # function -> when each of its idle workers returned
        self._shortest_cold_gap = math.inf  # idle seconds after which a worker was found gone
        self._longest_warm_gap = 0.0  # idle seconds after which one was found warm (shorter than the above)
        self._lock = threading.Lock()

    def margin(self, function: str, warm: bool) -> float:
        """The start margin a call of `function` asks on top of its work, on a warm or a cold worker."""
        with self._lock:
            return self._margin(function, warm)

    def _margin(self, function: str, warm: bool, after_abort: bool = True) -> float:
        # A function not seen yet starts from what the others' calls of that kind taught: a fresh worker's start is
        # mostly the Space's, not the function's.
        seen = self._overheads.get((function, warm)) or [overhead for (_, kind), recent in self._overheads.items()
                                                         if kind == warm for overhead in recent]
        if seen:
            learned = percentile(seen, PERCENTILE) * HEADROOM + PAD_S
        else:
            learned = self.assumed.warm_s if warm else self.assumed.cold_s
        if after_abort:
            learned = max(learned, self._after_abort.get(warm, 0.0))
        return min(LARGEST_MARGIN_S, max(SMALLEST_MARGIN_S, learned))

    def warm_for(self) -> float:
        """How long an idle worker is kept: the assumption, or longer where one was found warm after longer, but
        shorter than the shortest idle time after which one was found gone."""
        with self._lock:
            return self._warm_for()

    def _warm_for(self) -> float:
        return min(self._shortest_cold_gap, max(self.assumed.warm_for_s, self._longest_warm_gap))

    def _ask(self, function: str, now: float, take: bool) -> Ask:
        idle = self._idle.get(function)
        if not idle:
            return Ask(False, self._margin(function, False), None)
        idle_s = now - (idle.pop() if take else idle[-1])
        warm = idle_s < self._warm_for()
        return Ask(warm, self._margin(function, warm), idle_s)

    def work(self, function: str, estimate_s: float) -> float:
        """The work a call of `function` asks for: its estimate, or more where its recent calls took longer (a
        slower GPU than the estimates', a busy one): a margin only covers the start."""
        with self._lock:
            seen = self._work.get(function)
            return max(estimate_s, percentile(seen, PERCENTILE)) if seen else estimate_s

    def peek(self, function: str, now: float) -> Ask:
        """What a call of `function` starting now would ask (nothing changes)."""
        with self._lock:
            return self._ask(function, now, take=False)

    def ask(self, function: str, now: float) -> Ask:
        """What a call of `function` starting now asks; it takes the idle worker that returned last, if any."""
        with self._lock:
            return self._ask(function, now, take=True)

    def returned(self, function: str, ask: Ask, *, started: float, now: float, work_s: float,
                 release: bool = True) -> tuple[bool, float]:
        """A call that asked `ask` and started at `started` returned at `now` after `work_s` of its own work: learn
        its overhead, and whether its worker was warm (an idle one, and an overhead nearer the warm margin than the
        cold one). Returns both. Its worker is idle again, unless `release` is False (a stream, still running: then
        `released` when it ends)."""
        overhead = max(0.0, now - started - work_s)
        with self._lock:
            between = (self._margin(function, True, after_abort=False) + self._margin(function, False, after_abort=False))
            warm = ask.idle_s is not None and overhead < between / 2
            if ask.idle_s is not None:
                self._learn_window(ask.idle_s, warm)
            self._overheads.setdefault((function, warm), deque(maxlen=RECENT_CALLS)).append(overhead)
            self._work.setdefault(function, deque(maxlen=RECENT_CALLS)).append(work_s)
            self._after_abort.pop(warm, None)
        if release:
            self.released(function, now)
        return warm, overhead

    def released(self, function: str, now: float) -> None:
        """A worker of `function` finished its call at `now` and is idle."""
        with self._lock:
            self._idle.setdefault(function, []).append(now)

    def _learn_window(self, idle_s: float, warm: bool) -> None:
        if warm:
            self._longest_warm_gap = max(self._longest_warm_gap, idle_s)
            self._shortest_cold_gap = max(self._shortest_cold_gap, idle_s + 1e-3)  # the latest finding wins
        else:
            self._shortest_cold_gap = min(self._shortest_cold_gap, idle_s)
            self._longest_warm_gap = min(self._longest_warm_gap, idle_s)

    def aborted(self, function: str, ask: Ask) -> None:
        """A call that asked `ask` ran out of time, and its worker is gone. Asked for a warm worker, it most likely
        found a fresh one: the warm window is shorter than its idle time. Asked for a fresh one, the cold margin was
        short: the next cold call asks more."""
        with self._lock:
            if ask.warm and ask.idle_s is not None:
                self._learn_window(ask.idle_s, warm=False)
            else:
                self._after_abort[ask.warm] = min(LARGEST_MARGIN_S, max(self._after_abort.get(ask.warm, 0.0),
                                                                        ask.margin * ABORT_GROWTH))

    def refused(self, function: str, ask: Ask, now: float) -> None:
        """ZeroGPU refused a call before it ran: the idle worker it took, if any, is idle still."""
        if ask.idle_s is not None:
            with self._lock:
                self._idle.setdefault(function, []).insert(0, now - ask.idle_s)

    def describe(self, function: str) -> str:
        """The learned margins in a few words, for the log."""
        with self._lock:
            seen = {warm: len(self._overheads.get((function, warm), ())) for warm in (True, False)}
            return (f"margins now cold {self._margin(function, False):.1f} s ({seen[False]} cold calls seen), warm "
                    f"{self._margin(function, True):.1f} s ({seen[True]} warm seen), warm for {self._warm_for():.0f} s")
