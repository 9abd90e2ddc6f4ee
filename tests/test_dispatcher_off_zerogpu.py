"""The dispatcher off ZeroGPU (GPU functions in this process, one call at a time) and the CPU pace its placement on
ZeroGPU reads. On ZeroGPU, with the real `spaces` package: tests/zerogpu (run by tests/test_zerogpu_dispatcher.py)."""

import os

import pytest

from demos import devices, zerogpu
from demos.dispatcher import DISPATCHER
from demos.gpu_functions import gpu_task


def test_elsewhere_a_gpu_task_runs_in_process_one_call_at_a_time(monkeypatch):
    monkeypatch.setattr(zerogpu, "ON_ZERO_GPU", False)

    def work(x):
        return x + 1, DISPATCHER.device_busy(), os.getpid()

    def stream(n):
        for i in range(n):
            yield i, DISPATCHER.device_busy()

    task = gpu_task(gpu_seconds=5, cpu_seconds=5)(work)
    assert task.plain is work and task(1) == (2, True, os.getpid())
    assert not DISPATCHER.device_busy()
    # A stream holds the lock until it ends or is closed (a cancelled prepare's thread finishes first).
    items = gpu_task(gpu_seconds=5, cpu_seconds=5)(stream)(3)
    assert next(items) == (0, True) and DISPATCHER.device_busy()
    items.close()
    assert not DISPATCHER.device_busy()
    assert list(gpu_task(gpu_seconds=5, cpu_seconds=5)(stream)(2)) == [(0, True), (1, True)]
    assert not DISPATCHER.device_busy()


@pytest.mark.slow  # times a ViT-L-shaped matmul
def test_cpu_estimates_follow_this_cpus_measured_pace(monkeypatch):
    monkeypatch.delenv(devices.ENV_CPU_PACE, raising=False)
    devices.cpu_pace.cache_clear()
    pace = devices.cpu_pace()
    assert 0.5 <= pace <= 10 and devices.on_this_cpu(3.0) == pytest.approx(3.0 * pace)
    try:  # measured against the estimates' reference CPU, within bounds
        for reference, bound in ((1e9, 10.0), (1e-9, 0.5)):
            monkeypatch.setattr(devices, "REFERENCE_CPU_GFLOPS", reference)
            devices.cpu_pace.cache_clear()
            assert devices.on_this_cpu(3.0) == pytest.approx(3.0 * bound)
    finally:
        monkeypatch.undo()
        devices.cpu_pace.cache_clear()
