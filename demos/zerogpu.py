"""ZeroGPU's side of the Space: what it is, what one visitor's action carries, and what a refusal says.

- `ON_ZERO_GPU` (from SPACES_ZERO_GPU): on ZeroGPU, `spaces` is imported here, at import, before anything touches
  CUDA: import this module before any that might (app.py imports `checkpoints`, which imports it, first). The
  parent keeps torch at one thread, so that a forked GPU worker never inherits a used OpenMP pool.
- `GPU_COLD_START_S`, `GPU_WARM_START_S`, `GPU_WARM_FOR_S`: the start margins and warm window the Space assumes
  before it has seen a GPU call (`demos.gpu_margins` learns them).
- `request_scope()`, `on_cpu(why)`, `cpu_reason()`, `signed_in()`, `runs()`, `record(run)`: one visitor's action,
  whether it runs on the Space's CPU and why, and where its GPU functions ran (`Run`). `checkpoints.load` returns
  the CPU copy of a checkpoint inside a CPU run.
- `GpuUnavailable`, `refusal(error)`: ZeroGPU refused or failed a call, in words a learner reads.
- `cpu_thread()`: the one thread, with every core, that runs the Space's own model work.

Where each call runs, and what a refusal does, is decided in `demos.placement` and carried out by
`demos.dispatcher`; the decorator that sends a compute function across the boundary is `demos.gpu_functions`.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import pickle
import threading
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass

ENV_ZERO_GPU = "SPACES_ZERO_GPU"  # set by Hugging Face on a ZeroGPU Space ("1"/"t"/"true", as `spaces` reads it)

ON_ZERO_GPU = os.environ.get(ENV_ZERO_GPU, "").lower() in ("1", "t", "true")
if ON_ZERO_GPU:
    import spaces  # noqa: F401  before anything touches CUDA (it refuses to start otherwise)
    import torch

    torch.set_num_threads(1)  # the parent never fills an OpenMP pool that a forked worker would inherit

# What a GPU call asks ZeroGPU for: a start margin plus the function's own work estimate (`gpu_seconds` of each
# compute module: about 3x what `python -m bench.bench_gpu` measured). A worker that ran the same function a
# moment ago is kept and reused while idle; a fresh one first starts CUDA, reads ZeroGPU's packed weights, copies
# them to the GPU and runs its first kernels. These are the assumptions the Space starts from; `demos.gpu_margins`
# learns the margins and the warm window from the calls it sees, and the log says what it learned.
GPU_COLD_START_S = 6.0
GPU_WARM_START_S = 1.0
GPU_WARM_FOR_S = 30.0  # a function's worker counts as warm this long after a call of it returned


@dataclass(frozen=True)
class Run:
    """Where one call of a GPU function ran, for the page's note and the numbers."""

    function: str
    device: str  # "gpu" (a ZeroGPU worker, or this machine's device off ZeroGPU) or "cpu" (the Space's CPU)
    why: str  # why it ran where it did ("" off ZeroGPU)
    fallback: bool  # ZeroGPU could not run it (quota, no GPU, a failed call), so the Space's CPU did
    seconds: float  # from the call to its result; for a GPU call, about the seconds it held its worker
    asked: int | None = None  # the seconds a GPU call asked ZeroGPU for (None on the CPU or off ZeroGPU)
    together: int = 1  # the visitors' actions this one call answered (questions answered together)
    shared: bool = False  # another of those actions counts this call


class GpuUnavailable(Exception):
    """ZeroGPU refused or failed a call (quota, no GPU free, queue timeout, an aborted or failed task).

    Not a UserError: the dispatcher runs the whole action again on the Space's CPU (`on_cpu(error.why)`), planned
    for the CPU. `why` says what happened in words a learner reads; `detail` is ZeroGPU's own message; `kind` is
    "quota" (the visitor's quota, or no GPU free for them), "aborted" (the call ran past its duration) or "failed".
    """

    def __init__(self, why: str, detail: str, kind: str):
        super().__init__(f"{why} ({detail})")
        self.why, self.detail, self.kind = why, detail, kind


