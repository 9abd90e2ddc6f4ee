"""Which device and dtype models run on, and how fast this machine's CPU is.

- `device_and_dtype()`: CUDA when present (on ZeroGPU always), else the CPU in `cpu_dtype()`; PDR_DEVICE and
  PDR_DTYPE override both.
- `cpu_dtype()`: bf16 only where the CPU computes it natively and a timed matmul says it is faster.
- `models_on_gpu()`: whether models will run on a GPU, known without loading any: per-device defaults.
- `cpu_pace()`, `on_this_cpu(seconds)`: this CPU against the CPU the compute modules' estimates come from.
- `on_model(model, tensor)`, `wait_for(model)`: a tensor on a model's device, and the end of its queued work.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import platform
import time
from pathlib import Path

from demos import zerogpu
from demos.errors import UserError

log = logging.getLogger(__name__)

ENV_DEVICE = "PDR_DEVICE"  # "cpu", "cuda", "cuda:1", ...
ENV_DTYPE = "PDR_DTYPE"  # "float32", "bfloat16" or "float16"
ENV_CPU_PACE = "PDR_CPU_PACE"  # this CPU's pace against the estimates' CPU (default: measured on first use)

# The compute modules' CPU estimates (`cpu_seconds`) were measured in bf16 on a 2-core CPU that computes it natively,
# whose linear layers ran at about this pace in a ViT-L pass (torch profiler). Other CPUs, and fp32 (the policy on
# CPUs without native bf16), differ by several times: `cpu_pace` measures this one.
REFERENCE_CPU_GFLOPS = 395.0

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
    fp32, bf16 = _matmul_seconds(torch.float32), _matmul_seconds(torch.bfloat16)
    log.info("CPU matmul of a ViT-L layer's shape: fp32 %.1f ms, bf16 %.1f ms", fp32 * 1e3, bf16 * 1e3)
    return bf16 < 0.8 * fp32


# A ViT-L linear layer's shape: (tokens x width) @ (width x hidden).
MATMUL_SHAPE = (1024, 1024, 4096)


def _matmul_seconds(dtype) -> float:
    """The fastest of a few timed matmuls of `MATMUL_SHAPE` in `dtype`, on this thread's cores."""
    import torch

    tokens, width, hidden = MATMUL_SHAPE
    a, b = torch.randn(tokens, width, dtype=dtype), torch.randn(width, hidden, dtype=dtype)
    a @ b  # oneDNN's first call picks its kernels
    times = []
    for _ in range(3):
        started = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - started)
    return min(times)


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
    default = "cuda" if zerogpu.ON_ZERO_GPU or torch.cuda.is_available() else "cpu"
    device = torch.device(os.environ.get(ENV_DEVICE) or default)
    if device.type == "cuda":  # ZeroGPU's GPUs compute bf16
        dtype = _requested_dtype() or (
            torch.bfloat16 if zerogpu.ON_ZERO_GPU or torch.cuda.is_bf16_supported() else torch.float16)
    else:
        dtype = cpu_dtype()
    log.info("Models run on %s in %s", device, dtype)
    return device, dtype


def models_on_gpu() -> bool:
    """Whether models will run on a GPU, known without loading anything, timing the CPU or touching CUDA
    on ZeroGPU (its parent has no GPU): what a tab's per-device defaults are chosen from. False inside an
    action that runs on the Space's CPU (`zerogpu.on_cpu`), so that it is planned for the CPU."""
    import torch

    if zerogpu.cpu_reason() is not None:
        return False
    requested = os.environ.get(ENV_DEVICE, "")
    return requested.startswith("cuda") if requested else zerogpu.ON_ZERO_GPU or torch.cuda.is_available()


def gpu_at_hand() -> bool:
    """Whether a GPU takes the models' work here: this machine's, or a ZeroGPU worker (not inside an action sent to
    the Space's CPU). What decides whether a sweep of every setting is one device call, or grows a few settings a
    call on a CPU. On ZeroGPU it holds even where `PDR_DEVICE=cpu` plans the actions for a CPU (the imitation's
    workers compute on the CPU)."""
    if zerogpu.cpu_reason() is not None:
        return False
    return zerogpu.ON_ZERO_GPU or models_on_gpu()


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
    seconds = (zerogpu.cpu_thread().submit(_matmul_seconds, cpu_dtype()).result() if zerogpu.ON_ZERO_GPU
               else _matmul_seconds(cpu_dtype()))
    measure = 2 * math.prod(MATMUL_SHAPE) / seconds / 1e9
    pace = min(10.0, max(0.5, REFERENCE_CPU_GFLOPS / measure))
    log.info("This CPU multiplies in %s at %.0f GFLOP/s: CPU estimates x %.1f", cpu_dtype(), measure, pace)
    return pace
