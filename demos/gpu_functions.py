"""GPU functions: `@gpu_task(gpu_seconds=..., cpu_seconds=...)` puts a compute function behind the ZeroGPU boundary.

Off ZeroGPU a GPU function runs in this process, one call at a time, on this machine's device. On ZeroGPU each
call runs where it pays, the Space's CPU or a `spaces.GPU` worker: `demos.placement` decides, `demos.dispatcher`
runs it there. A worker is a forked process (reused while idle, never reliably); its arguments and result are
pickled across (`demos.gpu_worker`). So a GPU function:
1. is a module-level function. It takes CPU values only (numpy arrays, CPU tensors, plain values, checkpoint
   *names*, dataclasses of those; no models, no lambdas or progress callbacks: they do not pickle) and returns CPU
   tensors/arrays. It calls `checkpoints.load(name)` itself (a lookup of the resident model, or of its CPU copy on
   the Space's CPU) and moves inputs with `devices.on_model`.
2. leaves caches (`demos.cache.LRUCache`) to the main process: the parent looks the cache up, passes the cached
   intermediate in (`targets=None` or a tensor), and stores what the GPU function returns. Progress is reported
   by the parent, before and after the call.
3. estimates its work: `gpu_seconds` and `cpu_seconds`, in seconds or callables of the call's own arguments. They
   decide where a call runs, and what it asks ZeroGPU for (`DISPATCHER.requested_seconds`); the default size
   ("large"). A `UserError` raised inside keeps its message across the process boundary (ZeroGPU would hide it);
   generator functions stream. When ZeroGPU refuses or fails a call, `GpuUnavailable` tells the action to run
   again on the CPU (`DISPATCHER.action`).
4. never calls another GPU function: it calls that one's undecorated `.plain` function.
"""

from __future__ import annotations

import functools
import inspect

from demos import gpu_worker, zerogpu
from demos.dispatcher import DISPATCHER, GpuFunction


def gpu_task(fn=None, *, gpu_seconds, cpu_seconds):
    """Mark a compute function as a GPU function: each call goes through `DISPATCHER.run`. Elsewhere than ZeroGPU
    it runs in this process, one call at a time, on this machine's device. On ZeroGPU each call runs where it pays
    (`placement.place`): on the Space's CPU (its CPU copies of the models) when the CPU finishes it quickly or
    sooner than a GPU call would, or when the action runs on the CPU already; else in a `spaces.GPU` worker. When
    ZeroGPU refuses or fails the call it raises `GpuUnavailable`, and the action runs again on the CPU.

    `gpu_seconds` and `cpu_seconds` estimate the work on each (seconds, or callables of the call's own
    arguments); `cpu_seconds` is of the development CPU (`devices.on_this_cpu` adjusts it to this one). Each call
    records a `Run`. `wrapper.plain` is the undecorated function (for calls from inside another GPU function),
    `wrapper.duration` the duration as asked of ZeroGPU (a callable), for `bench.bench_gpu`.
    """
    if fn is None:
        return functools.partial(gpu_task, gpu_seconds=gpu_seconds, cpu_seconds=cpu_seconds)
    streams = inspect.isgeneratorfunction(fn)

    def duration(*args, **kwargs) -> int:
        return DISPATCHER.duration(task.name, task.gpu_work_s(args, kwargs))

    on_gpu = None
    if zerogpu.ON_ZERO_GPU:
        import spaces

        on_gpu = spaces.GPU(gpu_worker.inside_a_worker(fn, streams), duration=duration)
    task = GpuFunction(fn.__qualname__, fn, streams, gpu_seconds, cpu_seconds, on_gpu)

    # The caller's side keeps the function's kind: a stream stays a generator function, a plain call returns the
    # one item of its stream.
    if streams:

        @functools.wraps(fn)
        def call(*args, **kwargs):
            yield from DISPATCHER.run(task, args, kwargs)
    else:

        @functools.wraps(fn)
        def call(*args, **kwargs):
            (result,) = DISPATCHER.run(task, args, kwargs)
            return result

    call.plain, call.duration = fn, duration
    return call