# ZeroGPU's messages, as `spaces` raises them: (what the message says, what the learner reads, its kind).
_REFUSALS = (
    ("Space app has reached its GPU limit", "the GPU time this Space shares among visitors who are not signed in "
     "on huggingface.co is used up for now", "quota"),
    ("No GPU was available after", "no GPU was free within a minute", "quota"),
    ("exceeded your", "your ZeroGPU quota is used up for now", "quota"),
    ("No GPU was available", "no GPU was available", "quota"),
    ("GPU task aborted", "the GPU call ran out of its time", "aborted"),
    ("illegal duration", "ZeroGPU refused the GPU time this asked for", "failed"),
)


def refusal(error: Exception) -> GpuUnavailable | None:
    """What `spaces` raised, as a `GpuUnavailable`; None for an error that is the caller's (a value that does not
    pickle or cross, a visitor who left while queued)."""
    if isinstance(error, (pickle.PicklingError, CrossingError)) or "closed by visitor" in str(error):
        return None
    detail = " ".join(str(part) for part in (getattr(error, "title", ""), getattr(error, "message", error)) if part)
    for marker, why, kind in _REFUSALS:
        if marker.lower() in detail.lower():
            return GpuUnavailable(why, detail, kind)
    return GpuUnavailable("the GPU call failed", detail or type(error).__name__, "failed")


# Per request (set by `dispatcher.DISPATCHER.request_scope`, which the tabs' handler wrapper opens): the runs so
# far, whether the visitor is signed in, and, when the request runs on the Space's CPU, why (`on_cpu`). Inside a
# CPU run it also tells `checkpoints.load` to return the CPU copy of a checkpoint.
_runs: ContextVar[list | None] = ContextVar("pdr_runs", default=None)
_signed_in: ContextVar[bool] = ContextVar("pdr_signed_in", default=False)
_cpu_reason: ContextVar[str | None] = ContextVar("pdr_cpu_reason", default=None)


@contextlib.contextmanager
def request_scope(*, signed_in: bool = False, cpu_reason: str | None = None):
    """One visitor's action: collects its `Run`s (yielded list); with `cpu_reason`, it runs on the Space's CPU from
    its start, for that reason (`placement.action_on_cpu` decides it)."""
    runs: list[Run] = []
    tokens = [_runs.set(runs), _signed_in.set(signed_in), _cpu_reason.set(cpu_reason)]
    try:
        yield runs
    finally:
        for var, token in zip((_runs, _signed_in, _cpu_reason), tokens, strict=True):
            var.reset(token)


@contextlib.contextmanager
def on_cpu(why: str):
    """Run the rest of this action on the Space's CPU (its CPU copies of the models), planned for the CPU
    (`devices.models_on_gpu()` is False inside), for the reason given."""
    token = _cpu_reason.set(why)
    try:
        yield
    finally:
        _cpu_reason.reset(token)


def cpu_context(why: str) -> contextvars.Context:
    """A copy of the current context in which the action runs on the Space's CPU for `why`: to run its work in
    another thread (`cpu_thread`)."""
    context = contextvars.copy_context()
    context.run(_cpu_reason.set, why)
    return context


def cpu_reason() -> str | None:
    """Why this action runs on the Space's CPU, or None (ZeroGPU only)."""
    return _cpu_reason.get()


def worth_preparing() -> bool:
    """Whether model work done ahead of a click (a clip's prepare) pays here. Off ZeroGPU it does: the click then
    runs less on this machine. On ZeroGPU only on the Space's CPU: a GPU call of its own costs a prepare more
    (ZeroGPU's scheduling, a start margin of quota) than it saves the click's GPU call (an encoder pass there takes
    a few hundredths of a second)."""
    return not ON_ZERO_GPU or _cpu_reason.get() is not None


def signed_in() -> bool:
    """Whether the visitor of this action is signed in on huggingface.co (a ZeroGPU quota of their own)."""
    return _signed_in.get()


def runs() -> list[Run]:
    """Where this action's GPU functions ran so far (see `request_scope`)."""
    return list(_runs.get() or [])


def record(run: Run) -> None:
    """Add `run` to this action's runs (nothing outside a `request_scope`)."""
    runs = _runs.get()
    if runs is not None:
        runs.append(run)


