"""The memory of ZeroGPU's start-up copies: which CPU copies fit the memory the Space has, and what the resident
copies hold (`demos.startup`).

The Space's main process keeps a CPU copy of a checkpoint for the actions that run on its CPU, beside the copies
ZeroGPU packs for its workers. How much memory the process may use is not published: it is read at start-up, after
the GPU copies are loaded (psutil's available memory, or the container's own limit where that is smaller). The copies
are kept smallest first, while they fit with a margin left for the requests, caches and result files: the largest
is the one left out. An action whose CPU copy was left out needs the GPU (`checkpoints.load` says so).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psutil

import checkpoints
from demos import devices

MARGIN_FRACTION = 0.25  # of the memory available, left free: gradio, the caches, the result files, a request's peak
SMALLEST_MARGIN_BYTES = 1 << 30
# The container's own limit and use: cgroup v2, then v1. psutil reports the machine's memory, which a container
# may not have.
_CGROUP_FILES = (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                 ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"))


@dataclass(frozen=True)
class CopyPlan:
    """The CPU copies to load, in order, and those left out, from the memory available and each copy's size."""

    kept: tuple[str, ...]
    left_out: tuple[str, ...]
    available_bytes: int
    margin_bytes: int
    sizes: dict[str, int]

    def describe(self) -> str:
        """One line for the start-up log."""
        gb = 2**30
        kept = sum(self.sizes[name] for name in self.kept) / gb
        line = (f"CPU copies: {self.available_bytes / gb:.1f} GB available, {self.margin_bytes / gb:.1f} GB kept free; "
                f"{len(self.kept)} copies ({kept:.1f} GB) fit")
        if self.left_out:
            line += "; left out, so their actions need the GPU: " + ", ".join(
                f"{name} ({self.sizes[name] / gb:.1f} GB)" for name in self.left_out)
        return line


def plan(sizes: dict[str, int], available_bytes: int) -> CopyPlan:
    """Keep copies smallest first while they fit in `available_bytes` less the margin (ties in the order given)."""
    margin = max(SMALLEST_MARGIN_BYTES, int(available_bytes * MARGIN_FRACTION))
    room = available_bytes - margin
    kept, left_out = [], []
    for name in sorted(sizes, key=lambda n: sizes[n]):
        if sizes[name] <= room:
            kept.append(name)
            room -= sizes[name]
        else:
            left_out.append(name)
    return CopyPlan(tuple(kept), tuple(n for n in sizes if n in left_out), available_bytes, margin, dict(sizes))


def _read_bytes(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max": no limit


def available_bytes() -> int:
    """The memory this process can still take: the machine's available memory, or what is left under the
    container's limit where that is less."""
    available = psutil.virtual_memory().available
    for limit_file, usage_file in _CGROUP_FILES:
        limit, usage = _read_bytes(limit_file), _read_bytes(usage_file)
        if limit is not None and usage is not None and limit < 1 << 60:
            return max(0, min(available, limit - usage))
    return available


def cpu_copy_bytes(ckpt: checkpoints.Checkpoint) -> int:
    """A CPU copy's memory while it loads: its parameters in the CPU's dtype (an int8 model loads in fp32 first)."""
    import torch

    itemsize = torch.float32.itemsize if checkpoints.int8_on_cpu(ckpt) else devices.cpu_dtype().itemsize
    return int(ckpt.params_millions * 1e6 * itemsize)


def plan_cpu_copies(names: list[str]) -> CopyPlan:
    """The CPU copies of these checkpoints that fit the memory left now, smallest first."""
    return plan({name: cpu_copy_bytes(checkpoints.get(name)) for name in names}, available_bytes())


def _parameter_bytes(model) -> int:
    parameters = getattr(model, "parameters", None)
    return sum(p.numel() * p.element_size() for p in parameters()) if parameters else 0


def resident_report(models: dict[tuple[str, bool], object]) -> str:
    """For the start-up log: the weights of {(name, CPU copy): model} on the device and on the CPU, and the
    process's resident memory."""
    device_gb = sum(_parameter_bytes(model) for (_, copy), model in models.items() if not copy) / 2**30
    cpu_gb = sum(_parameter_bytes(model) for (_, copy), model in models.items() if copy) / 2**30
    memory_mb = psutil.Process().memory_info().rss / 2**20
    return (f"{device_gb:.2f} GB of weights on {devices.device_and_dtype()[0]}, {cpu_gb:.2f} GB in CPU copies; "
            f"process RSS {memory_mb:.0f} MB")
