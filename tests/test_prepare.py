"""Start early: `/tube_prepare` and `/prepare_clip` fill the caches a click reads, and per-device defaults.

The app runs in-process (gradio_client, tiny checkpoints). Each test samples the clip in a way no other test
does (start, frames, step), so what it finds in the caches is what it put there.
"""

import threading
import types

import pytest
from conftest import ROOT
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from heads_video import write_counting_video

import app
import checkpoints
from demos import devices
from demos.compute import tube_clips, tubes
from demos.compute.heads import classification, features
from demos.tabs import events
from demos.tabs import tubes as tubes_tab

VIDEO = str(ROOT / "examples" / "videos" / "ball_behind_wall.mp4")


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    # Not the 6.5 tests' clip (20 fps): no frames they encoded.
    return write_counting_video(tmp_path_factory.mktemp("prepare") / "clip.mp4", num_frames=120, fps=25)


def _tube_call(start_s, frames, step):
    return (handle_file(VIDEO), start_s, frames, step, 0)


def test_a_prepared_clip_is_a_target_cache_hit_at_the_click_and_another_prepare_does_not_break_it(client):
    first = client.predict(*_tube_call(0.25, 6, 3), api_name="/tube_prepare")
    assert first["targets_computed"] and not first["target_cache_hit"] and first["num_frames"] == 6
    other = client.predict(*_tube_call(0.75, 6, 3), api_name="/tube_prepare")
    assert other["targets_computed"] and other["clip_digest"] != first["clip_digest"]
    *_, numbers = client.predict(*_tube_call(0.25, 6, 3), 2, 3, 4, 4, 0, 2, api_name="/tube_predict")
    assert numbers["target_cache_hit"] and numbers["seconds"]["targets"] == 0.0
    *_, numbers = client.predict(*_tube_call(0.75, 6, 3), 1, 1, 3, 3, 1, 1, api_name="/tube_predict")
    assert numbers["target_cache_hit"] and numbers["seconds"]["targets"] == 0.0
    # Preparing a cached clip again runs no pass.
    again = client.predict(*_tube_call(0.25, 6, 3), api_name="/tube_prepare")
    assert again["target_cache_hit"] and not again["targets_computed"] and again["seconds"] == 0.0


def test_tube_prepare_refuses_a_bad_clip_by_name_and_passes_over_an_empty_one(client, tmp_path):
    fake = tmp_path / "holiday.mp4"
    fake.write_text("definitely not a video")
    with pytest.raises(AppError, match="^video: This file is not a video"):
        client.predict(handle_file(str(fake)), 0.0, 8, 4, 0, api_name="/tube_prepare")
    assert client.predict(None, 0.0, 8, 4, 0, api_name="/tube_prepare") == {}


def test_a_prepare_whose_clip_is_no_longer_wanted_keeps_nothing(tiny_hub):
    clip = tube_clips.load_clip(VIDEO, start_s=1.5, num_frames=4, frame_step=2, size=jepa_crop())
    asked = []

    def wanted_until_the_pass_ran():
        asked.append(True)
        return len(asked) == 1  # wanted before the pass, stale after it

    numbers = tubes.prepare_targets(clip, still_wanted=wanted_until_the_pass_ran)
    assert numbers["stale"] and not numbers["targets_computed"] and numbers["seconds"] > 0
    assert tubes.prepare_targets(clip, still_wanted=lambda: False)["stale"]  # still not cached
    assert tubes.prepare_targets(clip)["targets_computed"]


def jepa_crop() -> int:
    from demos import jepa

    return jepa.load().model.config.crop_size


def test_a_prepared_clip_runs_no_encoder_pass_at_the_click_or_the_question(client, video):
    prepared = client.predict(handle_file(video), 0.75, "shared", api_name="/prepare_clip")
    assert (prepared["encoder_passes_run"], prepared["encoder_passes_reused"]) == (1, 0) and not prepared["stale"]
    other = client.predict(handle_file(video), 2.0, "shared", api_name="/prepare_clip")
    assert other["encoder_passes_run"] == 1
    *_, numbers = client.predict(handle_file(video), 0.75, "shared", api_name="/classify_action")
    assert (numbers["encoder_passes_run"], numbers["encoder_passes_reused"]) == (0, 1)
    # VQA's grounded mode reads the device's default sampling: "auto" is "shared" on this CPU.
    numbers = client.predict(handle_file(video), 2.0, "What happens?", api_name="/answer_question")[-1]
    assert (numbers["encoder_passes_run"], numbers["encoder_passes_reused"]) == (0, 1)
    again = client.predict(handle_file(video), 0.75, "shared", api_name="/prepare_clip")
    assert (again["encoder_passes_run"], again["encoder_passes_reused"]) == (0, 1)


