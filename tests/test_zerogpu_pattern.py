"""The ZeroGPU boundary: gpu_task through the dispatcher (where a call runs, what it asks, what a refusal
becomes), resident-only loading and the CPU copies, with the fake `spaces` in-process."""

import importlib
import json
import os
import re
import sys
import threading

import pytest
from conftest import FAKE_SPACES

import checkpoints
from demos import devices, placement, startup, zerogpu
from demos.dispatcher import DISPATCHER
from demos.errors import NeedsGpu, UserError
from demos.gpu_functions import gpu_task

SLOW_ON_CPU = 15.0  # seconds a test function's CPU estimate says: beyond CPU_QUICK_S and a GPU call, so it asks a GPU


class TubeTooLarge(UserError):
    pass


@pytest.fixture
def zero_gpu(monkeypatch, tmp_path):
    """A ZeroGPU Space (fake `spaces`), decorating from now on, no warm worker nor refusal yet; the fake's log in
    tmp_path."""
    monkeypatch.syspath_prepend(str(FAKE_SPACES))
    monkeypatch.delitem(sys.modules, "spaces", raising=False)
    monkeypatch.setenv("SPACES_ZERO_GPU", "1")
    monkeypatch.setenv("FAKE_SPACES_LOG", str(tmp_path / "requests.jsonl"))
    monkeypatch.setattr(zerogpu, "ON_ZERO_GPU", True)
    DISPATCHER.reset()
    spaces = importlib.import_module("spaces")
    spaces.requested.clear()
    spaces.reset_quotas()
    yield spaces
    DISPATCHER.reset()


def _logged(tmp_path) -> list[dict]:
    path = tmp_path / "requests.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


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


def test_a_user_error_inside_keeps_its_message_and_class(zero_gpu):
    @gpu_task(gpu_seconds=0.1, cpu_seconds=SLOW_ON_CPU)
    def refuse(size):
        raise TubeTooLarge(f"A {size}x{size} tube hides the whole clip.")

    with pytest.raises(TubeTooLarge, match="A 9x9 tube hides the whole clip."):
        refuse(9)


def test_work_the_cpu_does_quickly_runs_there_in_its_own_thread_and_asks_no_gpu(zero_gpu):
    import torch

    @gpu_task(gpu_seconds=0.02, cpu_seconds=0.2)
    def reconstruct():
        return os.getpid(), threading.current_thread().name, torch.get_num_threads(), zerogpu.cpu_reason()

    callers_threads = torch.get_num_threads()
    with zerogpu.request_scope() as runs:
        pid, thread, threads, why = reconstruct()
    assert pid == os.getpid() and zero_gpu.requested == [] and "spends no GPU quota" in why
    # One CPU thread with every core; the threads that call GPU functions (they fork workers) keep theirs.
    assert thread.startswith("pdr-cpu-models") and threads == (os.cpu_count() or 1)
    assert torch.get_num_threads() == callers_threads
    assert [(run.device, run.fallback) for run in runs] == [("cpu", False)]


def test_quick_work_whose_model_has_no_cpu_copy_runs_on_a_gpu_and_says_so_only_when_no_gpu_can(zero_gpu):
    @gpu_task(gpu_seconds=0.02, cpu_seconds=0.2)
    def reconstruct():
        if zerogpu.cpu_reason() is not None:  # as `checkpoints.load` does for a copy the memory plan left out
            raise NeedsGpu("This needs the GPU.")
        return os.getpid()

    with zerogpu.request_scope() as runs:
        assert reconstruct() != os.getpid()
    assert [run.device for run in runs] == ["gpu"] and len(zero_gpu.requested) == 1
    with zerogpu.request_scope(), zerogpu.on_cpu("the GPU quota is used up"), pytest.raises(NeedsGpu):
        reconstruct()


def test_work_that_pays_on_a_gpu_runs_in_a_worker_with_every_core(zero_gpu):
    import torch

    @gpu_task(gpu_seconds=0.1, cpu_seconds=SLOW_ON_CPU)
    def where():
        return os.getpid(), torch.get_num_threads()

    with zerogpu.request_scope() as runs:
        pid, threads = where()
    assert pid != os.getpid() and threads == (os.cpu_count() or 1)
    assert [run.device for run in runs] == ["gpu"]


