"""The ZeroGPU harness behaves as ZeroGPU does: the real `spaces` package in a Space's process, talking to Hugging
Face's side imitated by `offline.zerogpu_service` (each worker's weights read back onto this CPU).

Each scenario is a small Space, a Python script run in a process of its own (importing `spaces` with ZeroGPU on
patches torch and gradio for the whole process): it puts a model on "cuda", launches a tiny gr.Blocks (ZeroGPU's
start-up: the weights are packed, the service told), calls `@spaces.GPU` functions and writes what it observed as
JSON. The tests read that and what the service recorded. One script serves several tests: each start costs seconds.
"""

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from offline.zerogpu_service import H200, RTX_PRO_6000, Rules, ZeroGpuService, environment, visitor_token

pytestmark = pytest.mark.slow  # each scenario starts a Space's process

# What every scenario starts with: a Space's imports (`spaces` first, as on ZeroGPU), a model resident on "cuda"
# (ones and 0.5: a row of ones gives 4.5 everywhere), and helpers; `launch()` is ZeroGPU's start-up.
PRELUDE = '''
import json
import multiprocessing
import os
import sys
import threading
import time
from types import SimpleNamespace

import spaces
import gradio as gr
import torch
from gradio.context import LocalContext

observed = {"main_pid": os.getpid()}
model = torch.nn.Linear(4, 3)
with torch.no_grad():
    model.weight.fill_(1.0)
    model.bias.fill_(0.5)
model.to("cuda")
ones = torch.ones(2, 4)
fork = multiprocessing.get_context("fork")  # what a worker inherits, created before its fork


def outcome(call, *args, **kwargs):
    """What a call gave: its value, or the exception it raised (its class, gradio title and message)."""
    try:
        return {"value": call(*args, **kwargs)}
    except Exception as error:
        return {"error": type(error).__name__, "title": getattr(error, "title", None),
                "message": str(getattr(error, "message", error))}


def gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


class Headers(dict):  # gradio's headers object (`spaces` wants one with attributes, as a dict has none)
    pass


def as_visitor(token=None):
    """The calls of this thread come from a visitor with this X-IP-Token (None: not signed in), as gradio's request
    carries it."""
    LocalContext.request.set(SimpleNamespace(headers=Headers({"x-ip-token": token} if token else {})))


def launch():
    with gr.Blocks() as demo:
        gr.Markdown("A Space")
    demo.launch(prevent_thread_lock=True, quiet=True)
    return demo
'''

EPILOGUE = '''
with open(sys.argv[1], "w") as out:
    json.dump(observed, out)
'''


def run_space(body: str, folder, rules: Rules = Rules(), gpu_model: str = RTX_PRO_6000) -> tuple[dict, list[dict]]:
    """Run the scenario `body` as a Space against a service with `rules`, its driver reporting `gpu_model`: what it
    observed, and the service's records once every call has ended (an abort may come after the script ends)."""
    script, observed = folder / "space.py", folder / "observed.json"
    script.write_text(PRELUDE + textwrap.dedent(body) + EPILOGUE)
    with ZeroGpuService(rules) as service:
        env = {**os.environ, **environment(service, gpu_model=gpu_model, offload_dir=folder / "offload")}
        done = subprocess.run([sys.executable, str(script), str(observed)], env=env, cwd=folder, capture_output=True,
                              text=True, timeout=240)
        assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
        deadline = time.monotonic() + 30
        while any(r["outcome"] in ("queued", "running") for r in service.records()) and time.monotonic() < deadline:
            time.sleep(0.2)
        return json.loads(observed.read_text()), service.records()


# A Space whose workers stay idle WARM_FOR_S after a call; the driver reports an RTX PRO 6000 (factor 1.5).
WARM_FOR_S = 2.0
WORKERS = f'''
@spaces.GPU(duration=4)
def compute(x, items, fail=None):
    """Where it runs, what its model gives there, and the list it received after changing it."""
    if fail == "gradio":
        raise gr.Error("That clip is too long.")
    if fail == "other":
        raise ValueError("a message ZeroGPU does not pass on")
    items.append("added in the worker")
    weight = next(model.parameters())
    return {{"pid": os.getpid(), "device": str(weight.device), "output": model(x.to(weight.device)).cpu().tolist(),
             "items": items}}


second_may_come = fork.Event()


@spaces.GPU(duration=4)
def stream(fail):
    yield os.getpid()
    if not second_may_come.wait(timeout=30):  # set by the caller once it has the first item
        raise TimeoutError("the first item never reached the caller")
    if fail:
        raise gr.Error("Stopped after one.")
    yield "second"


demo = launch()
items = [1, 2, 3]
calls = observed["calls"] = []
calls.append(outcome(compute, ones, items))
calls.append(outcome(compute, ones, items))  # the service says its worker is idle: reused
time.sleep({WARM_FOR_S} + 1.0)
calls.append(outcome(compute, ones, items))  # idle longer than the service keeps it: a fresh one
calls.append(outcome(compute, ones, items, fail="gradio"))  # reuses that one, which the failure ends
calls.append(outcome(compute, ones, items))
calls.append(outcome(compute, ones, items, fail="other"))
calls.append(outcome(compute, ones, items))
observed["items_in_the_caller"] = items

received = stream(fail=False)
observed["first_item"] = next(received)
second_may_come.set()
observed["rest"] = list(received)
second_may_come.clear()
received = stream(fail=True)
observed["before_the_error"] = next(received)
second_may_come.set()
observed["stream_error"] = outcome(list, received)


def compute_on_the_resident_model():
    return outcome(lambda: model(ones).tolist())


in_another_thread = {{}}
thread = threading.Thread(target=lambda: in_another_thread.update(compute_on_the_resident_model()))
thread.start()
thread.join()
observed["main_thread_compute"] = compute_on_the_resident_model()
observed["other_thread_compute"] = in_another_thread
demo.close()
'''