def test_a_question_reads_the_clip_as_the_page_sampled_and_prepared_it(client, video):
    """The question takes the page's sampling: with "per_probe" chosen and the clip prepared (on this CPU its
    passes and its heads), the question runs no encoder pass and no head, nor does a click or a second question."""
    prepared = client.predict(handle_file(video), 2.5, "per_probe", api_name="/prepare_clip")
    assert (prepared["encoder_passes_run"], prepared["encoder_passes_reused"], prepared["heads_run"]) == (2, 0, 2)
    asked = client.predict(handle_file(video), 2.5, "What happens?", "per_probe", api_name="/answer_question")[-1]
    assert asked["sampling"] == "per_probe"
    assert (asked["encoder_passes_run"], asked["encoder_passes_reused"]) == (0, 2)
    assert (asked["heads_run"], asked["heads_reused"], asked["probe_seconds"]) == (0, 2, 0.0)
    *_, classified = client.predict(handle_file(video), 2.5, "per_probe", api_name="/classify_action")
    assert (classified["encoder_passes_run"], classified["heads_run"], classified["heads_reused"]) == (0, 0, 2)
    again = client.predict(handle_file(video), 2.5, "How sure are you?", "per_probe", api_name="/answer_question")[-1]
    assert (again["encoder_passes_run"], again["heads_run"], again["heads_reused"]) == (0, 0, 2)
    assert again["first_token_s"] <= again["total_s"]
    # Preparing it again runs nothing.
    assert client.predict(handle_file(video), 2.5, "per_probe", api_name="/prepare_clip")["heads_run"] == 0


def test_a_clip_no_longer_wanted_stops_before_its_heads(tiny_hub, video):
    features.TOKEN_CACHE.clear()  # an earlier test may have encoded this clip already
    classification.HEAD_CACHE.clear()
    asked = []

    def wanted_for_the_pass_only():
        asked.append(True)
        return len(asked) <= 2  # before and after the one shared pass

    numbers = classification.prefetch(video, 1.0, sampling="shared", still_wanted=wanted_for_the_pass_only)
    assert numbers["stale"] and (numbers["encoder_passes_run"], numbers["heads_run"]) == (1, 0)
    result = classification.classify(video, 1.0, sampling="shared")
    assert (result.encoder_runs, result.head_runs) == (0, 2)


def test_on_a_cpu_the_paper_protocol_is_not_prepared(client, video):
    numbers = client.predict(handle_file(video), 1.5, "paper", api_name="/prepare_clip")
    assert numbers["encoder_passes_run"] == 0 and "CPU" in numbers["skipped"]


def test_a_stale_clip_stops_between_passes_and_keeps_nothing(tiny_hub, video):
    asked = []

    def wanted_once():
        asked.append(True)
        return len(asked) == 1

    numbers = classification.prefetch(video, 0.25, sampling="per_probe", still_wanted=wanted_once)
    assert numbers["stale"] and numbers["encoder_passes"] == 2 and numbers["encoder_passes_run"] == 0
    assert classification.prefetch(video, 0.25, sampling="per_probe")["encoder_passes_run"] == 2  # nothing was kept


def test_the_prepare_events_are_bounded_one_per_session_and_cancel_the_stale_one(tiny_hub):
    demo = app.build_app()
    config = {d["id"]: d for d in demo.get_config_file()["dependencies"]}
    for api_name in ("tube_prepare", "prepare_clip"):
        fn_index, fn = next((i, fn) for i, fn in demo.fns.items() if fn.api_name == api_name)
        assert fn.concurrency_id == events.MODEL_CONCURRENCY_ID and fn.trigger_mode == "always_last"
        assert config[fn_index]["show_progress"] == "hidden"
        # The same triggers cancel the running prepare (the newest one waits for it: always_last).
        cancelling = [d for d in config.values() if fn_index in d["cancels"]]
        assert [d["targets"] for d in cancelling] == [config[fn_index]["targets"]]
        assert any(event == "change" for _, event in config[fn_index]["targets"])


def test_latest_per_session():
    latest = events.LatestPerSession()
    first = latest.begin(types.SimpleNamespace(session_hash="a"))
    other_session = latest.begin(types.SimpleNamespace(session_hash="b"))
    assert first() and other_session()
    second = latest.begin(types.SimpleNamespace(session_hash="a"))
    assert not first() and second() and other_session()


@pytest.mark.parametrize("on_gpu, frames", [(False, 8), (True, 16)])
@pytest.mark.slow  # builds the whole app
def test_frames_per_clip_follow_the_device_without_loading_a_model(monkeypatch, on_gpu, frames):
    monkeypatch.setattr(devices, "models_on_gpu", lambda: on_gpu)
    assert tube_clips.default_frames() == frames
    loads, load, building = [], checkpoints._load_uncached, threading.get_ident()

    def load_seen(ckpt, *args, **kwargs):  # building the page must load no model (other tests' app threads may)
        if threading.get_ident() == building:
            loads.append(ckpt.name)
        return load(ckpt, *args, **kwargs)

    monkeypatch.setattr(checkpoints, "_load_uncached", load_seen)
    checkpoints.reset()  # nothing loaded yet
    demo = app.build_app()
    assert loads == []
    parameters = demo.get_api_info()["named_endpoints"]["/tube_predict"]["parameters"]
    assert next(p for p in parameters if p["label"] == "Frames")["parameter_default"] == frames
    info = tubes_tab.frames_info(frames)
    assert info.startswith(f"{frames} frames") and ("CPU" if not on_gpu else "GPU") in info
    assert str(tube_clips.GPU_FRAMES if not on_gpu else tube_clips.CPU_FRAMES) in info  # what the other setting costs
    sampling = next(c for c in demo.get_config_file()["components"] if c["props"].get("label") == "Frame sampling")
    assert sampling["props"]["info"].startswith(f"Automatic on this {'GPU' if on_gpu else 'CPU'}")