def test_a_call_asks_its_work_and_a_cold_start_then_a_warm_one(zero_gpu, tmp_path):
    @gpu_task(gpu_seconds=lambda frames, checkpoint="base": 1.2 + frames / 10, cpu_seconds=SLOW_ON_CPU)
    def predict(frames, checkpoint="base"):
        return frames

    assert predict(16, checkpoint="large") == 16 and predict(16) == 16
    cold, warm = (zerogpu.GPU_COLD_START_S + 2.8, zerogpu.GPU_WARM_START_S + 2.8)
    assert [r.seconds for r in zero_gpu.requested] == [int(-(-cold // 1)), int(-(-warm // 1))]  # rounded up
    logged = _logged(tmp_path)
    assert [r["asked"] for r in logged] == [round(r.seconds * 1.5) for r in zero_gpu.requested]  # x the factor
    assert logged[0]["function"].endswith("predict") and all(r["outcome"] == "ok" for r in logged)


def test_generators_stream_and_a_user_error_ends_them_with_its_message(zero_gpu):
    @gpu_task(gpu_seconds=0.5, cpu_seconds=SLOW_ON_CPU)
    def count(n):
        yield from range(n)
        raise UserError(f"Stopped after {n}.")

    received = []
    with pytest.raises(UserError, match="Stopped after 3."):
        for item in count(3):
            received.append(item)
    assert received == [0, 1, 2]


def test_a_failed_gpu_call_hides_its_error_and_asks_for_the_cpu(zero_gpu):
    @gpu_task(gpu_seconds=0.1, cpu_seconds=SLOW_ON_CPU)
    def crash():
        raise RuntimeError("internal detail")

    with pytest.raises(zerogpu.GpuUnavailable) as caught:
        crash()
    assert "internal detail" not in str(caught.value) and caught.value.why == "the GPU call failed"


def test_a_quota_refusal_is_remembered_for_visitors_who_are_not_signed_in(zero_gpu, monkeypatch, tmp_path):
    monkeypatch.setenv("FAKE_SPACES_QUOTA_S", "5")  # less than a cold start's request x 1.5

    @gpu_task(gpu_seconds=0.1, cpu_seconds=SLOW_ON_CPU)
    def work():
        return "on a GPU"

    with DISPATCHER.request_scope(signed_in=False), pytest.raises(zerogpu.GpuUnavailable) as caught:
        work()
    assert "Space app has reached its GPU limit" in caught.value.detail and caught.value.kind == "quota"
    assert "not signed in" in caught.value.why
    assert _logged(tmp_path)[-1]["outcome"] == "refused"
    # The next visitor without a token plans for the CPU at once; a signed-in one still asks a GPU.
    with DISPATCHER.request_scope(signed_in=False):
        assert zerogpu.cpu_reason() == caught.value.why and not devices.models_on_gpu()
    with DISPATCHER.request_scope(signed_in=True):
        assert zerogpu.cpu_reason() is None


def test_an_action_zerogpu_refuses_runs_again_on_the_cpu_in_its_place(zero_gpu, monkeypatch):
    from demos.tabs import actions

    monkeypatch.setenv("FAKE_SPACES_QUOTA_S", "5")  # less than a cold start's request x 1.5
    monkeypatch.setattr(devices, "cpu_pace", lambda: 1.0)

    @gpu_task(gpu_seconds=0.1, cpu_seconds=10.0)  # sooner on a GPU, even a fresh worker; within patience on the CPU
    def work():
        return zerogpu.cpu_reason()

    def result():
        return work(), [(run.device, run.fallback) for run in zerogpu.runs()]

    def stream():
        yield "started"
        yield result()

    refused = "the GPU time this Space shares among visitors who are not signed in on huggingface.co is used up for now"
    assert actions.action()(result)() == (refused, [("cpu", True)])
    DISPATCHER.reset()  # forget the back-off: the stream's first call asks a GPU again
    assert list(actions.action()(stream)()) == ["started", "started", (refused, [("cpu", True)])]
    assert [request.function.rsplit(".", 1)[-1] for request in zero_gpu.requested] == ["work", "work"]


def test_on_the_cpu_an_action_runs_there_unless_it_would_take_too_long(zero_gpu):
    @gpu_task(gpu_seconds=0.1, cpu_seconds=lambda seconds: seconds)
    def work(seconds):
        return zerogpu.cpu_reason()

    with zerogpu.request_scope() as runs, zerogpu.on_cpu("no GPU was free within a minute"):
        assert work(2.0) == "no GPU was free within a minute"
        with pytest.raises(UserError, match="longer than the 30 s .* sign in"):
            work((placement.CPU_PATIENCE_S + 1) / devices.cpu_pace())  # an estimate for this CPU's pace
    assert [(run.device, run.fallback) for run in runs] == [("cpu", True)] and zero_gpu.requested == []


@pytest.mark.slow  # times a ViT-L-shaped matmul
def test_cpu_estimates_follow_this_cpus_measured_pace(monkeypatch):
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


@pytest.mark.slow  # waits for a GPU call's time to run out
def test_an_aborted_stream_asks_for_the_cpu(zero_gpu, monkeypatch):
    monkeypatch.setenv("FAKE_SPACES_ABORT", "1")

    @gpu_task(gpu_seconds=0.1, cpu_seconds=SLOW_ON_CPU)
    def slow():
        yield 1
        import time

        time.sleep(60)  # far past the 7 s it asked for
        yield 2

    items = slow()
    assert next(items) == 1
    with pytest.raises(zerogpu.GpuUnavailable, match="ran out of its time"):
        next(items)


def test_after_preload_only_resident_checkpoints_load_and_the_cpu_copy_is_apart(tiny_hub, monkeypatch, request):
    monkeypatch.setenv(startup.ENV_PRELOAD, "vit-mae-base")
    monkeypatch.setenv(devices.ENV_DEVICE, "cpu")
    monkeypatch.setattr(zerogpu, "ON_ZERO_GPU", True)
    request.addfinalizer(checkpoints.reset)  # lazy loading again after this start-up
    loaded = startup.preload_all()
    assert list(loaded) == [("vit-mae-base", False), ("vit-mae-base", True)] and checkpoints.is_loaded("vit-mae-base")
    device_copy = checkpoints.load("vit-mae-base").model
    with zerogpu.on_cpu("a test"):
        cpu_copy = checkpoints.load("vit-mae-base").model
    assert cpu_copy is not device_copy and next(cpu_copy.parameters()).device.type == "cpu"
    if not checkpoints.is_loaded("vit-mae-large"):
        with pytest.raises(checkpoints.CheckpointUnavailable, match="loaded once at start-up.*PDR_PRELOAD"):
            checkpoints.load("vit-mae-large")


@pytest.mark.slow  # waits for a GPU call's time to run out
def test_a_call_that_found_its_worker_gone_asks_again_cold_and_the_next_asks_cold_at_once(zero_gpu, monkeypatch,
                                                                                       tmp_path, caplog):
    """Workers that take 2.5 s to start and are kept 0.5 s idle, against the assumed 6 s and 30 s: the first call
    teaches the cold margin; the one that expected a warm worker is aborted and asked again with it; the window is
    learned, so the next call after as long idle asks cold at once."""
    import time

    for rule, value in (("ABORT", "1"), ("COLD_START_S", "2.5"), ("WARM_FOR_S", "0.5"), ("DURATION_FACTOR", "1")):
        monkeypatch.setenv(f"FAKE_SPACES_{rule}", value)

    @gpu_task(gpu_seconds=0.1, cpu_seconds=SLOW_ON_CPU)
    def encode():
        return "encoded"

    caplog.set_level("INFO", logger="demos.dispatcher")
    assert encode() == "encoded"  # a fresh worker: asks the assumed 6 s and the work
    time.sleep(1.2)
    assert encode() == "encoded"  # expects a warm worker (idle 1.2 s < 30 s): asks 2 s, aborted, then 4-5 s
    time.sleep(1.5)
    assert encode() == "encoded"  # idle longer than the window learned: cold at once
    logged = _logged(tmp_path)
    assert [r["outcome"] for r in logged] == ["ok", "aborted", "ok", "ok"], logged
    assert [r["seconds"] for r in logged][:2] == [7, 2] and all(2 < r["seconds"] < 7 for r in logged[2:]), logged
    assert 1.2 <= DISPATCHER.margins.warm_for() < 1.5
    # The log says what was learned (its value follows the overhead measured, which a busy machine stretches).
    assert re.search(r"margins now cold \d+\.\d s \(\d+ cold calls seen\)", caplog.text), caplog.text
