"""The one registry of every Hugging Face checkpoint the Space uses, and how they are loaded.

- `REGISTRY`: hub id, revision, model class and processor of each checkpoint.
- `load(name)`: lazy, cached, thread-safe loading (first use only, once per process) through the
  ordinary `from_pretrained(hub_id)` path, on the device and dtype chosen by `device_and_dtype()`.
- `gpu_task(gpu_seconds=..., cpu_seconds=...)`: the ZeroGPU boundary: on ZeroGPU each call runs where it pays
  (the Space's CPU or a `spaces.GPU` worker) and a refusal becomes `GpuUnavailable`; elsewhere the function
  itself, one call at a time per process.
- `models_on_gpu()`: whether models will run on a GPU, without loading any: per-device defaults.
- `preload_all()`: ZeroGPU start-up, every checkpoint resident before `launch()`, with a CPU copy.
- `request_scope()`, `on_cpu(why)`, `runs()`: one visitor's action on ZeroGPU, and where its work ran.
- `enable_offline_demo()`: the explicit offline demo mode (tiny random-weight models, see `offline/replicas.py`).

CLI: `python checkpoints.py list` and `python checkpoints.py download [names]`.
No gradio here: a checkpoint that cannot be fetched raises `CheckpointUnavailable`, a `UserError`.

ZeroGPU (`ON_ZERO_GPU`, from SPACES_ZERO_GPU). Each call of a `spaces.GPU` function runs in a forked
worker process (reused while idle, never reliably); its arguments and result are pickled across. So:
1. `import spaces` happens here, at import, before anything touches CUDA: import `checkpoints` before
   any module that might (app.py imports it first). The parent keeps torch at one thread, so that a
   forked worker never inherits a used OpenMP pool; `gpu_task` sets the threads back inside the worker.
   The Space's own CPU work runs in one thread of its own, with every core (`_cpu_pool`).
2. Every checkpoint is loaded and moved to the device once, at start-up, before `launch()`:
   app.py calls `preload_all()`. A model check that touches weights (a mask token, an encoder
   comparison) belongs in that checkpoint's loader, registered with `use_loader(name, fn)`, so it runs
   then too. Afterwards `load()` of a checkpoint that is not resident raises a `UserError`: nothing
   loads inside a GPU function. Elsewhere (CPU, local GPU) loading stays lazy. ZeroGPU packs the device
   copies away at launch, so the main process keeps a CPU copy of each (`cpu_copy_names`) for the work
   that runs there: `load()` returns it inside `on_cpu`.
3. A GPU function is a module-level function decorated `@checkpoints.gpu_task(gpu_seconds=..., cpu_seconds=...)`. It takes
   CPU values only (numpy arrays, CPU tensors, plain values, checkpoint *names*, dataclasses of those;
   no models, no lambdas or progress callbacks: they do not pickle) and returns CPU tensors/arrays.
   It calls `load(name)` itself (a lookup of the resident model) and moves inputs with `on_model`.
4. Caches (`demos.cache.LRUCache`) live in the main process: the parent looks the cache up, passes the
   cached intermediate in (`targets=None` or a tensor), and stores what the GPU function returns.
   Progress is reported by the parent, before and after the call.
5. `gpu_seconds` and `cpu_seconds`: the work on each, in seconds or callables of the call's own arguments.
   They decide where a call runs, and what it asks ZeroGPU for (`requested_seconds`: the work and a warm or
   cold worker's start margin, whole seconds); the default size ("large"). A `UserError` raised inside keeps
   its message across the process boundary (ZeroGPU would hide it); generator functions stream. When ZeroGPU
   refuses or fails a call, `GpuUnavailable` tells the tab to run the action again `on_cpu`.
6. Never call a GPU function from inside another: call its undecorated `.plain` function there.
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import functools
import importlib
import inspect
import logging
import math
import os
import pickle
import platform
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from demos.errors import UserError

log = logging.getLogger(__name__)

# Environment variables that override the policy below.
ENV_DEVICE = "PDR_DEVICE"  # "cpu", "cuda", "cuda:1", ...
ENV_DTYPE = "PDR_DTYPE"  # "float32", "bfloat16" or "float16"
ENV_OFFLINE_DEMO = "PDR_OFFLINE_DEMO"  # "1": tiny random-weight models, a banner says so
ENV_PROJECTOR_REPO = "PDR_PROJECTOR_REPO"  # hub id of a trained VQA projector (none is published)
ENV_CPU_INT8 = "PDR_CPU_INT8"  # "0": keep the LLM's linear layers in floating point on a CPU
ENV_ZERO_GPU = "SPACES_ZERO_GPU"  # set by Hugging Face on a ZeroGPU Space ("1"/"t"/"true", as `spaces` reads it)
ENV_PRELOAD = "PDR_PRELOAD"  # ZeroGPU: comma-separated names to load at start-up (default: every checkpoint)
ENV_CPU_PACE = "PDR_CPU_PACE"  # ZeroGPU: this CPU's pace against the estimates' CPU (default: measured at start-up)
ENV_CPU_COPIES = "PDR_CPU_COPIES"  # ZeroGPU: names that also get a CPU copy at start-up (default: the same; "none")

ON_ZERO_GPU = os.environ.get(ENV_ZERO_GPU, "").lower() in ("1", "t", "true")
if ON_ZERO_GPU:
    import spaces  # noqa: F401  before anything touches CUDA (it refuses to start otherwise)
    import torch

    torch.set_num_threads(1)  # the parent never fills an OpenMP pool that a forked worker would inherit

HUB_CHECK_TIMEOUT_S = 2.0  # how long a checkpoint missing from the cache waits for the Hub's first answer


@dataclass(frozen=True)
class Checkpoint:
    name: str  # short name used in the UI, the CLI and the code
    hub_id: str
    model_class: str  # a transformers class name, or "module:Class" for our own hub mixins
    processor_class: str | None  # transformers Auto class for its processor or tokenizer
    params_millions: float  # published parameter count, for `list` and memory planning
    description: str
    # "main" until a commit id is pinned here: commit ids can only be read from the Hub, which the
    # machines this was written on cannot reach (see README, "Pinning revisions").
    revision: str = "main"
    # Token-by-token decoding is memory-bound matrix-vector work: on a CPU, int8 weights (dynamic
    # quantisation) decoded Qwen2.5-0.5B 4.9x faster than fp32 here, and bf16 was 3.6x slower than fp32.
    cpu_int8: bool = False
    # The files the app loads from the repo, by name: `preload_from_hub` in the README front matter lists
    # them, and `download` fetches them plus every small JSON config (`allow_patterns`). Never the other
    # formats the repos also hold (tf_model.h5, flax_model.msgpack, the original .pth): up to 2.6 GB each.
    files: tuple[str, ...] = ("config.json", "model.safetensors")

    @property
    def allow_patterns(self) -> list[str]:
        """`snapshot_download` patterns: the listed files, and any `*.json` (a few KB each), so that a
        processor config is fetched whatever its name (the V-JEPA 2 repos' listing could not be checked)."""
        return [*self.files, "*.json"]


# vit-mae-large and -huge publish only pytorch_model.bin (besides tf_model.h5); base has safetensors.
_MAE_FILES = ("config.json", "preprocessor_config.json", "model.safetensors")
_MAE_BIN_FILES = ("config.json", "preprocessor_config.json", "pytorch_model.bin")
_QWEN_FILES = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
               "vocab.json", "merges.txt")
