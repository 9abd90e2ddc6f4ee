"""CPU copies that fit the Space's memory (`demos.memory_plan`), and what an action without its copy says."""

import pytest

import checkpoints
from demos import devices, memory_plan, startup, zerogpu
from demos.errors import NeedsGpu

GB = 2**30


def test_copies_are_kept_smallest_first_while_they_fit_with_a_margin():
    sizes = {"huge": 3 * GB, "base": GB // 2, "large": 2 * GB}
    copies = memory_plan.plan(sizes, available_bytes=6 * GB)  # margin 1.5 GB: room for 4.5 GB
    assert copies.kept == ("base", "large") and copies.left_out == ("huge",)
    assert "left out, so their actions need the GPU: huge (3.0 GB)" in copies.describe()
    assert memory_plan.plan(sizes, available_bytes=64 * GB).left_out == ()
    assert memory_plan.plan(sizes, available_bytes=GB).kept == ()  # the margin alone takes it all


def test_the_memory_available_is_read_and_never_more_than_the_machine_has():
    import psutil

    assert 0 < memory_plan.available_bytes() <= psutil.virtual_memory().total


def test_under_a_memory_limit_the_largest_copy_is_left_out_and_its_action_needs_the_gpu(tiny_hub, monkeypatch, request,
                                                                                        caplog):
    monkeypatch.setenv(startup.ENV_PRELOAD, "vit-mae-base,vit-mae-large")
    monkeypatch.setenv(devices.ENV_DEVICE, "cpu")
    monkeypatch.setenv("PDR_DTYPE", "float32")
    monkeypatch.setattr(zerogpu, "ON_ZERO_GPU", True)
    # 2.5 GB: a 1 GB margin leaves room for base's fp32 copy (0.35 GB of published parameters), not large's (1.3 GB).
    monkeypatch.setattr(memory_plan, "available_bytes", lambda: int(2.5 * GB))
    request.addfinalizer(checkpoints.reset)
    caplog.set_level("INFO", logger="demos.startup")
    loaded = startup.preload_all()
    assert ("vit-mae-base", True) in loaded and ("vit-mae-large", True) not in loaded
    assert ("vit-mae-large", False) in loaded  # the GPU copy is there
    assert "left out, so their actions need the GPU: vit-mae-large" in caplog.text
    with zerogpu.on_cpu("the GPU quota is used up"), pytest.raises(NeedsGpu, match="This needs the GPU.*vit-mae-large"):
        checkpoints.load("vit-mae-large")