@pytest.fixture(scope="module")
def workers(tmp_path_factory):
    return run_space(WORKERS, tmp_path_factory.mktemp("workers"), Rules(warm_for_s=WARM_FOR_S))


def test_a_call_runs_in_a_forked_worker_on_pickled_copies(workers):
    observed, records = workers
    first = observed["calls"][0]["value"]
    assert first["pid"] != observed["main_pid"] and records[0]["pid"] == first["pid"]
    assert first["items"] == [1, 2, 3, "added in the worker"]  # the worker's copy changed...
    assert observed["items_in_the_caller"] == [1, 2, 3]  # ...not the caller's list


def test_inside_a_worker_the_resident_model_is_on_cuda_and_computes(workers):
    observed, _ = workers
    first = observed["calls"][0]["value"]
    assert first["device"] == "cuda:0" and first["output"] == [[4.5] * 3] * 2


def test_a_worker_is_reused_while_the_service_says_idle_and_fresh_after_warm_for_s_or_a_failure(workers):
    observed, records = workers
    pids = [call["value"]["pid"] if "value" in call else None for call in observed["calls"]]
    fresh, reused, late, failed_gradio, after_it, failed_other, after_that = pids
    assert reused == fresh and late != fresh
    assert after_it != late and after_that != after_it  # a failed call's worker (reused from `late`) is gone
    assert [r["reused_worker"] for r in records[:7]] == [False, True, False, True, False, True, False]
    assert [r["outcome"] for r in records[:7]] == ["ok", "ok", "ok", "failed", "ok", "failed", "ok"]
    assert records[3]["pid"] == late and records[5]["pid"] == after_it


def test_gr_error_keeps_its_message_and_other_exceptions_only_their_class_name(workers):
    observed, _ = workers
    gradio, other = observed["calls"][3], observed["calls"][5]
    assert gradio["error"] == "Error" and gradio["message"] == "That clip is too long."
    assert other == {"error": "Error", "title": "ZeroGPU worker error", "message": "ValueError"}


def test_a_generator_streams_each_item_before_it_ends_and_its_error_after_them(workers):
    observed, records = workers
    assert observed["first_item"] != observed["main_pid"] and observed["rest"] == ["second"]
    assert observed["before_the_error"] == observed["first_item"]  # its idle worker, reused
    assert observed["stream_error"]["message"] == "Stopped after one."
    assert [r["outcome"] for r in records[7:]] == ["ok", "failed"]


def test_on_an_rtx_pro_6000_the_service_receives_each_duration_times_1_5(workers):
    _, records = workers
    assert {r["seconds"] for r in records} == {6}  # duration=4


def test_after_launch_the_main_process_cannot_compute_on_the_resident_model(workers):
    """Its weights were packed at launch: the main thread's emulation refuses them, and another thread of the main
    process (without the emulation) computes on the empty tensors left behind."""
    observed, _ = workers
    assert observed["main_thread_compute"]["error"] == "Exception"
    assert "disk-offloaded" in observed["main_thread_compute"]["message"]
    assert observed["other_thread_compute"]["value"] == [[0.0] * 3] * 2


# A Space on H200s (factor 1.0): what cannot cross the process boundary, and a call past its duration.
CROSSING = '''
@spaces.GPU(duration=1)
def echo(x):
    return x.shape[0]


@spaces.GPU(duration=4)
def compute(x):
    return model(x.to("cuda")).cpu().tolist()


@spaces.GPU(duration=4)
def leave_on_cuda(x):
    return model(x.to("cuda")).detach()


@spaces.GPU(duration=4)
def keep_grad(x):
    return x * torch.ones(4, requires_grad=True)


worker_pid = fork.Value("i", 0)


@spaces.GPU(duration=3)
def hang():
    worker_pid.value = os.getpid()
    time.sleep(60)


demo = launch()
observed["grad_argument"] = outcome(echo, ones * torch.ones(4, requires_grad=True))
observed["compute"] = outcome(compute, ones)
observed["leave_on_cuda"] = outcome(leave_on_cuda, ones)
observed["keep_grad"] = outcome(keep_grad, ones)
observed["hang"] = outcome(hang)
observed["hung_worker"] = worker_pid.value
observed["hung_worker_gone"] = gone(worker_pid.value)
demo.close()
'''