# transformers would otherwise, on loading a .bin repo online, look for (and may download, 1.3 GB for
# vit-mae-large's refs/pr/1) a safetensors conversion in a background thread. The .bin loads as it is.
os.environ.setdefault("DISABLE_SAFETENSORS_CONVERSION", "1")


REGISTRY: dict[str, Checkpoint] = {
    c.name: c
    for c in [
        Checkpoint(
            "vit-mae-base", "facebook/vit-mae-base", "ViTMAEForPreTraining", "AutoImageProcessor", 112,
            "ViT-B/16 masked autoencoder, pixel targets (MAE paper's visualisation checkpoint)", files=_MAE_FILES,
        ),
        Checkpoint(
            "vit-mae-large", "facebook/vit-mae-large", "ViTMAEForPreTraining", "AutoImageProcessor", 330,
            "ViT-L/16 masked autoencoder, pixel targets", files=_MAE_BIN_FILES,
        ),
        Checkpoint(
            "vit-mae-huge", "facebook/vit-mae-huge", "ViTMAEForPreTraining", "AutoImageProcessor", 657,
            "ViT-H/14 masked autoencoder, pixel targets (14-pixel patches)", files=_MAE_BIN_FILES,
        ),
        Checkpoint(
            "vjepa2-vitl", "facebook/vjepa2-vitl-fpc64-256", "VJEPA2Model", "AutoVideoProcessor", 326,
            "V-JEPA 2 ViT-L encoder (304M) + predictor (22M), 256 px, 16-pixel patches, tubelets of 2",
        ),
        Checkpoint(
            "vjepa2-ssv2-probe", "facebook/vjepa2-vitl-fpc16-256-ssv2", "VJEPA2ForVideoClassification",
            "AutoVideoProcessor", 375, "attentive probe on the frozen ViT-L: Something-Something v2, 174 actions",
        ),
        Checkpoint(
            "vjepa2-diving48-probe", "facebook/vjepa2-vitl-fpc32-256-diving48", "VJEPA2ForVideoClassification",
            "AutoVideoProcessor", 375, "attentive probe on the frozen ViT-L: Diving48, 48 dives",
        ),
        Checkpoint(
            "qwen2.5-0.5b-instruct", "Qwen/Qwen2.5-0.5B-Instruct", "AutoModelForCausalLM", "AutoTokenizer", 494,
            "small instruct LLM that answers questions about a clip (VQA head)", cpu_int8=True, files=_QWEN_FILES,
        ),
        Checkpoint(
            "vqa-projector", os.environ.get(ENV_PROJECTOR_REPO, ""), "demos.projector:VideoProjector", None, 5,
            "MLP projector from frozen V-JEPA 2 tokens into the LLM (train with train_projector.py)",
        ),
    ]
}

MAE_CHECKPOINTS = ["vit-mae-base", "vit-mae-large", "vit-mae-huge"]


def get(name: str) -> Checkpoint:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UserError(f"Unknown checkpoint '{name}'. Choose one of: {', '.join(REGISTRY)}.") from None


# ---------------------------------------------------------------------------------------------
# Device and dtype policy
# ---------------------------------------------------------------------------------------------

_DTYPE_NAMES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
                "float16": "float16", "fp16": "float16"}


def _cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: the CPU computes bf16 itself instead of emulating it (emulation is slower)."""
    if platform.system() != "Linux":
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@functools.cache
def _cpu_bf16_is_faster() -> bool:
    """Native bf16 is necessary but not sufficient: time one matmul of transformer size both ways."""
    import torch

    if not _cpu_has_native_bf16():
        return False

    def best_of(dtype) -> float:
        a = torch.randn(1024, 1024, dtype=dtype)
        times = []
        for _ in range(4):
            start = time.perf_counter()
            a @ a
            times.append(time.perf_counter() - start)
        return min(times[1:])

    fp32, bf16 = best_of(torch.float32), best_of(torch.bfloat16)
    log.info("CPU matmul 1024^2: fp32 %.1f ms, bf16 %.1f ms", fp32 * 1e3, bf16 * 1e3)
    return bf16 < 0.8 * fp32


def _requested_dtype():
    """The dtype PDR_DTYPE asks for, or None."""
    import torch

    requested = os.environ.get(ENV_DTYPE, "").strip().lower()
    if not requested:
        return None
    if requested not in _DTYPE_NAMES:
        raise UserError(f"{ENV_DTYPE}={requested!r} is not one of {', '.join(sorted(set(_DTYPE_NAMES.values())))}.")
    return getattr(torch, _DTYPE_NAMES[requested])


@functools.cache
def cpu_dtype():
    """The dtype models run in on this machine's CPU: bf16 only where it is native and measured faster."""
    import torch

    return _requested_dtype() or (torch.bfloat16 if _cpu_bf16_is_faster() else torch.float32)


