"""ZeroGPU start-up: every checkpoint resident before `launch()`, with a CPU copy where the memory allows.

On ZeroGPU (`demos.zerogpu`) app.py calls `preload_all()` before `launch()`: every checkpoint is loaded and moved to
the device once, through its module's own loader (`checkpoints.use_loader`), so that checks touching weights run
then too. ZeroGPU packs the device copies away at launch, so the main process also keeps a CPU copy of each
(`cpu_copy_names`) for the work that runs there, as many as fit its memory (`demos.memory_plan`). Afterwards
`checkpoints.load` returns only what is resident: nothing loads inside a GPU function (`demos.gpu_functions`).
Elsewhere (CPU, local GPU) nothing here runs and loading stays lazy.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time

import checkpoints
from demos import devices, memory_plan, zerogpu
from demos.errors import UserError

log = logging.getLogger(__name__)

ENV_PRELOAD = "PDR_PRELOAD"  # comma-separated names to load at start-up (default: every checkpoint)
ENV_CPU_COPIES = "PDR_CPU_COPIES"  # names that also get a CPU copy at start-up (default: the same; "none")

Key = tuple[str, bool]  # (checkpoint name, CPU copy)


def _names_in(variable: str, default: list[str]) -> list[str]:
    """Comma-separated checkpoint names from an environment variable ("none": no name), else `default`."""
    value = os.environ.get(variable, "").strip()
    if value.lower() == "none":
        return []
    requested = [n.strip() for n in value.split(",") if n.strip()]
    for name in requested:
        checkpoints.get(name)  # an unknown name fails start-up loudly
    return requested or default


def preload_names() -> list[str]:
    """The checkpoints to load at start-up: PDR_PRELOAD (comma-separated), else every one with a hub id."""
    return _names_in(ENV_PRELOAD, [name for name, ckpt in checkpoints.REGISTRY.items() if ckpt.hub_id])


def cpu_copy_names() -> list[str]:
    """ZeroGPU: the start-up checkpoints that also get a copy on the Space's CPU, for the actions that run there
    (PDR_CPU_COPIES, comma-separated or "none"; default: every start-up checkpoint)."""
    if not zerogpu.ON_ZERO_GPU:
        return []
    preloaded = preload_names()
    return [name for name in _names_in(ENV_CPU_COPIES, preloaded) if name in preloaded]


def preload_all() -> dict[Key, float]:
    """Load every start-up checkpoint onto the device now, and a CPU copy of those in `cpu_copy_names()` that fit
    the memory; then `checkpoints.load` refuses lazy loading.

    Call on the main thread before `launch()`: ZeroGPU emulates CUDA there and packs every "cuda" tensor at
    launch, after which the main process cannot compute with them: the CPU copies are what the actions that run
    on the Space's CPU use. A checkpoint that cannot be loaded is logged and left out (its endpoints then say so);
    the app still starts. Returns {(name, CPU copy): seconds} for those loaded.
    """
    start = time.perf_counter()
    why_not: dict[Key, str] = {}
    loaded = _load_at_start_up([(name, False) for name in preload_names()], why_not)
    copies = memory_plan.plan_cpu_copies(cpu_copy_names())
    if copies.sizes:
        log.info("Start-up: %s", copies.describe())
    loaded.update(_load_at_start_up([(name, True) for name in copies.kept], why_not))
    needs_gpu = {(name, True) for name in copies.left_out}
    why_not.update({key: " (the Space's memory had no room for it)" for key in needs_gpu})
    for key in [(name, copy) for name in checkpoints.REGISTRY for copy in (False, True)]:
        if key not in loaded and key not in why_not:
            variable = ENV_CPU_COPIES if key[1] else ENV_PRELOAD
            why_not[key] = f" (not in {variable})" if os.environ.get(variable) else ""
    checkpoints.keep_resident_only(why_not, needs_gpu)
    if zerogpu.ON_ZERO_GPU:
        zerogpu.compute_only_in_workers([entry.model for (_, on_the_cpu), entry in loaded.items() if not on_the_cpu])
        log.info("Start-up: ZeroGPU plans for %s (spaces multiplies each duration asked by %g)", zerogpu.gpu_model(),
                 zerogpu.duration_factor())
    if zerogpu.ON_ZERO_GPU and any(copy for _, copy in loaded):
        zerogpu.cpu_thread()  # its thread takes every core now, before anything else runs in parallel
        devices.cpu_pace()  # and the placement of the first click knows this CPU's pace
    log.info("Start-up: %d checkpoints resident in %.1f s (%s)", len(loaded), time.perf_counter() - start,
             memory_plan.resident_report({key: entry.model for key, entry in loaded.items()}))
    return {key: entry.load_seconds for key, entry in loaded.items()}


def _load_at_start_up(keys: list[Key], why_not: dict[Key, str]) -> dict[Key, checkpoints.Loaded]:
    """Load each (name, CPU copy) now; one that cannot be loaded is logged, left out and its reason kept in
    `why_not`. Returns {key: loaded} of those loaded."""
    loaded = {}
    for name, on_the_cpu in keys:
        try:
            with zerogpu.on_cpu("start-up") if on_the_cpu else contextlib.nullcontext():
                loaded[name, on_the_cpu] = checkpoints.load_with_checks(name)
        except UserError as error:
            log.error("Start-up: %s%s is not resident: %s", name, " (CPU copy)" if on_the_cpu else "", error)
            why_not[name, on_the_cpu] = f" ({error})"
    return loaded