@pytest.fixture(scope="module")
def crossing(tmp_path_factory):
    return run_space(CROSSING, tmp_path_factory.mktemp("crossing"), gpu_model=H200)


def test_on_an_h200_the_service_receives_each_duration_as_it_is(crossing):
    observed, records = crossing
    assert observed["compute"]["value"] == [[4.5] * 3] * 2
    assert [r["seconds"] for r in records] == [1, 4, 4, 4, 3]


def test_a_tensor_left_on_cuda_or_needing_grad_fails_the_call_it_returns_from(crossing):
    """The worker cannot pickle it: the package's worker dies of it, and the caller reads an aborted task."""
    observed, records = crossing
    for name in ("leave_on_cuda", "keep_grad"):
        assert observed[name] == {"error": "Error", "title": "ZeroGPU worker error", "message": "GPU task aborted"}
    assert [r["outcome"] for r in records[2:4]] == ["failed", "failed"]


def test_a_tensor_needing_grad_as_argument_raises_in_the_caller_and_its_call_stays_scheduled_until_aborted(crossing):
    """What the real package does: torch's RuntimeError is no PicklingError, so the client neither catches it nor
    releases the call. Its worker never asks `/allow` (it waits for the arguments): the service aborts the call
    only once its seconds have passed, with no worker to kill."""
    observed, records = crossing
    assert observed["grad_argument"]["error"] == "RuntimeError"
    assert "Cowardly refusing to serialize non-leaf tensor which requires_grad" in observed["grad_argument"]["message"]
    assert records[0]["outcome"] == "aborted" and records[0]["pid"] is None and records[0]["held"] >= 1


def test_a_call_past_its_duration_is_aborted_by_the_service_and_its_worker_is_gone(crossing):
    observed, records = crossing
    assert observed["hang"] == {"error": "Error", "title": "ZeroGPU worker error", "message": "GPU task aborted"}
    assert records[4]["outcome"] == "aborted" and records[4]["pid"] == observed["hung_worker"] != 0
    assert observed["hung_worker_gone"]


# A Space with one GPU and quotas: refusals as the real client words them. Durations of 3 s ask 4 (x 1.5, rounded
# half to even, as the client rounds), 10 s ask 15.
REFUSALS = f'''
holding, release = fork.Event(), fork.Event()


@spaces.GPU(duration=8)
def hold():
    holding.set()
    release.wait(20)


@spaces.GPU(duration=3)
def short():
    return "done"


@spaces.GPU(duration=10)
def long():
    return "done"


demo = launch()


def holder():
    as_visitor({visitor_token("holder")!r})
    hold()


thread = threading.Thread(target=holder)
thread.start()
assert holding.wait(60), "the holder's call never started"
as_visitor(None)
observed["queued_without_token"] = outcome(short)
as_visitor({visitor_token("x")!r})
observed["queued_with_token"] = outcome(short)
release.set()
thread.join()

as_visitor(None)
observed["without_token"] = [outcome(short) for _ in range(3)]
as_visitor({visitor_token("x")!r})
observed["with_token"] = [outcome(long) for _ in range(2)]
demo.close()
'''


@pytest.fixture(scope="module")
def refusals(tmp_path_factory):
    rules = Rules(quota_s=10, token_quota_s=20, charge="requested", gpus=1, queue_timeout_s=0.5)
    return run_space(REFUSALS, tmp_path_factory.mktemp("refusals"), rules)


def test_with_every_gpu_busy_a_queued_call_waits_then_fails(refusals):
    observed, records = refusals
    assert observed["queued_without_token"]["title"] == "ZeroGPU quota exceeded"  # what a visitor without one reads
    assert observed["queued_without_token"]["message"].startswith("No GPU was available after 60s. Try re-running")
    assert observed["queued_with_token"]["title"] == "ZeroGPU queue timeout"
    assert observed["queued_with_token"]["message"].startswith("No GPU was available after 60s")
    assert [r["outcome"] for r in records[:3]] == ["ok", "queue timeout", "queue timeout"]


def test_a_call_is_refused_once_the_quota_would_not_cover_what_it_asks(refusals):
    """Visitors without a token share 10 s: two calls of 4 s, not a third. A token has its own 20 s: one of 15 s."""
    observed, records = refusals
    first, second, third = observed["without_token"]
    assert first == second == {"value": "done"}
    assert third["title"] == "ZeroGPU quota exceeded"
    assert third["message"].startswith("Space app has reached its GPU limit. Try re-running outside of examples")
    ok, refused = observed["with_token"]
    assert ok == {"value": "done"} and refused["title"] == "ZeroGPU quota exceeded"
    assert refused["message"].startswith("You have exceeded your ZeroGPU quota (15s requested vs. 5s left).")
    assert [(r["signed_in"], r["seconds"], r["outcome"]) for r in records[3:]] == [
        (False, 4, "ok"), (False, 4, "ok"), (False, 4, "refused"), (True, 15, "ok"), (True, 15, "refused")]