@functools.cache
def device_and_dtype():
    """CUDA when present; on CPU, bf16 only where it is native and measured faster; env overrides both."""
    import torch

    # On ZeroGPU the parent has no GPU, only CUDA emulation: ask nothing of torch.cuda there.
    default = "cuda" if ON_ZERO_GPU or torch.cuda.is_available() else "cpu"
    device = torch.device(os.environ.get(ENV_DEVICE) or default)
    if device.type == "cuda":  # ZeroGPU's GPUs compute bf16
        dtype = _requested_dtype() or (torch.bfloat16 if ON_ZERO_GPU or torch.cuda.is_bf16_supported() else torch.float16)
    else:
        dtype = cpu_dtype()
    log.info("Models run on %s in %s", device, dtype)
    return device, dtype


def models_on_gpu() -> bool:
    """Whether models will run on a GPU, known without loading anything, timing the CPU or touching CUDA
    on ZeroGPU (its parent has no GPU): what a tab's per-device defaults are chosen from. False inside an
    action that runs on the Space's CPU (`on_cpu`), so that it is planned for the CPU."""
    import torch

    if _cpu_reason.get() is not None:
        return False
    requested = os.environ.get(ENV_DEVICE, "")
    return requested.startswith("cuda") if requested else ON_ZERO_GPU or torch.cuda.is_available()


def wait_for(model) -> None:
    """Wait until the model's device has finished its queued work (a GPU runs asynchronously), so a stage's
    timer stops when the stage is done, not when it was queued. Nothing to wait for on a CPU."""
    device = next(model.parameters()).device
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


def on_model(model, tensor):
    """`tensor` on the model's device, and in its dtype when it holds floats (ids stay integers)."""
    parameter = next(model.parameters())
    return tensor.to(parameter.device, parameter.dtype if tensor.is_floating_point() else tensor.dtype)


# ---------------------------------------------------------------------------------------------
# The ZeroGPU boundary (rules in the module docstring)
# ---------------------------------------------------------------------------------------------


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


# What a GPU call asks ZeroGPU for: a start margin plus the function's own work estimate (`gpu_seconds` of each
# compute module: about 3x what `python -m bench.bench_gpu` measured on an H200). A worker that ran the same
# function a moment ago is kept and reused while idle; a fresh one first starts CUDA, reads ZeroGPU's packed
# weights and copies them to the GPU (every resident model: 0.6 s measured on an H200), and runs its first
# kernels (0.7-1.1 s measured). CUDA's start and the packed-weights read could not be measured here (1-3 s
# elsewhere): the Space's log says what each call asked and how long it held the GPU.
GPU_COLD_START_S = 6.0
GPU_WARM_START_S = 1.0
GPU_WARM_FOR_S = 30.0  # a function's worker counts as warm this long after a call of it returned
# What a GPU call costs a learner beyond its work: ZeroGPU's scheduling round trip and the hand-off to the worker
# (an estimate; the log of a ZeroGPU Space gives the real figure).
ZEROGPU_CALL_S = 1.0
# An action the Space's CPU finishes within this runs there even where a GPU would be faster: a learner barely
# notices, and the class keeps its shared GPU quota for the actions that need a GPU.
CPU_QUICK_S = 1.5
# The longest a learner is asked to wait for an action on the Space's CPU when ZeroGPU cannot run it; a longer
# one ends with a message saying when to retry.
CPU_PATIENCE_S = 30.0
# Visitors who are not signed in on huggingface.co (every learner on a course site) share one ZeroGPU quota. Once
# ZeroGPU has refused one of them, their actions plan for the CPU for this long before a GPU is asked again.
# Signed-in visitors have quotas of their own and always ask.
REFUSED_BACKOFF_S = 300.0
# The compute modules' CPU estimates (`cpu_seconds`) were measured in bf16 on a 2-core CPU that computes it natively,
# whose linear layers ran at about this pace in a ViT-L pass (torch profiler). Other CPUs, and fp32 (the policy on
# CPUs without native bf16), differ by several times: `cpu_pace` measures this one.
REFERENCE_CPU_GFLOPS = 395.0


@dataclass(frozen=True)
class Run:
    """Where one call of a GPU function ran, for the page's note and the numbers."""

    function: str
    device: str  # "gpu" (a ZeroGPU worker, or this machine's device off ZeroGPU) or "cpu" (the Space's CPU)
    why: str  # why it ran where it did ("" off ZeroGPU)
    fallback: bool  # ZeroGPU could not run it (quota, no GPU, a failed call), so the Space's CPU did
    seconds: float


class GpuUnavailable(Exception):
    """ZeroGPU refused or failed a call (quota, no GPU free, queue timeout, an aborted or failed task).

    Not a UserError: the caller runs the whole action again on the Space's CPU (`on_cpu(error.why)`), planned for
    the CPU. `why` says what happened in words a learner reads; `detail` is ZeroGPU's own message; `kind` is
    "quota" (the visitor's quota, or no GPU free for them), "aborted" (the call ran past its duration) or "failed".
    """

    def __init__(self, why: str, detail: str, kind: str):
        super().__init__(f"{why} ({detail})")
        self.why, self.detail, self.kind = why, detail, kind


# Per request (set by the tabs' handler wrapper, `request_scope`): the runs so far, whether the visitor is signed
# in, and, when the request runs on the Space's CPU, why (`on_cpu`). Inside a CPU run it also tells `load` to
# return the CPU copy of a checkpoint.
_runs: ContextVar[list | None] = ContextVar("pdr_runs", default=None)
_signed_in: ContextVar[bool] = ContextVar("pdr_signed_in", default=False)
_cpu_reason: ContextVar[str | None] = ContextVar("pdr_cpu_reason", default=None)

