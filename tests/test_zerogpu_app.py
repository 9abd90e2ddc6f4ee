"""The app as on a ZeroGPU Space: `python app.py` with the real `spaces` package, Hugging Face's side imitated.

The app runs in a subprocess as on a Space (conftest's `zerogpu_env`): `spaces` imported at start-up, every checkpoint
preloaded before launch, resident on "cuda" under ZeroGPU's emulation and packed away at launch, with a CPU copy. Each
call of a GPU function placed on a GPU runs in a worker of the package (forked, reused while idle, its arguments and
results pickled), scheduled by the imitated device service (`offline.zerogpu_service`, a thread of this process); the
worker reads the packed weights back onto this CPU. Every model endpoint is called twice through gradio_client, under
timeouts; a second call with the block or tube moved must be served from the main process's cache (a worker keeps
nothing for the Space). Where each call ran comes from the endpoints' numbers (`ran_on`); what the service received and
how each call ended, from its records. The answers must be the in-process app's (off ZeroGPU, the same tiny weights,
fp32). No quota limit here: tests/test_classroom.py runs the app on a small one.
"""

from dataclasses import dataclass, field

import pytest
from conftest import EXAMPLE_IMAGES, ROOT, RTX_PRO_6000_FACTOR, start_app, stop_app, zerogpu_env
from gradio_client import Client, handle_file
from same_answers import COMPARED, differences, planned_for

import checkpoints
from demos import startup, zerogpu
from offline.zerogpu_service import Rules, ZeroGpuService

pytestmark = pytest.mark.slow  # the app in a process of its own

CALL_TIMEOUT_S = 240  # a hang (a worker that never answers) fails the test instead of stalling it
NOT_PRELOADED = "vit-mae-large"  # left out of PDR_PRELOAD: loading it inside a GPU function must be refused
VIDEO = str(ROOT / "examples" / "videos" / "ball_behind_wall.mp4")


@dataclass
class ZeroGpuApp:
    client: Client
    service: ZeroGpuService


@pytest.fixture(scope="module")
def zerogpu_app(tiny_hub, tmp_path_factory):
    preload = [n for n in startup.preload_names() if n != NOT_PRELOADED]
    # The durations the app asks are sized for a GPU; here its workers compute on this shared CPU, under the emulation,
    # so an overdue call is not aborted (tests/test_classroom.py runs the app with aborts).
    with ZeroGpuService(Rules(abort=False)) as service:
        env = {**zerogpu_env(tiny_hub, service, tmp_path_factory.mktemp("zerogpu")), "PDR_PRELOAD": ",".join(preload)}
        server, client, _ = start_app([], env, timeout_s=240)
        yield ZeroGpuApp(client, service)
    output = stop_app(server)  # after the service has ended the Space's workers, while the app still holds their ids
    # Start-up preloaded every checkpoint asked for, with its CPU copy, and said how long it took and how much
    # memory they hold.
    assert "Start-up:" in output and "checkpoints resident" in output and "in CPU copies" in output, output[-4000:]


@pytest.fixture
def records_before(zerogpu_app) -> int:
    """How many GPU calls the service had scheduled when the test began."""
    return len(zerogpu_app.service.records())


def _call(client, api_name, args):
    return client.submit(*args, api_name=api_name).result(timeout=CALL_TIMEOUT_S)


@dataclass
class EndpointCall:
    """One endpoint called twice; `moved` is the second call's arguments (the block or tube moved)."""

    api_name: str
    args: tuple
    moved: tuple
    gpu_functions: set  # the GPU functions (qualified names) the endpoint must run in a ZeroGPU worker
    cache_hit: callable = None  # (first numbers, second numbers) -> True when the second came from the cache
    numbers: callable = field(default=lambda outputs: outputs[-1])  # the numbers among the outputs


def _image(i):
    return handle_file(str(EXAMPLE_IMAGES[i]))


def _tube_args(top, left):
    return (handle_file(VIDEO), 0.0, 8, 2, 0, top, left, 3, 3, 0, 3)


def _passes(numbers):
    """(encoder passes run, reused from the cache) in /classify_action's or /answer_question's numbers."""
    if "encoder_passes_reused" in numbers:
        return numbers["encoder_passes_run"], numbers["encoder_passes_reused"]
    cached = sum(p["cached"] for p in numbers["encoder_passes"])
    return numbers["encoder_passes_run"], cached


def _ran_on(numbers) -> set[str]:
    """The devices the action's model work ran on ("cpu": the Space's CPU, "gpu": a ZeroGPU worker)."""
    return {run["device"] for run in numbers["ran_on"]}


