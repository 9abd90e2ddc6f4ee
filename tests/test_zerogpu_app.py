"""The app under ZeroGPU's contract: `python app.py` with SPACES_ZERO_GPU=1 and the fake `spaces`.

The app runs in a subprocess (as on a Space: `spaces` imported at start-up, every checkpoint preloaded
before launch, with a CPU copy) with PDR_DEVICE=cpu, so the ZeroGPU code path runs on this CPU: each GPU
function that asks a GPU is forked into a fresh child and its arguments and results are pickled
(tests/fake_spaces). Every model endpoint is called twice through gradio_client, under timeouts; a second
call with the block or tube moved must be served from the main process's cache (a fresh child remembers
nothing). The fake logs each GPU request (duration, the caller's torch threads, what became of it) to
FAKE_SPACES_LOG. No quota limit here: tests/test_classroom.py runs the app on a small one.
"""

import json
from dataclasses import dataclass, field

import pytest
from conftest import EXAMPLE_IMAGES, ROOT, start_app, stop_app, zerogpu_env
from gradio_client import handle_file

import checkpoints
from demos import startup, zerogpu

pytestmark = pytest.mark.slow  # the app in a process of its own

CALL_TIMEOUT_S = 240  # a hang fails the test instead of stalling it (the fake kills a child after 300 s)
NOT_PRELOADED = "vit-mae-large"  # left out of PDR_PRELOAD: loading it inside a GPU function must be refused
VIDEO = str(ROOT / "examples" / "videos" / "ball_behind_wall.mp4")


@pytest.fixture(scope="module")
def zerogpu_app(tiny_hub, tmp_path_factory):
    log_path = tmp_path_factory.mktemp("zerogpu") / "gpu-requests.jsonl"
    preload = [n for n in startup.preload_names() if n != NOT_PRELOADED]
    env = {**zerogpu_env(tiny_hub, log_path), "PDR_PRELOAD": ",".join(preload)}
    server, client, _ = start_app([], env, timeout_s=240)
    yield client, log_path
    output = stop_app(server)
    # Start-up preloaded every checkpoint asked for, with its CPU copy, and said how long it took and how much
    # memory they hold.
    assert "Start-up:" in output and "checkpoints resident" in output and "in CPU copies" in output, output[-4000:]


def _requests(log_path) -> list[dict]:
    if not log_path.exists():
        return []
    return [json.loads(line) for line in log_path.read_text().splitlines()]


def _call(client, api_name, args):
    return client.submit(*args, api_name=api_name).result(timeout=CALL_TIMEOUT_S)


@dataclass
class EndpointCall:
    """One endpoint called twice; `moved` is the second call's arguments (the block or tube moved)."""

    api_name: str
    args: tuple
    moved: tuple
    gpu_functions: set  # the GPU functions (qualified names) the endpoint must ask a GPU for
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