_warm_until: dict[str, float] = {}  # GPU function -> until when its worker counts as warm
_refused: dict = {"until": 0.0, "why": ""}  # the last refusal of a visitor who was not signed in
_state_lock = threading.Lock()


@contextlib.contextmanager
def request_scope(*, signed_in: bool = False):
    """One visitor's action: collects its `Run`s (yielded list) and, on ZeroGPU, plans it for the Space's CPU
    while ZeroGPU refuses visitors who are not signed in (`REFUSED_BACKOFF_S`)."""
    runs: list[Run] = []
    tokens = [_runs.set(runs), _signed_in.set(signed_in)]
    why = None if signed_in or not ON_ZERO_GPU else _refusal_backoff()
    tokens.append(_cpu_reason.set(why))
    try:
        yield runs
    finally:
        for var, token in zip((_runs, _signed_in, _cpu_reason), tokens, strict=True):
            var.reset(token)


@contextlib.contextmanager
def on_cpu(why: str):
    """Run the rest of this action on the Space's CPU (its CPU copies of the models), planned for the CPU
    (`models_on_gpu()` is False inside), for the reason given."""
    token = _cpu_reason.set(why)
    try:
        yield
    finally:
        _cpu_reason.reset(token)


def cpu_reason() -> str | None:
    """Why this action runs on the Space's CPU, or None (ZeroGPU only)."""
    return _cpu_reason.get()


def worth_preparing() -> bool:
    """Whether model work done ahead of a click (a clip's prepare) pays here. Off ZeroGPU it does: the click then
    runs less on this machine. On ZeroGPU only on the Space's CPU: a GPU call of its own costs a prepare more
    (ZeroGPU's scheduling, a start margin of quota) than it saves the click's GPU call (an encoder pass there takes
    a few hundredths of a second)."""
    return not ON_ZERO_GPU or _cpu_reason.get() is not None


def runs() -> list[Run]:
    """Where this action's GPU functions ran so far (see `request_scope`)."""
    return list(_runs.get() or [])


def _refusal_backoff() -> str | None:
    with _state_lock:
        if time.monotonic() < _refused["until"]:
            return _refused["why"]
    return None


def _remember_refusal(refusal: GpuUnavailable) -> None:
    if refusal.kind == "quota" and not _signed_in.get():
        with _state_lock:
            _refused.update(until=time.monotonic() + REFUSED_BACKOFF_S, why=refusal.why)


def _record(run: Run) -> None:
    runs = _runs.get()
    if runs is not None:
        runs.append(run)


def _estimate(seconds, args, kwargs) -> float:
    return float(seconds(*args, **kwargs) if callable(seconds) else seconds)


def requested_seconds(function: str, work_s: float) -> int:
    """The whole seconds a GPU call asks ZeroGPU for: its work estimate and the start margin of a warm or a cold
    worker (ZeroGPU drops fractions of a second, so round up)."""
    with _state_lock:
        warm = time.monotonic() < _warm_until.get(function, 0.0)
    return max(1, math.ceil((GPU_WARM_START_S if warm else GPU_COLD_START_S) + work_s))


def on_this_cpu(seconds: float) -> float:
    """A CPU estimate of the development CPU (`cpu_seconds` of a compute module), for this CPU and its dtype."""
    return seconds * cpu_pace()


@functools.cache
def cpu_pace() -> float:
    """How many times longer model work takes on this CPU, in the dtype its models run in, than on the CPU the
    estimates come from: a matmul of a ViT-L linear layer's shape, timed once on every core (a few tenths of a
    second; on ZeroGPU in the thread that runs the Space's CPU work), unless `PDR_CPU_PACE` sets it."""
    if os.environ.get(ENV_CPU_PACE):
        return float(os.environ[ENV_CPU_PACE])
    measure = _cpu_pool().submit(_matmul_gflops).result() if ON_ZERO_GPU else _matmul_gflops()
    pace = min(10.0, max(0.5, REFERENCE_CPU_GFLOPS / measure))
    log.info("This CPU multiplies in %s at %.0f GFLOP/s: CPU estimates x %.1f", cpu_dtype(), measure, pace)
    return pace


def _matmul_gflops(tokens: int = 1024, width: int = 1024, hidden: int = 4096) -> float:
    import torch

    dtype = cpu_dtype()
    a, b = torch.randn(tokens, width, dtype=dtype), torch.randn(width, hidden, dtype=dtype)
    a @ b  # oneDNN's first call picks its kernels
    repeats, started = 4, time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * tokens * width * hidden * repeats / (time.perf_counter() - started) / 1e9


def _placed_on_cpu(function: str, gpu_work_s: float, cpu_s: float) -> bool:
    """The GPU only where it pays: the CPU takes an action it finishes quickly, or sooner than a GPU call would
    (ZeroGPU's scheduling, and a fresh worker's start, included), counting the CPU work already waiting: in a
    lecture hall the GPU takes what the one CPU thread would only queue."""
    with _state_lock:
        warm = time.monotonic() < _warm_until.get(function, 0.0)
        cpu_s += _cpu_backlog["seconds"]
    gpu_s = ZEROGPU_CALL_S + gpu_work_s + (0.0 if warm else GPU_COLD_START_S - GPU_WARM_START_S)
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


# One model computation at a time on the Space's CPU, in one thread that uses every core and never starts a GPU
# worker: ZeroGPU forks its workers from the threads that call GPU functions, and a fork must not inherit a used
# OpenMP pool (those threads stay at one torch thread, as the whole parent does).
_cpu_worker: ThreadPoolExecutor | None = None
_cpu_worker_lock = threading.Lock()


