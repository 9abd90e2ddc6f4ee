"""Where a visitor's model work runs on ZeroGPU, and what a refusal changes (`demos.placement`): every rule, one row
each, from named inputs."""

import pytest

from demos import placement
from demos.placement import CPU, CPU_PATIENCE_S, GPU, NOWHERE

REFUSED = "no GPU was free within a minute"

# A call nothing sends to the CPU: a slow CPU, no queue, a warm worker, the assumed margins. A GPU call then takes
# ZeroGPU's round trip and the work, 3 s; with a fresh worker 5 s more (its start margin over a warm one's).
CALL = dict(action_on_cpu=None, gpu_work_s=2.0, cpu_work_s=20.0, cpu_queued_s=0.0, worker_warm=True, warm_start_s=1.0,
            cold_start_s=6.0)


@pytest.mark.parametrize("changes, device, why, fallback", [
    pytest.param({}, GPU, "", False, id="the GPU where the CPU is slower"),
    pytest.param({"cpu_work_s": 1.2, "gpu_work_s": 0.1}, CPU,
                 "the Space's CPU does this in about 1.2 s, and it spends no GPU quota", False,
                 id="the CPU when it is quick, even where a GPU is faster"),
    pytest.param({"cpu_work_s": 1.2, "gpu_work_s": 0.1, "cpu_queued_s": 1.0}, GPU, "", False,
                 id="the GPU when the CPU queue makes a quick call slow"),
    pytest.param({"cpu_work_s": 2.9}, CPU, "about 2.9 s", False,
                 id="the CPU when it is no slower than a GPU call (round trip and work)"),
    pytest.param({"cpu_work_s": 3.1}, GPU, "", False, id="the GPU when a warm worker is sooner"),
    pytest.param({"cpu_work_s": 7.9, "worker_warm": False}, CPU, "about 7.9 s", False,
                 id="the CPU when a fresh worker's start makes a GPU call later"),
    pytest.param({"cpu_work_s": 8.1, "worker_warm": False}, GPU, "", False,
                 id="the GPU when even a fresh worker is sooner"),
    pytest.param({"cpu_work_s": 7.9, "worker_warm": False, "cold_start_s": 0.5}, GPU, "", False,
                 id="a fresh worker learned quicker than a warm one adds nothing"),
    pytest.param({"action_on_cpu": REFUSED, "cpu_work_s": 0.2}, CPU, REFUSED, True,
                 id="after a refusal the CPU, with the refusal's words"),
    pytest.param({"action_on_cpu": REFUSED, "cpu_work_s": CPU_PATIENCE_S}, CPU, REFUSED, True,
                 id="after a refusal the CPU, up to the learner's patience"),
    pytest.param({"action_on_cpu": REFUSED, "cpu_work_s": CPU_PATIENCE_S + 1}, NOWHERE,
                 f"No GPU can run this right now ({REFUSED}), and on the Space's CPU it would take about 31 s", False,
                 id="after a refusal nowhere, when the CPU would take too long"),
])
def test_where_a_call_runs(changes, device, why, fallback):
    where = placement.place(**{**CALL, **changes})
    assert (where.device, where.fallback) == (device, fallback)
    assert why in where.why and (why or not where.why)
    if device == NOWHERE:
        assert "sign in there" in where.why


@pytest.mark.parametrize("on_zero_gpu, signed_in, refused_why, expected", [
    pytest.param(True, False, REFUSED, REFUSED, id="a recent refusal: visitors not signed in start on the CPU"),
    pytest.param(True, True, REFUSED, None, id="signed-in visitors have quotas of their own"),
    pytest.param(True, False, None, None, id="no recent refusal"),
    pytest.param(False, False, REFUSED, None, id="off ZeroGPU"),
])
def test_whether_a_whole_action_starts_on_the_cpu(on_zero_gpu, signed_in, refused_why, expected):
    assert placement.action_on_cpu(on_zero_gpu=on_zero_gpu, signed_in=signed_in, refused_why=refused_why) == expected


@pytest.mark.parametrize("kind, signed_in, expected", [
    ("quota", False, True), ("quota", True, False), ("aborted", False, False), ("failed", False, False),
])
def test_which_refusals_send_the_next_actions_to_the_cpu(kind, signed_in, expected):
    assert placement.backs_off(kind=kind, signed_in=signed_in) is expected


@pytest.mark.parametrize("changes, expected", [
    pytest.param({}, True, id="an abort that taught a larger margin: once more"),
    pytest.param({"would_ask_s": 2}, False, id="nothing more to ask"),
    pytest.param({"kind": "quota"}, False, id="a quota refusal"),
    pytest.param({"kind": "failed"}, False, id="a failed call"),
    pytest.param({"streams": True}, False, id="a stream: its items may be on the page"),
    pytest.param({"asked_again_before": True}, False, id="only once"),
])
def test_which_refused_calls_are_asked_again(changes, expected):
    call = dict(kind="aborted", streams=False, asked_again_before=False, asked_s=2, would_ask_s=7)
    assert placement.asks_again(**{**call, **changes}) is expected