def _gpu_calls(service, records_before: int, answers: list[dict]) -> list[tuple[dict, dict]]:
    """(the service's record, the answer's run) of each GPU call since `records_before`, checked: one call for each GPU
    run the answers report, in order, each ended "ok" (a worker's error ends "failed", and the action runs again on the
    Space's CPU: no run may be such a fallback), each received for the seconds the app asked times the client's
    factor."""
    runs = [run for numbers in answers if not numbers.get("from_result_cache") for run in numbers.get("ran_on", [])]
    assert not [run for run in runs if run["fallback"]], runs
    gpu_runs = [run for run in runs if run["device"] == "gpu"]
    records = service.records()[records_before:]
    assert [r["outcome"] for r in records] == ["ok"] * len(gpu_runs), (records, gpu_runs)
    assert [r["seconds"] for r in records] == [round(run["asked"] * RTX_PRO_6000_FACTOR) for run in gpu_runs], \
        (records, gpu_runs)
    assert all(run["asked"] >= 1 and r["seconds"] < 60 and r["size"] == "large"
               for r, run in zip(records, gpu_runs, strict=True)), (records, gpu_runs)
    return list(zip(records, gpu_runs, strict=True))


# --- Every model endpoint. ---------------------------------------------------------------------------
# Where each runs follows from the estimates (gpu_task): 6.1 takes a second or two on the Space's CPU, so it runs
# there and asks no GPU (its first ratio on a bundled picture sweeps every ratio of the slider in one call, and its next
# ratio is read from that sweep with no device call); 6.2-6.5 ask one (6.2-6.3 compares a still image as a GPU's
# 16-frame clip on ZeroGPU, work its CPU would take many seconds over). A prepare asks none on ZeroGPU.
ENDPOINT_CALLS = [
    EndpointCall("/mae_reconstruct", (_image(0), 0.75, 0, "vit-mae-base"), (_image(0), 0.5, 0, "vit-mae-base"),
                 set(), cache_hit=lambda first, second: _ran_on(first) == {"cpu"} and _ran_on(second) == set()),
    EndpointCall("/compare_pixels_embeddings", (_image(1), 1, 1, 2, 2), (_image(1), 4, 5, 3, 3),
                 {"predict_block"},
                 cache_hit=lambda first, second: (not first["target_cache_hit"] and second["target_cache_hit"]
                                                  and first["seconds"]["target_encoder"] > 0
                                                  and second["seconds"]["target_encoder"] == 0.0)),
    EndpointCall("/noise_sweep", (_image(0), 1, 1, 2, 2, "grain", 24, 10, 3), (_image(0), 4, 5, 3, 3, "grain", 24, 10, 3),
                 {"predict_levels"},
                 cache_hit=lambda first, second: not any(first["target_cache_hit"]) and all(second["target_cache_hit"])),
    EndpointCall("/tube_predict", _tube_args(4, 4), _tube_args(1, 2), {"encode_and_predict"},
                 cache_hit=lambda first, second: (not first["target_cache_hit"] and second["target_cache_hit"]
                                                  and first["seconds"]["targets"] > 0
                                                  and second["seconds"]["targets"] == 0.0)),
    # 6.5: the same request again is answered from the shared result cache; another question on the same clip
    # runs no encoder pass in the worker.
    EndpointCall("/classify_action", (handle_file(VIDEO), 0.0, "shared"), (handle_file(VIDEO), 0.0, "shared"),
                 {"encode_and_classify"},
                 cache_hit=lambda first, second: (_passes(first) == (1, 0) and not first["from_result_cache"]
                                                  and second["from_result_cache"])),
    EndpointCall("/answer_question", (handle_file(VIDEO), 0.5, "What happens?", "shared"),
                 (handle_file(VIDEO), 0.5, "How sure are you?", "shared"), {"answer_on_device"},
                 cache_hit=lambda first, second: _passes(first) == (1, 0) and _passes(second) == (0, 1)),
    # Start early pays only on a CPU: on ZeroGPU the click encodes the clip in its own GPU call.
    EndpointCall("/tube_prepare", (handle_file(VIDEO), 0.5, 8, 2, 0), (handle_file(VIDEO), 0.5, 8, 2, 0), set(),
                 cache_hit=lambda first, second: "ZeroGPU" in first["skipped"] and not first["targets_computed"],
                 numbers=lambda outputs: outputs),
    EndpointCall("/prepare_clip", (handle_file(VIDEO), 0.25, "shared"), (handle_file(VIDEO), 0.25, "shared"), set(),
                 cache_hit=lambda first, second: "ZeroGPU" in first["skipped"] and first["encoder_passes_run"] == 0,
                 numbers=lambda outputs: outputs),
]