def _cpu_pool() -> ThreadPoolExecutor:
    global _cpu_worker
    with _cpu_worker_lock:
        if _cpu_worker is None:
            import torch

            others = torch.get_num_threads()  # one in a ZeroGPU parent
            _cpu_worker = ThreadPoolExecutor(1, thread_name_prefix="pdr-cpu-models", initializer=_use_all_cores)
            _cpu_worker.submit(int).result()  # its thread now keeps every core...
            torch.set_num_threads(others)  # ...and the threads that start later as many as before
    return _cpu_worker


_cpu_backlog = {"seconds": 0.0}  # estimated CPU seconds of the work queued or running in the CPU thread


@contextlib.contextmanager
def _queued_on_the_cpu(seconds: float):
    with _state_lock:
        _cpu_backlog["seconds"] += seconds
    try:
        yield
    finally:
        with _state_lock:
            _cpu_backlog["seconds"] -= seconds


def _on_the_cpu(fn, args, kwargs, why: str, seconds: float):
    """Run `fn` on the Space's CPU copies (its result, or for a generator function a generator), in the CPU thread;
    `seconds` is its estimate, counted in the CPU's backlog until it is done."""
    context = contextvars.copy_context()
    context.run(_cpu_reason.set, why)
    pool = _cpu_pool()
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
# them), and the Space's CPU work runs in `_cpu_pool`'s one thread.
_device_lock = threading.Lock()


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


def _use_all_cores() -> None:
    import torch

    torch.set_num_threads(os.cpu_count() or 1)  # the parent keeps one; inside the worker, all of them


def gpu_task(fn=None, *, gpu_seconds, cpu_seconds):
    """Mark a compute function as a GPU function. Elsewhere than ZeroGPU it runs in this process, one call at a
    time, on this machine's device. On ZeroGPU each call runs where it pays:

    - on the Space's CPU (its CPU copies of the models) when the CPU finishes it within `CPU_QUICK_S` or sooner
      than a GPU call would, or when the action runs on the CPU already (`on_cpu`); one that would take longer
      than `CPU_PATIENCE_S` there raises a UserError saying when to retry;
    - else in a `spaces.GPU` worker, asking `requested_seconds` (a warm or cold start margin plus the work). When
      ZeroGPU refuses or fails the call it raises `GpuUnavailable`, and the tab runs the action again on the CPU.

    `gpu_seconds` and `cpu_seconds` estimate the work on each (seconds, or callables of the call's own
    arguments); `cpu_seconds` is of the development CPU (`on_this_cpu` adjusts it to this one). Each call records a
    `Run`. `wrapper.plain` is the undecorated function (for calls from inside another GPU function),
    `wrapper.duration` the duration as asked of ZeroGPU on a cold worker (a callable), for `bench.bench_gpu`.
    """
    if fn is None:
        return functools.partial(gpu_task, gpu_seconds=gpu_seconds, cpu_seconds=cpu_seconds)
    name = fn.__qualname__

    def duration(*args, **kwargs) -> int:
        return requested_seconds(name, _estimate(gpu_seconds, args, kwargs))

    if not ON_ZERO_GPU:
        return _as_task(_recording(fn, name), fn, duration)
    import spaces

    streams = inspect.isgeneratorfunction(fn)
    if streams:

        def stream_in_worker(*args, **kwargs):
            _use_all_cores()
            try:
                yield from fn(*args, **kwargs)
            except UserError as error:
                yield _Failure(type(error), str(error))

        on_gpu = spaces.GPU(functools.wraps(fn)(stream_in_worker), duration=duration)
    else:

        def run_in_worker(*args, **kwargs):
            _use_all_cores()
            try:
                return fn(*args, **kwargs)
            except UserError as error:
                return _Failure(type(error), str(error))

        on_gpu = spaces.GPU(functools.wraps(fn)(run_in_worker), duration=duration)

    def where(args, kwargs) -> tuple[str | None, bool, float]:
        """(why it runs on the CPU, or None for a GPU; whether that is a fallback; its CPU estimate)."""
        cpu_s = on_this_cpu(_estimate(cpu_seconds, args, kwargs))
        why = _cpu_reason.get()
        if why is not None:
            if cpu_s > CPU_PATIENCE_S:
                raise too_slow_on_cpu(why, cpu_s)
            return why, True, cpu_s
        if _placed_on_cpu(name, _estimate(gpu_seconds, args, kwargs), cpu_s):
            return f"the Space's CPU does this in about {cpu_s:.1f} s, and it spends no GPU quota", False, cpu_s
        return None, False, cpu_s

    def refused(error: Exception, started: float) -> GpuUnavailable:
        refusal = _as_refusal(error)
        if refusal is None:
            raise error
        with _state_lock:
            _warm_until.pop(name, None)
        _remember_refusal(refusal)
        log.warning("GPU call %s refused or failed after %.2f s: %s", name, time.perf_counter() - started,
                    refusal.detail)
        return refusal

    def ran_on_gpu(started: float, asked: int) -> None:
        seconds = time.perf_counter() - started
        with _state_lock:
            _warm_until[name] = time.monotonic() + GPU_WARM_FOR_S
        log.info("GPU call %s: asked %d s, returned after %.2f s", name, asked, seconds)
        _record(Run(name, "gpu", "", False, seconds))

    if streams:

        @functools.wraps(fn)
        def call(*args, **kwargs):
            why, fallback, cpu_s = where(args, kwargs)
            started = time.perf_counter()
            if why is not None:
                yield from _on_the_cpu(fn, args, kwargs, why, cpu_s)
                _record(Run(name, "cpu", why, fallback, time.perf_counter() - started))
                return
            asked = duration(*args, **kwargs)
            try:
                for item in on_gpu(*args, **kwargs):
                    if isinstance(item, _Failure):
                        raise item.error()
                    yield item
            except UserError:
                raise
            except Exception as error:
                raise refused(error, started) from error
            ran_on_gpu(started, asked)
    else:

        @functools.wraps(fn)
        def call(*args, **kwargs):
            why, fallback, cpu_s = where(args, kwargs)
            started = time.perf_counter()
            if why is not None:
                result = _on_the_cpu(fn, args, kwargs, why, cpu_s)
                _record(Run(name, "cpu", why, fallback, time.perf_counter() - started))
                return result
            asked = duration(*args, **kwargs)
            try:
                result = on_gpu(*args, **kwargs)
            except Exception as error:
                refusal = refused(error, started)
                cold = duration(*args, **kwargs)  # `refused` forgot the warm worker
                if refusal.kind != "aborted" or cold <= asked:
                    raise refusal from error
                # Asked for a warm worker and got a fresh one, which ran out of time starting: once more, cold.
                log.warning("GPU call %s: asking again with a cold start's margin (%d s)", name, cold)
                started, asked = time.perf_counter(), cold
                try:
                    result = on_gpu(*args, **kwargs)
                except Exception as error_again:
                    raise refused(error_again, started) from error_again
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
            _record(Run(name, "gpu" if models_on_gpu() else "cpu", "", False, time.perf_counter() - started))

        return stream

    @functools.wraps(fn)
    def call(*args, **kwargs):
        started = time.perf_counter()
        result = fn(*args, **kwargs)
        _record(Run(name, "gpu" if models_on_gpu() else "cpu", "", False, time.perf_counter() - started))
        return result

    return call