class CrossingError(TypeError):
    """A GPU function's argument or answer holds a tensor that cannot cross the worker boundary
    (`gpu_worker.check_crossing`): a mistake in the code, not the visitor's, raised as it is, never taken for a
    refusal that sends the action to the CPU."""


class ResidentModelError(RuntimeError):
    """A resident model computed in the Space's process after launch, where ZeroGPU has packed its weights away (on
    the main thread that raises; in any other thread it computes with zeros, silently): a mistake in the code."""


def compute_only_in_workers(models) -> None:
    """From now on a forward of any module of `models` (the resident ones) outside a ZeroGPU worker raises
    `ResidentModelError`: after launch the Space's process computes with its CPU copies only."""
    import weakref

    import torch

    resident = weakref.WeakSet(module for model in models for module in model.modules())

    def refuse(module, _inputs):
        if module in resident and not _in_a_worker:
            raise ResidentModelError(
                f"{type(module).__name__}, of a model resident on ZeroGPU's GPU, ran in the Space's process: ZeroGPU packs "
                "those weights away at launch, so only a GPU function's worker computes with them. Work on the Space's "
                "CPU uses the CPU copies (`checkpoints.load` inside a CPU run).")

    torch.nn.modules.module.register_module_forward_pre_hook(refuse)


def on_emulated_cuda(tensor) -> bool:
    """Whether `tensor` is one of ZeroGPU's emulated CUDA tensors in the Space's process: it reports "cpu" outside the
    main thread, and its data is packed away after launch."""
    if not ON_ZERO_GPU or _in_a_worker:
        return False
    from spaces.zero.torch import patching

    return tensor in patching.cuda_aliases


_in_a_worker = False  # set in a ZeroGPU worker (a forked process) when it runs its first GPU function


def now_in_a_worker() -> None:
    """Mark this process as a ZeroGPU worker (`gpu_worker.inside_a_worker` does, in the worker)."""
    global _in_a_worker
    _in_a_worker = True


def in_a_worker() -> bool:
    """Whether this process is a ZeroGPU worker: the one place the resident models compute after launch."""
    return _in_a_worker


def duration_factor() -> float | None:
    """What `spaces` multiplies each requested duration by on this Space's GPU model (its `configs.json`, picked by the
    model the NVIDIA driver reports: 1.5 on the RTX PRO 6000, 1.0 on the H200): the quota a call asking N s is
    admitted against is N x this. None off ZeroGPU."""
    if not ON_ZERO_GPU:
        return None
    from spaces.zero import config

    return float(config.get_config()["duration_factor"])


def gpu_model() -> str | None:
    """The GPU model `spaces` plans for (see `duration_factor`); None off ZeroGPU."""
    if not ON_ZERO_GPU:
        return None
    from spaces.zero import config

    return config.get_config()["model"]


def use_all_cores() -> None:
    """Torch in this thread uses every core (the ZeroGPU parent keeps one; a GPU worker and the CPU thread all)."""
    import torch

    # torch gives a thread the process's last count at its first torch call; make that call first, or the count set
    # here is replaced by the parent's one thread at the next.
    torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)


# One model computation at a time on the Space's CPU, in one thread that uses every core and never starts a GPU
# worker: ZeroGPU forks its workers from the threads that call GPU functions, and a fork must not inherit a used
# OpenMP pool (those threads stay at one torch thread, as the whole parent does).
_cpu_worker: ThreadPoolExecutor | None = None
_cpu_worker_lock = threading.Lock()


def cpu_thread() -> ThreadPoolExecutor:
    """The Space's CPU thread (started on first use, with every core): submit model work on the CPU copies to it."""
    global _cpu_worker
    with _cpu_worker_lock:
        if _cpu_worker is None:
            import torch

            others = torch.get_num_threads()  # one in a ZeroGPU parent
            _cpu_worker = ThreadPoolExecutor(1, thread_name_prefix="pdr-cpu-models", initializer=use_all_cores)
            _cpu_worker.submit(int).result()  # its thread now keeps every core...
            torch.set_num_threads(others)  # ...and the threads that start later as many as before
    return _cpu_worker
