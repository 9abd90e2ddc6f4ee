"""What a GPU function runs inside a ZeroGPU worker, and what comes back across the process boundary.

A worker is a forked process; its answers are pickled back to the Space. `inside_a_worker(fn, streams)` is what
`gpu_functions.gpu_task` hands to `spaces.GPU`: it runs `fn` with every core, carries a `UserError` back as a plain
value (`Failure`: ZeroGPU would hide its message), and times the function's own work before its first answer
(`Timed`), from which the dispatcher learns what the call cost beyond its work. `value_of` opens an answer again.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

from demos import zerogpu
from demos.errors import UserError
from demos.streams import as_stream


@dataclass(frozen=True)
class Failure:
    """A UserError raised inside a GPU function, carried back as a plain value (ZeroGPU hides exceptions)."""

    kind: type
    message: str

    def error(self) -> UserError:
        try:
            return self.kind(self.message)
        except Exception:  # a subclass with another constructor: the message is what matters
            return UserError(self.message)


@dataclass(frozen=True)
class Timed:
    """A worker's first answer (its result, a stream's first item, or a `Failure`) with the seconds of the function's
    own work before it, measured in the worker: the rest of the time until it arrived is the call's overhead."""

    value: object
    work_s: float


def inside_a_worker(fn, streams: bool):
    """`fn` as it runs in a worker: every core, its first answer `Timed`, a UserError as a `Failure` (a stream's last
    item). A generator function stays one; a plain function returns its one answer."""

    def answers(*args, **kwargs):
        zerogpu.use_all_cores()
        started, first = time.perf_counter(), True
        try:
            for item in as_stream(fn, args, kwargs, streams=streams):
                yield Timed(item, time.perf_counter() - started) if first else item
                first = False
        except UserError as error:
            failure = Failure(type(error), str(error))
            yield Timed(failure, time.perf_counter() - started) if first else failure

    if streams:
        return functools.wraps(fn)(answers)

    @functools.wraps(fn)
    def answer(*args, **kwargs):
        (timed,) = answers(*args, **kwargs)
        return timed

    return answer


def value_of(answer):
    """The value a worker's answer carries; a `Failure` raises its UserError here, in the Space."""
    if isinstance(answer, Timed):
        answer = answer.value
    if isinstance(answer, Failure):
        raise answer.error()
    return answer
