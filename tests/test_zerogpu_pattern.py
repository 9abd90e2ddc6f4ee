"""The ZeroGPU boundary in checkpoints: gpu_task, resident-only loading, with the fake `spaces` in-process."""

import importlib
import json
import os
import sys

import pytest
from test_fake_spaces import FAKE_SPACES

import checkpoints
from demos.errors import UserError


class TubeTooLarge(UserError):
    pass


@pytest.fixture
def zero_gpu(monkeypatch, tmp_path):
    """checkpoints as on a ZeroGPU Space (fake `spaces`), decorating from now on; the fake's log in tmp_path."""
    monkeypatch.syspath_prepend(str(FAKE_SPACES))
    monkeypatch.delitem(sys.modules, "spaces", raising=False)
    monkeypatch.setenv("SPACES_ZERO_GPU", "1")
    monkeypatch.setenv("FAKE_SPACES_LOG", str(tmp_path / "requests.jsonl"))
    monkeypatch.setattr(checkpoints, "ON_ZERO_GPU", True)
    spaces = importlib.import_module("spaces")
    spaces.requested.clear()
    return spaces


def test_elsewhere_a_gpu_task_runs_in_process_one_call_at_a_time(monkeypatch):
    monkeypatch.setattr(checkpoints, "ON_ZERO_GPU", False)

    def work(x):
        return x + 1, checkpoints._device_lock.locked(), os.getpid()

    def stream(n):
        for i in range(n):
            yield i, checkpoints._device_lock.locked()

    task = checkpoints.gpu_task(duration=5)(work)
    assert task.plain is work and task(1) == (2, True, os.getpid())
    assert not checkpoints._device_lock.locked()
    # A stream holds the lock until it ends or is closed (a cancelled prepare's thread finishes first).
    items = checkpoints.gpu_task(duration=5)(stream)(3)
    assert next(items) == (0, True) and checkpoints._device_lock.locked()
    items.close()
    assert not checkpoints._device_lock.locked()
    assert list(checkpoints.gpu_task(duration=5)(stream)(2)) == [(0, True), (1, True)]
    assert not checkpoints._device_lock.locked()


def test_a_user_error_inside_keeps_its_message_and_class(zero_gpu):
    @checkpoints.gpu_task(duration=3)
    def refuse(size):
        raise TubeTooLarge(f"A {size}x{size} tube hides the whole clip.")

    with pytest.raises(TubeTooLarge, match="A 9x9 tube hides the whole clip."):
        refuse(9)


def test_it_runs_in_another_process_with_every_core(zero_gpu):
    import torch

    @checkpoints.gpu_task(duration=3)
    def where():
        return os.getpid(), torch.get_num_threads()

    pid, threads = where()
    assert pid != os.getpid() and threads == (os.cpu_count() or 1)


def test_durations_are_whole_seconds_rounded_up_and_callables_see_the_arguments(zero_gpu, tmp_path):
    @checkpoints.gpu_task(duration=lambda frames, checkpoint="base": 1.2 + frames / 10)
    def predict(frames, checkpoint="base"):
        return frames

    @checkpoints.gpu_task(duration=2.5)
    def fixed():
        return 0

    assert predict(16, checkpoint="large") == 16 and fixed() == 0
    assert [r.seconds for r in zero_gpu.requested] == [3, 3]  # 2.8 -> 3 (ZeroGPU alone would take 2), 2.5 -> 3
    logged = [json.loads(line) for line in (tmp_path / "requests.jsonl").read_text().splitlines()]
    assert [r["seconds"] for r in logged] == [3, 3] and logged[0]["function"].endswith("predict")


def test_generators_stream_and_a_user_error_ends_them_with_its_message(zero_gpu):
    @checkpoints.gpu_task(duration=4)
    def count(n):
        yield from range(n)
        raise UserError(f"Stopped after {n}.")

    received = []
    with pytest.raises(UserError, match="Stopped after 3."):
        for item in count(3):
            received.append(item)
    assert received == [0, 1, 2]


def test_any_other_error_stays_hidden_as_on_zerogpu(zero_gpu):
    import gradio as gr

    @checkpoints.gpu_task(duration=3)
    def crash():
        raise RuntimeError("internal detail")

    with pytest.raises(gr.Error) as caught:
        crash()
    assert "internal detail" not in str(caught.value)


def test_after_preload_only_resident_checkpoints_load(tiny_hub, monkeypatch):
    monkeypatch.setenv(checkpoints.ENV_PRELOAD, "vit-mae-base")
    monkeypatch.setattr(checkpoints, "_resident_only", False)
    monkeypatch.setattr(checkpoints, "_not_resident", {})
    loaded = checkpoints.preload_all()
    assert list(loaded) == ["vit-mae-base"] and checkpoints.is_loaded("vit-mae-base")
    assert checkpoints.load("vit-mae-base").model is not None
    if not checkpoints.is_loaded("vit-mae-large"):
        with pytest.raises(checkpoints.CheckpointUnavailable, match="loaded once at start-up.*PDR_PRELOAD"):
            checkpoints.load("vit-mae-large")