def _as_task(call, fn, duration):
    """`call` run one at a time, with the undecorated function (`.plain`) and its duration (`.duration`)."""
    call = _one_at_a_time(call)
    call.plain, call.duration = fn, duration
    return call


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


class CheckpointUnavailable(UserError):
    """The checkpoint is neither in the local cache nor reachable on the Hub."""


@dataclass
class Loaded:
    checkpoint: Checkpoint
    model: object
    processor: object | None
    load_seconds: float
    # Facts about this model that the code using it checks once after loading (None: not checked yet).
    mask_token_copied: bool | None = None  # V-JEPA 2: the untrained predictor mask token 1 now holds token 0
    encoder_comparison: object | None = None  # a probe: `shared_encoder.EncoderComparison` with the base V-JEPA 2 encoder
    position_layouts: object | None = None  # ViT-MAE: `mae_positions.Layouts`, the formula of its position tables


# Each checkpoint once per copy: (name, False) on this machine's device, (name, True) the Space's CPU copy on
# ZeroGPU (`cpu_copy_names`), which the actions that run on the CPU use.
_loaded: dict[tuple[str, bool], Loaded] = {}
# One checkpoint loads at a time: two first clicks load the weights once, and two loads (a click's and a
# cancelled prepare's, whose thread runs on) never add their memory peaks. Re-entrant: a loader may load.
_load_lock = threading.RLock()
_cache_dir: str | None = None  # None: huggingface_hub's default cache (HF_HUB_CACHE)
_offline_demo = False


def offline_demo_enabled() -> bool:
    return _offline_demo


def _copy_key(name: str) -> tuple[str, bool]:
    """Which copy `load(name)` means here: the CPU copy inside an action that runs on the Space's CPU (ZeroGPU)."""
    return name, ON_ZERO_GPU and _cpu_reason.get() is not None


def is_loaded(name: str) -> bool:
    return _copy_key(name) in _loaded


def _resolve_class(path: str):
    if ":" in path:
        module, cls = path.split(":")
        return getattr(importlib.import_module(module), cls)
    import transformers

    return getattr(transformers, path)


def _hub_kwargs(ckpt: Checkpoint) -> dict:
    kwargs = {"revision": ckpt.revision}
    if _cache_dir is not None:
        kwargs["cache_dir"] = _cache_dir
    return kwargs


def _fetch_hint(ckpt: Checkpoint) -> str:
    return (
        f"Fetch it once with `python checkpoints.py download {ckpt.name}` on a machine that can reach "
        f"the Hugging Face Hub, or start the app with `--offline-demo` to try the interface on tiny random models."
    )


def _from_hub(ckpt: Checkpoint, dtype, local_files_only: bool):
    """The model and processor through the ordinary `from_pretrained(hub_id)` path."""
    kwargs = {**_hub_kwargs(ckpt), "local_files_only": local_files_only}
    # transformers classes take the dtype while loading; our own hub mixins are cast afterwards.
    dtype_kwargs = {} if ":" in ckpt.model_class else {"dtype": dtype}
    model = _resolve_class(ckpt.model_class).from_pretrained(ckpt.hub_id, **dtype_kwargs, **kwargs)
    processor = None
    if ckpt.processor_class:
        processor = _resolve_class(ckpt.processor_class).from_pretrained(ckpt.hub_id, **kwargs)
    return model, processor


