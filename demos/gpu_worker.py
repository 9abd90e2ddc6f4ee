"""What a GPU function runs inside a ZeroGPU worker, and what crosses the process boundary.

A worker is a forked process, reused for later calls of its function while ZeroGPU says it is idle; arguments and
answers cross with torch's multiprocessing pickler. `inside_a_worker(fn, streams)` is what `gpu_functions.gpu_task`
hands to `spaces.GPU`:
- it runs `fn` with every core, in a context of its own: a reused worker still holds the context of the request it
  was forked from (`spaces/zero/wrappers.py`), so whatever a function needs of the visitor comes in its arguments;
- it carries a `UserError` back as a plain value (`Failure`: ZeroGPU would hide its message);
- it times the function's own work before its first answer (`Timed`), from which the dispatcher learns what the call
  cost beyond its work.
`value_of` opens an answer again. `check_crossing` refuses, on either side, a tensor that cannot cross: one on the GPU
(it would arrive as a CUDA handle the Space's process cannot open) or one that needs grad (the pickler refuses it,
and ZeroGPU then loses the call's worker).
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import time
from dataclasses import dataclass

from demos import zerogpu
from demos.errors import UserError
from demos.streams import as_stream
from demos.zerogpu import CrossingError


def check_crossing(value, where: str) -> None:
    """Raise `CrossingError` if `value` (tensors, arrays, plain values, and lists, tuples, dicts and dataclasses of
    them) holds a tensor on a device other than the CPU, or one that needs grad. `where` names it in the message."""
    import torch

    if isinstance(value, torch.Tensor):
        if zerogpu.on_emulated_cuda(value):
            raise CrossingError(f"{where} is a tensor of a model resident on ZeroGPU's GPU, packed away in the Space's "
                                "process: a GPU function loads the model itself (`checkpoints.load`).")
        if value.device.type != "cpu":
            raise CrossingError(f"{where} is a tensor on {value.device}: move it to the CPU (.cpu()) before it crosses.")
        if value.requires_grad:
            raise CrossingError(f"{where} is a tensor that needs grad: compute under torch.inference_mode() or detach it.")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_crossing(item, f"{where}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_crossing(item, f"{where}[{key!r}]")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for item in dataclasses.fields(value):
            check_crossing(getattr(value, item.name), f"{where}.{item.name}")


@dataclass(frozen=True)
class Failure:
    """A UserError (or a `CrossingError`) raised inside a GPU function, carried back as a plain value (ZeroGPU hides
    exceptions)."""

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


_END = object()


def inside_a_worker(fn, streams: bool):
    """`fn` as it runs in a worker: every core, a context of its own, its first answer `Timed`, a UserError or an
    answer that cannot cross as a `Failure` (a stream's last item). A generator function stays one; a plain function
    returns its one answer."""

    def answers(*args, **kwargs):
        zerogpu.use_all_cores()
        zerogpu.now_in_a_worker()
        context = contextvars.Context()  # no visitor's: not the one this worker was forked from
        started, first = time.perf_counter(), True
        try:
            items = context.run(as_stream, fn, args, kwargs, streams=streams)
            while (item := context.run(next, items, _END)) is not _END:
                check_crossing(item, f"what {fn.__qualname__} returned")
                yield Timed(item, time.perf_counter() - started) if first else item
                first = False
        except (UserError, CrossingError) as error:
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