# --- Every model endpoint. ---------------------------------------------------------------------------
# Where each runs follows from the estimates (gpu_task): 6.1 and 6.2-6.3 take a second or two on the Space's CPU,
# so they run there and ask no GPU (6.1's first ratio on a bundled picture sweeps every ratio of the slider in one
# call, and its next ratio is read from that sweep with no device call); 6.4 and 6.5 ask one. A prepare asks none on
# ZeroGPU.
ENDPOINT_CALLS = [
    EndpointCall("/mae_reconstruct", (_image(0), 0.75, 0, "vit-mae-base"), (_image(0), 0.5, 0, "vit-mae-base"),
                 set(), cache_hit=lambda first, second: _ran_on(first) == {"cpu"} and _ran_on(second) == set()),
    EndpointCall("/compare_pixels_embeddings", (_image(1), 1, 1, 2, 2), (_image(1), 4, 5, 3, 3),
                 set(),
                 cache_hit=lambda first, second: (not first["target_cache_hit"] and second["target_cache_hit"]
                                                  and first["seconds"]["target_encoder"] > 0
                                                  and second["seconds"]["target_encoder"] == 0.0
                                                  and _ran_on(first) == {"cpu"})),
    EndpointCall("/noise_sweep", (_image(0), 1, 1, 2, 2, "grain", 24, 10, 3), (_image(0), 4, 5, 3, 3, "grain", 24, 10, 3),
                 {"predict_levels"},
                 cache_hit=lambda first, second: not any(first["target_cache_hit"]) and all(second["target_cache_hit"])),
    EndpointCall("/tube_predict", _tube_args(4, 4), _tube_args(1, 2), {"encode_and_predict"},
                 cache_hit=lambda first, second: (not first["target_cache_hit"] and second["target_cache_hit"]
                                                  and first["seconds"]["targets"] > 0
                                                  and second["seconds"]["targets"] == 0.0
                                                  and _ran_on(first) == _ran_on(second) == {"gpu"})),
    # 6.5: the same request again is answered from the shared result cache; another question on the same clip
    # runs no encoder pass in the fresh child.
    EndpointCall("/classify_action", (handle_file(VIDEO), 0.0, "shared"), (handle_file(VIDEO), 0.0, "shared"),
                 {"encode_and_classify"},
                 cache_hit=lambda first, second: (_passes(first) == (1, 0) and not first["from_result_cache"]
                                                  and second["from_result_cache"])),
    EndpointCall("/answer_question", (handle_file(VIDEO), 0.5, "What happens?"),
                 (handle_file(VIDEO), 0.5, "How sure are you?"), {"answer_on_device"},
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
        zerogpu_app, call):
    client, log_path = zerogpu_app
    before = len(_requests(log_path))
    first = call.numbers(_call(client, call.api_name, call.args))
    second = call.numbers(_call(client, call.api_name, call.moved))
    if call.cache_hit is not None:
        assert call.cache_hit(first, second), (first, second)
    requests = _requests(log_path)[before:]
    # Exactly these GPU functions asked a GPU, each for a whole-second duration sized to its work, the callers on one
    # torch thread (they fork the workers).
    assert {r["function"].rsplit(".", 1)[-1] for r in requests} == call.gpu_functions, requests
    assert all(zerogpu.GPU_WARM_START_S <= r["seconds"] < 60 and r["size"] == "large" for r in requests), requests
    assert all(r["parent_torch_threads"] == 1 and r["outcome"] == "ok" for r in requests), requests


def test_the_first_gpu_call_asks_the_assumed_cold_start_and_later_ones_what_the_space_learned(zerogpu_app):
    client, log_path = zerogpu_app
    for top in (2, 3):
        _call(client, "/tube_predict", _tube_args(top, 5))
    requests = _requests(log_path)
    # Nothing learned yet: the Space's first GPU call asks the assumed cold start on top of its work. This imitation's
    # workers start at once, so the margins learned from the calls that follow (whichever function made them) ask less.
    assert requests[0]["seconds"] >= zerogpu.GPU_COLD_START_S, requests[0]
    tube_asks = [r["seconds"] for r in requests if r["function"].endswith("encode_and_predict")]
    assert tube_asks and max(tube_asks) < requests[0]["seconds"], (requests[0], tube_asks)


def test_a_checkpoint_left_out_at_start_up_is_a_clear_message(zerogpu_app):
    from gradio_client.exceptions import AppError

    client, _ = zerogpu_app
    with pytest.raises(AppError, match=f"{checkpoints.get(NOT_PRELOADED).hub_id} is not loaded"):
        _call(client, "/mae_reconstruct", (_image(2), 0.75, 0, NOT_PRELOADED))


def test_the_deployed_check_shows_where_each_call_ran_and_names_a_checkpoint_left_out(zerogpu_app):
    import app
    from checks import deployed

    client, _ = zerogpu_app
    space = deployed.Space(client.src)
    calls = deployed.check_endpoints(space, app.CONCEPTS)
    assert [c.endpoint for c in calls][::2] == [name for concept in app.CONCEPTS for name in concept.endpoints]
    assert not [c for c in calls if c.error], deployed.calls_table(calls)
    gpu_runs = [run for c in calls for run in c.ran_on if run["device"] == "gpu"]
    assert gpu_runs and all(run["asked"] >= 1 for run in gpu_runs), deployed.calls_table(calls)
    assert "(asked " in deployed.calls_table(calls)
    failed = [row for row in deployed.check_promises(space, only=("6.1",)) if row.passed is False]
    assert failed and "/mae_reconstruct failed" in failed[0].measured, failed
    assert f"{checkpoints.get(NOT_PRELOADED).hub_id} is not loaded" in failed[0].measured, failed