def _hub_answers(ckpt: Checkpoint) -> bool:
    """One request without retries: does the Hub answer at all (any HTTP status counts)?

    huggingface_hub retries a failed request five times with backoff (about 25 s) when a file is not
    cached; asking once first turns "no network" into a message within `HUB_CHECK_TIMEOUT_S`.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError

    start = time.perf_counter()
    try:
        get_hf_file_metadata(hf_hub_url(ckpt.hub_id, "config.json", revision=ckpt.revision),
                             timeout=HUB_CHECK_TIMEOUT_S)
    except HfHubHTTPError:  # 401, 404...: the Hub is there, and from_pretrained will say what is wrong
        return True
    except Exception as error:  # DNS, refused, timeout, HF_HUB_OFFLINE=1
        log.warning("The Hugging Face Hub did not answer (%.1f s, one try): %s", time.perf_counter() - start, error)
        return False
    return True


def _load_uncached(ckpt: Checkpoint, on_cpu: bool = False) -> Loaded:
    """The local cache first, without a single request; the Hub only for what is missing there.

    So a cached checkpoint (a Space's `preload_from_hub`, the offline demo's replicas) loads without
    network, and a missing one with no Hub is reported at once instead of after huggingface_hub's retries.
    Revisions are "main" until pinned: a cached "main" is used as it is, not refreshed from the Hub.
    """
    import torch

    if not ckpt.hub_id:
        raise CheckpointUnavailable(
            f"No hub id is configured for '{ckpt.name}'. Train one with train_projector.py and set {ENV_PROJECTOR_REPO}."
        )
    device, dtype = (torch.device("cpu"), cpu_dtype()) if on_cpu else device_and_dtype()
    int8 = device.type == "cpu" and ckpt.cpu_int8 and os.environ.get(ENV_CPU_INT8, "1") != "0"
    if int8:
        dtype = torch.float32  # dynamic int8 quantisation starts from fp32 weights
    start = time.perf_counter()
    # transformers and huggingface_hub report "not in cache", "repo not found" and network failures as
    # OSError subclasses (EnvironmentError); ValueError covers an empty cache entry.
    try:
        model, processor = _from_hub(ckpt, dtype, local_files_only=True)
    except (OSError, ValueError) as cache_error:
        if _offline_demo or not _hub_answers(ckpt):
            log.warning("Could not load %s after %.1f s: not cached (%s), no Hub", ckpt.hub_id,
                        time.perf_counter() - start, cache_error)
            raise CheckpointUnavailable(
                f"The checkpoint {ckpt.hub_id} could not be loaded: it is not in the local cache and the "
                f"Hugging Face Hub could not be reached. {_fetch_hint(ckpt)}"
            ) from cache_error
        try:
            model, processor = _from_hub(ckpt, dtype, local_files_only=False)
        except (OSError, ValueError) as error:
            log.warning("Could not load %s after %.1f s: %s", ckpt.hub_id, time.perf_counter() - start, error)
            raise CheckpointUnavailable(
                f"The checkpoint {ckpt.hub_id} could not be loaded from the Hugging Face Hub "
                f"({str(error).splitlines()[0]}). {_fetch_hint(ckpt)}"
            ) from error
    if isinstance(model, torch.nn.Module):
        model = model.to(device=device, dtype=dtype).eval()
        model.requires_grad_(False)
        if int8:
            model = _quantize_linear_int8(model, ckpt)
    seconds = time.perf_counter() - start
    log.info("Loaded %s (%s) in %.1f s", ckpt.hub_id, ckpt.model_class, seconds)
    return Loaded(ckpt, model, processor, seconds)


def _quantize_linear_int8(model, ckpt: Checkpoint):
    """Weights int8, activations float, scales computed per call: no calibration data needed.

    torch marks its quantised tensors as deprecated (torchao is the successor); if a later torch
    drops them, the model simply stays in fp32.
    """
    import torch

    try:
        quantized = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    except Exception as error:  # an old or new torch without it: slower, still correct
        log.warning("%s: int8 quantisation unavailable (%s); decoding in fp32", ckpt.hub_id, error)
        return model
    log.info("%s: linear layers quantised to int8 for CPU decoding (%s=0 turns this off)", ckpt.hub_id, ENV_CPU_INT8)
    return quantized


def load(name: str) -> Loaded:
    """The checkpoint's model and processor, loaded on first use, then shared (one per process).

    After `preload_all()` (ZeroGPU) only resident checkpoints are returned; any other is a UserError. Inside an
    action that runs on the Space's CPU there, the checkpoint's CPU copy.
    """
    ckpt = get(name)
    key = _copy_key(name)
    if key in _loaded:
        return _loaded[key]
    if _resident_only:
        where = "on the Space's CPU" if key[1] else "on this Space"
        raise CheckpointUnavailable(
            f"The checkpoint {ckpt.hub_id or name} is not loaded {where}. On ZeroGPU every model is loaded "
            f"once at start-up, and this one was not{_not_resident.get(key, '')}."
        )
    with _load_lock:
        if key not in _loaded:
            _loaded[key] = _load_uncached(ckpt, on_cpu=key[1])
    return _loaded[key]


# ---------------------------------------------------------------------------------------------
# ZeroGPU start-up: every checkpoint resident before launch()
# ---------------------------------------------------------------------------------------------

_loaders: dict = {}  # name -> a module's own loader (load + checks that touch weights), for preload_all
_resident_only = False  # set by preload_all: nothing loads lazily afterwards
_not_resident: dict[tuple[str, bool], str] = {}  # (name, CPU copy) -> why preload_all left it out (shown by load)


def use_loader(name: str, loader) -> None:
    """`preload_all` loads `name` with `loader(name)` (which calls `load` and checks facts about the model)."""
    _loaders[name] = loader


def _names_in(variable: str, default: list[str]) -> list[str]:
    """Comma-separated checkpoint names from an environment variable ("none": no name), else `default`."""
    value = os.environ.get(variable, "").strip()
    if value.lower() == "none":
        return []
    requested = [n.strip() for n in value.split(",") if n.strip()]
    for name in requested:
        get(name)  # an unknown name fails start-up loudly
    return requested or default


def preload_names() -> list[str]:
    """The checkpoints to load at start-up: PDR_PRELOAD (comma-separated), else every one with a hub id."""
    return _names_in(ENV_PRELOAD, [name for name, ckpt in REGISTRY.items() if ckpt.hub_id])


def cpu_copy_names() -> list[str]:
    """ZeroGPU: the start-up checkpoints that also get a copy on the Space's CPU, for the actions that run there
    (PDR_CPU_COPIES, comma-separated or "none"; default: every start-up checkpoint)."""
    if not ON_ZERO_GPU:
        return []
    preloaded = preload_names()
    return [name for name in _names_in(ENV_CPU_COPIES, preloaded) if name in preloaded]


def _resident_memory_mb() -> float | None:
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    line = next((line for line in status.splitlines() if line.startswith("VmRSS:")), None)
    return int(line.split()[1]) / 1024 if line else None


def preload_all() -> dict[tuple[str, bool], float]:
    """Load every start-up checkpoint onto the device now, and a CPU copy of those in `cpu_copy_names()`; then
    refuse lazy loading (ZeroGPU start-up).

    Call on the main thread before `launch()`: ZeroGPU emulates CUDA there and packs every "cuda" tensor at
    launch, after which the main process cannot compute with them: the CPU copies are what the actions that run
    on the Space's CPU use. A checkpoint that cannot be loaded is logged and left out (its endpoints then say so);
    the app still starts. Returns {(name, CPU copy): seconds} for those loaded.
    """
    global _resident_only
    start = time.perf_counter()
    seconds = {}
    wanted = [(name, False) for name in preload_names()] + [(name, True) for name in cpu_copy_names()]
    for name, on_the_cpu in wanted:
        try:
            with on_cpu("start-up") if on_the_cpu else contextlib.nullcontext():
                _loaders.get(name, load)(name)
            seconds[name, on_the_cpu] = _loaded[name, on_the_cpu].load_seconds
        except UserError as error:
            log.error("Start-up: %s%s is not resident: %s", name, " (CPU copy)" if on_the_cpu else "", error)
            _not_resident[name, on_the_cpu] = f" ({error})"
    for key in [(name, copy) for name in REGISTRY for copy in (False, True)]:
        if key not in seconds and key not in _not_resident:
            variable = ENV_CPU_COPIES if key[1] else ENV_PRELOAD
            _not_resident[key] = f" (not in {variable})" if os.environ.get(variable) else ""
    _resident_only = True
    if ON_ZERO_GPU and any(copy for _, copy in seconds):
        _cpu_pool()  # its thread takes every core now, before anything else runs in parallel
        cpu_pace()  # and the placement of the first click knows this CPU's pace
    device_gb = sum(_parameter_bytes(_loaded[key].model) for key in seconds if not key[1]) / 2**30
    cpu_gb = sum(_parameter_bytes(_loaded[key].model) for key in seconds if key[1]) / 2**30
    memory = _resident_memory_mb()
    log.info("Start-up: %d checkpoints resident in %.1f s (%.2f GB of weights on %s, %.2f GB in CPU copies; "
             "process RSS %s)", len(seconds), time.perf_counter() - start, device_gb, device_and_dtype()[0], cpu_gb,
             f"{memory:.0f} MB" if memory is not None else "unknown")
    return seconds


def _parameter_bytes(model) -> int:
    parameters = getattr(model, "parameters", None)
    return sum(p.numel() * p.element_size() for p in parameters()) if parameters else 0


def use_cache_dir(path: str | os.PathLike | None) -> None:
    """Load from this Hugging Face cache folder instead of the default one (models loaded from another are forgotten)."""
    global _cache_dir
    _cache_dir = None if path is None else str(path)
    _loaded.clear()


def enable_offline_demo(cache_dir: str | os.PathLike | None = None) -> Path:
    """Write tiny random-weight checkpoints under the real hub ids into a private cache and load from it.

    Outputs are meaningless; the UI shows a banner while this is on. Never a silent fallback: only the
    `--offline-demo` flag or PDR_OFFLINE_DEMO=1 turns it on.
    """
    global _offline_demo
    import tempfile

    from offline import replicas  # test and demo tooling: imported only when asked for

    target = Path(cache_dir or tempfile.mkdtemp(prefix="pdr-offline-demo-"))
    for ckpt in REGISTRY.values():
        replicas.write_checkpoint(ckpt, target, size="tiny")
    use_cache_dir(target)
    _offline_demo = True
    return target


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def _cached_size_mb(ckpt: Checkpoint) -> float | None:
    from huggingface_hub import scan_cache_dir

    try:
        info = scan_cache_dir(_cache_dir)
    except Exception:  # no cache folder yet
        return None
    for repo in info.repos:
        if repo.repo_id == ckpt.hub_id:
            return repo.size_on_disk / 2**20
    return None


def _cmd_list(_args) -> int:
    print(f"{'name':24} {'hub id':42} {'params':>8} {'fp32 size':>10}  {'revision':10} cached")
    for ckpt in REGISTRY.values():
        cached = _cached_size_mb(ckpt) if ckpt.hub_id else None
        print(
            f"{ckpt.name:24} {ckpt.hub_id or '(not configured)':42} {ckpt.params_millions:>7.0f}M "
            f"{ckpt.params_millions * 4 / 1024:>8.2f} GB  {ckpt.revision:10} "
            f"{f'{cached:.0f} MB' if cached is not None else 'no'}"
        )
        print(f"{'':24} {ckpt.description}")
    return 0


def download(names: list[str] | None = None, out=print) -> int:
    """Fetch the checkpoints' `allow_patterns` files into the cache (all with a hub id by default); return failures."""
    from huggingface_hub import snapshot_download

    failures = 0
    for name in names or [n for n, c in REGISTRY.items() if c.hub_id]:
        ckpt = get(name)
        if not ckpt.hub_id:
            out(f"skip {name}: no hub id configured ({ENV_PROJECTOR_REPO})")
            continue
        try:
            path = snapshot_download(ckpt.hub_id, revision=ckpt.revision, cache_dir=_cache_dir,
                                     allow_patterns=ckpt.allow_patterns)
            out(f"ok   {name}: {ckpt.hub_id}@{ckpt.revision} -> {path}")
        except Exception as error:  # report every checkpoint, then fail once
            failures += 1
            print(f"FAIL {name}: {ckpt.hub_id}: {error}", file=sys.stderr)
    return failures


def _cmd_download(args) -> int:
    return 1 if download(args.names) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="print every checkpoint with its size and whether it is cached")
    download = sub.add_parser("download", help="prefetch checkpoints into the Hugging Face cache")
    download.add_argument("names", nargs="*", help=f"names to fetch (default: all): {', '.join(REGISTRY)}")
    args = parser.parse_args(argv)
    return {"list": _cmd_list, "download": _cmd_download}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