@pytest.mark.parametrize("call", ENDPOINT_CALLS, ids=lambda call: call.api_name)
def test_every_model_endpoint_answers_twice_where_it_pays_and_moves_are_served_from_the_main_process_cache(
        zerogpu_app, records_before, client, call):
    outputs = [_call(zerogpu_app.client, call.api_name, args) for args in (call.args, call.moved)]
    first, second = (call.numbers(answer) for answer in outputs)
    if call.cache_hit is not None:
        assert call.cache_hit(first, second), (first, second)
    # Exactly these GPU functions ran in a worker, each call ending well, for what the app asked; the second call's
    # worker was the first's, kept idle.
    computed = call.api_name in COMPARED
    gpu_calls = _gpu_calls(zerogpu_app.service, records_before, [first, second] if computed else [])
    assert {run["function"] for _, run in gpu_calls} == call.gpu_functions, gpu_calls
    assert all(record["reused_worker"] for record, _ in gpu_calls[1:]), gpu_calls
    # The answers are the in-process app's, planned as for a GPU, whether a worker or the Space's CPU computed them.
    if computed:
        for args, ours in zip((call.args, call.moved), outputs, strict=True):
            with planned_for("cuda"):
                theirs = _call(client, call.api_name, args)
            assert not differences(call.api_name, ours, theirs), (args, call.numbers(ours)["ran_on"],
                                                                  differences(call.api_name, ours, theirs))


def test_a_second_visitor_on_a_reused_worker_gets_the_answer_to_their_own_request(zerogpu_app, records_before, client):
    # Two visitors, one after the other, each with a picture of their own: the second call's worker is the first's.
    requests = [(_image(2), 2, 2, 2, 2, "grain", 24, 10, 3), (_image(3), 2, 2, 2, 2, "grain", 24, 10, 3)]
    answers = [_call(Client(zerogpu_app.client.src, verbose=False), "/noise_sweep", args) for args in requests]
    (first, _), (second, _) = _gpu_calls(zerogpu_app.service, records_before, [outputs[-1] for outputs in answers])
    assert second["reused_worker"] and second["pid"] == first["pid"], (first, second)
    with planned_for("cuda"):
        theirs = [_call(client, "/noise_sweep", args) for args in requests]
    assert differences("/noise_sweep", *theirs)  # two pictures, two answers: the first one again would show
    for ours, expected in zip(answers, theirs, strict=True):
        assert not differences("/noise_sweep", ours, expected), differences("/noise_sweep", ours, expected)


def test_the_first_gpu_call_asks_the_assumed_cold_start_and_later_ones_what_the_space_learned(zerogpu_app,
                                                                                              records_before):
    answers = [_call(zerogpu_app.client, "/tube_predict", _tube_args(top, 5))[-1] for top in (2, 3)]
    _gpu_calls(zerogpu_app.service, records_before, answers)
    first_call = zerogpu_app.service.records()[0]
    # Nothing learned yet: the Space's first GPU call asks the assumed cold start on top of its work. This imitation's
    # workers start within a second, so the margins learned from the calls that follow (whichever function made them)
    # ask less.
    assert first_call["seconds"] > zerogpu.GPU_COLD_START_S * RTX_PRO_6000_FACTOR, first_call
    last_ask = answers[-1]["ran_on"][-1]
    assert round(last_ask["asked"] * RTX_PRO_6000_FACTOR) < first_call["seconds"], (first_call, last_ask)


def test_a_checkpoint_left_out_at_start_up_is_a_clear_message(zerogpu_app):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=f"{checkpoints.get(NOT_PRELOADED).hub_id} is not loaded"):
        _call(zerogpu_app.client, "/mae_reconstruct", (_image(2), 0.75, 0, NOT_PRELOADED))


def test_the_deployed_check_shows_where_each_call_ran_and_names_a_checkpoint_left_out(zerogpu_app, records_before):
    import app
    from checks import deployed

    space = deployed.Space(zerogpu_app.client.src)
    calls = deployed.check_endpoints(space, app.CONCEPTS)
    assert [c.endpoint for c in calls][::2] == [name for concept in app.CONCEPTS for name in concept.endpoints]
    assert not [c for c in calls if c.error], deployed.calls_table(calls)
    gpu_runs = [run for c in calls for run in c.ran_on if run["device"] == "gpu"]
    assert gpu_runs and all(run["asked"] >= 1 for run in gpu_runs), deployed.calls_table(calls)
    assert not [run for c in calls for run in c.ran_on if run["fallback"]], deployed.calls_table(calls)
    assert "(asked " in deployed.calls_table(calls)
    failed = [row for row in deployed.check_promises(space, only=("6.1",)) if row.passed is False]
    assert failed and "/mae_reconstruct failed" in failed[0].measured, failed
    assert f"{checkpoints.get(NOT_PRELOADED).hub_id} is not loaded" in failed[0].measured, failed
    outcomes = [r["outcome"] for r in zerogpu_app.service.records()[records_before:]]
    assert outcomes and set(outcomes) == {"ok"}, outcomes
