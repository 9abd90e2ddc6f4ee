"""The app under ZeroGPU's contract: `python app.py` with SPACES_ZERO_GPU=1 and the fake `spaces`.

The app runs in a subprocess (as on a Space: `spaces` imported at start-up, every checkpoint preloaded
before launch) with PDR_DEVICE=cpu, so the ZeroGPU code path runs on this CPU: each GPU function is
forked into a fresh child and its arguments and results are pickled (tests/fake_spaces). Every GPU
endpoint is called twice through gradio_client, under timeouts; a second call with the block or tube
moved must be served from the main process's cache (a fresh child remembers nothing). The fake logs
each GPU request (duration, and the caller's torch threads) to FAKE_SPACES_LOG.
"""

import json
import os
import subprocess
from dataclasses import dataclass, field

import pytest
from conftest import EXAMPLE_IMAGES, ROOT, start_app
from gradio_client import handle_file
from test_fake_spaces import FAKE_SPACES

import checkpoints

CALL_TIMEOUT_S = 240  # a hang fails the test instead of stalling it (the fake kills a child after 300 s)
NOT_PRELOADED = "vit-mae-large"  # left out of PDR_PRELOAD: loading it inside a GPU function must be refused
VIDEO = str(ROOT / "examples" / "videos" / "ball_behind_wall.mp4")


@pytest.fixture(scope="module")
def zerogpu_app(tiny_hub, tmp_path_factory):
    log_path = tmp_path_factory.mktemp("zerogpu") / "gpu-requests.jsonl"
    preload = [n for n in checkpoints.preload_names() if n != NOT_PRELOADED]
    env = {**os.environ, "SPACES_ZERO_GPU": "1", "PDR_DEVICE": "cpu", "HF_HUB_CACHE": str(tiny_hub),
           "HF_HUB_OFFLINE": "1", "FAKE_SPACES_LOG": str(log_path), "PDR_PRELOAD": ",".join(preload),
           "PYTHONPATH": os.pathsep.join([str(FAKE_SPACES), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    server, client, _ = start_app([], env, timeout_s=240)
    yield client, log_path
    server.terminate()
    try:
        output, _ = server.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        output, _ = server.communicate()
    # Start-up preloaded every checkpoint asked for and said how long it took and how much memory it holds.
    assert "Start-up:" in output and "checkpoints resident" in output, output[-4000:]


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


# --- Every GPU endpoint. -----------------------------------------------------------------------------
ENDPOINT_CALLS = [
    EndpointCall("/mae_reconstruct", (_image(0), 0.75, 0, "vit-mae-base"), (_image(0), 0.5, 1, "vit-mae-huge"),
                 {"reconstruct"}),
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
    # 6.5: the same clip again (a second click, a second question) runs no encoder pass in the fresh child.
    EndpointCall("/classify_action", (handle_file(VIDEO), 0.0, "shared"), (handle_file(VIDEO), 0.0, "shared"),
                 {"encode_and_classify"},
                 cache_hit=lambda first, second: _passes(first) == (1, 0) and _passes(second) == (0, 1)),
    EndpointCall("/answer_question", (handle_file(VIDEO), 0.5, "What happens?"),
                 (handle_file(VIDEO), 0.5, "How sure are you?"), {"answer_on_device"},
                 cache_hit=lambda first, second: _passes(first) == (1, 0) and _passes(second) == (0, 1)),
    # Start early: a clip prepared once is cached in the main process; preparing it again runs nothing.
    EndpointCall("/tube_prepare", (handle_file(VIDEO), 0.5, 8, 2, 0), (handle_file(VIDEO), 0.5, 8, 2, 0),
                 {"encode_targets"},
                 cache_hit=lambda first, second: first["targets_computed"] and second["target_cache_hit"],
                 numbers=lambda outputs: outputs),
    EndpointCall("/prepare_clip", (handle_file(VIDEO), 0.25, "shared"), (handle_file(VIDEO), 0.25, "shared"),
                 {"encode_and_classify"},
                 cache_hit=lambda first, second: _passes(first) == (1, 0) and _passes(second) == (0, 1),
                 numbers=lambda outputs: outputs),
]


@pytest.mark.parametrize("call", ENDPOINT_CALLS, ids=lambda call: call.api_name)
def test_every_gpu_endpoint_answers_twice_and_moves_are_served_from_the_main_process_cache(zerogpu_app, call):
    client, log_path = zerogpu_app
    before = len(_requests(log_path))
    first = call.numbers(_call(client, call.api_name, call.args))
    second = call.numbers(_call(client, call.api_name, call.moved))
    if call.cache_hit is not None:
        assert call.cache_hit(first, second), (first, second)
    requests = _requests(log_path)[before:]
    # Each call asked a GPU for an explicit, whole-second duration sized to its work, with the parent on one thread.
    asked = {r["function"].rsplit(".", 1)[-1] for r in requests}
    assert call.gpu_functions <= asked, requests
    assert all(checkpoints.GPU_START_S <= r["seconds"] < 60 and r["size"] == "large" for r in requests), requests
    assert all(r["parent_torch_threads"] == 1 for r in requests), requests


def test_a_user_error_inside_a_gpu_function_reaches_the_client_with_its_message(zerogpu_app):
    from gradio_client.exceptions import AppError

    client, log_path = zerogpu_app
    before = len(_requests(log_path))
    with pytest.raises(AppError, match=f"{checkpoints.get(NOT_PRELOADED).hub_id} is not loaded on this Space"):
        _call(client, "/mae_reconstruct", (_image(2), 0.75, 0, NOT_PRELOADED))
    # It was raised inside the GPU function (which asked for its GPU first), not before the call.
    assert [r["function"].rsplit(".", 1)[-1] for r in _requests(log_path)[before:]] == ["reconstruct"]


def test_after_a_prepare_in_one_gpu_call_the_click_in_another_runs_no_encoder_pass(zerogpu_app):
    """The caches live in the main process: a fresh child at the click finds what the prepare's child computed."""
    client, _ = zerogpu_app
    sampling = (handle_file(VIDEO), 1.0, 6, 2, 0)
    assert _call(client, "/tube_prepare", sampling)["targets_computed"]
    assert _call(client, "/tube_prepare", (handle_file(VIDEO), 1.5, 6, 2, 0))["targets_computed"]  # another clip
    numbers = _call(client, "/tube_predict", sampling + (1, 1, 3, 3, 0, 2))[-1]
    assert numbers["target_cache_hit"] and numbers["seconds"]["targets"] == 0.0
    assert _passes(_call(client, "/prepare_clip", (handle_file(VIDEO), 0.125, "shared"))) == (1, 0)
    assert _passes(_call(client, "/classify_action", (handle_file(VIDEO), 0.125, "shared"))[-1]) == (0, 1)
