"""6.5 compute: attentive probes on one shared frozen encoder (tiny offline checkpoints)."""

import copy

import numpy as np
import pytest
import torch
from heads_video import write_counting_video

import checkpoints
from demos import devices, jepa, placement, startup, videos
from demos.compute.heads import classification, features, probe_work, probes, shared_encoder
from demos.compute.heads.labels import readable_label, top_labels
from demos.dispatcher import DISPATCHER
from demos.errors import UserError
from demos.tabs import heads as heads_tab


@pytest.fixture(scope="module")
def heads(tiny_hub):
    return shared_encoder.load_heads()


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """100 frames at 20 fps whose grey level tells the frame index (level = 20 + 2 * index)."""
    return write_counting_video(tmp_path_factory.mktemp("video") / "counting.mp4", num_frames=100, fps=20)


def _own_full_probe(name):
    """A fresh, unshared copy of the probe exactly as its checkpoint is stored."""
    import transformers

    return transformers.VJEPA2ForVideoClassification.from_pretrained(
        checkpoints.get(name).hub_id, dtype=torch.float32).eval()


# --- shared-encoder detection ------------------------------------------------------------------


def test_tiny_probes_share_the_base_encoder(heads):
    base = jepa.load().model
    assert [h.spec.name for h in heads] == probes.PROBE_NAMES
    for head in heads:
        assert head.shares_encoder, head.comparison
        assert head.comparison.first_difference is None
        assert head.model.vjepa2 is base  # the duplicate encoder and predictor are gone
        assert head.encoder is base.encoder
    assert shared_encoder.resident_encoders(heads) == 1


def test_equal_encoders_are_detected_tensor_by_tensor(tiny_hub):
    base = jepa.load().model
    probe = _own_full_probe("vjepa2-ssv2-probe")
    comparison = shared_encoder.compare_encoders(probe.vjepa2.encoder, base.encoder)
    assert comparison.equal and comparison.num_tensors == len(base.encoder.state_dict())


def test_one_changed_weight_keeps_the_encoders_apart(tiny_hub):
    base = jepa.load().model
    probe = _own_full_probe("vjepa2-diving48-probe")
    with torch.no_grad():
        probe.vjepa2.encoder.layer[1].mlp.fc1.weight[0, 0] += 1e-3
    own_encoder = probe.vjepa2.encoder
    comparison = shared_encoder.attach_shared_encoder(probe, base)
    assert not comparison.equal
    assert "layer.1.mlp.fc1.weight" in comparison.first_difference
    assert probe.vjepa2 is not base and probe.vjepa2.encoder is own_encoder
    assert probe.vjepa2.predictor is None  # classification never runs it
    # The probe still classifies with its own encoder, and the base model is untouched.
    pixels = torch.randn(1, 16, 3, 128, 128)
    assert probe(pixels).logits.shape == (1, 48)
    assert not torch.equal(base.encoder.layer[1].mlp.fc1.weight, own_encoder.layer[1].mlp.fc1.weight)


def test_unequal_heads_are_reported_and_encoded_separately(tiny_hub, video, monkeypatch):
    base = jepa.load().model
    probe = _own_full_probe("vjepa2-diving48-probe")
    with torch.no_grad():
        probe.vjepa2.encoder.embeddings.patch_embeddings.proj.bias[0] += 0.5
    loaded = checkpoints.load("vjepa2-diving48-probe")
    monkeypatch.setattr(loaded, "encoder_comparison", shared_encoder.attach_shared_encoder(probe, base))
    monkeypatch.setattr(loaded, "model", probe)
    result = classification.classify(video, 0.0, sampling=probes.SAMPLING_SHARED)
    shared = {h.name: h.shares_encoder for h in result.heads}
    assert shared == {"vjepa2-ssv2-probe": True, "vjepa2-diving48-probe": False}
    assert len(result.passes) == 2 and result.encoders_in_memory == 2
    assert "Not shared" in heads_tab.timings_markdown(result)
    assert "own encoder" in result.passes[1].encoder


def test_a_different_shape_is_a_difference(tiny_hub):
    base = jepa.load().model
    other = copy.deepcopy(base.encoder)
    other.layer = other.layer[:1]
    comparison = shared_encoder.compare_encoders(other, base.encoder)
    assert not comparison.equal and "names differ" in comparison.first_difference


# --- sharing is exact ---------------------------------------------------------------------------


def test_ssv2_on_shared_tokens_equals_the_probes_own_forward(heads):
    head = next(h for h in heads if h.spec.name == "vjepa2-ssv2-probe")
    own = _own_full_probe(head.spec.name)
    pixels = torch.randn(1, 16, 3, 128, 128, generator=torch.Generator().manual_seed(16))
    with torch.inference_mode():
        expected = own(pixels).logits
    encoded = features.encode(head.backbone, pixels)
    assert not encoded.cached
    torch.testing.assert_close(probe_work.head_logits(head, encoded.tokens), expected, rtol=1e-5, atol=1e-5)
    again = features.encode(head.backbone, pixels.clone())
    assert again.cached and again.tokens is encoded.tokens  # same clip, no second encoder pass


# --- each probe reads the features it was trained on ---------------------------------------------


def test_feature_recipes_name_the_published_blocks():
    ssv2, diving = (probes.spec(name).recipe for name in probes.PROBE_NAMES)
    assert ssv2.blocks(24) == (23,) and diving.blocks(24) == (17, 19, 21, 23)  # vjepa2 configs/eval/vitl
    assert diving.blocks(8) == (1, 3, 5, 7)  # the tiny replica: the same blocks counted from the last
    with pytest.raises(ValueError, match="at least 7"):
        diving.blocks(4)


def _independent_normed_hidden_states(base, pixels):
    """The encoder's blocks applied one by one, each block's output through the encoder's final layernorm."""
    encoder, normed = base.encoder, []
    with torch.inference_mode():
        hidden = encoder.embeddings(pixels)
        for layer in encoder.layer:
            hidden = layer(hidden, None)[0]
            normed.append(encoder.layernorm(hidden))
        torch.testing.assert_close(normed[-1], base(pixels, skip_predictor=True).last_hidden_state, rtol=0, atol=0)
    return normed


def test_a_pass_keeps_each_listed_blocks_output_through_the_final_layernorm(heads):
    base = jepa.load().model
    pixels = torch.randn(1, 16, 3, 128, 128, generator=torch.Generator().manual_seed(3))
    layers, _ = features.encoder_pass(base, pixels, (1, 3, 5, 7))
    normed = _independent_normed_hidden_states(base, pixels)
    assert set(layers) == {1, 3, 5, 7}
    for block, tensor in layers.items():
        torch.testing.assert_close(tensor, normed[block], rtol=0, atol=0)


def test_each_pooler_receives_its_recipe_from_one_shared_pass(heads, video, monkeypatch):
    """SSv2's pooler reads the normed last block; Diving48's the normed blocks 1, 3, 5, 7 (17, 19, 21, 23 of 24)
    concatenated along the tokens; both from one encoder pass."""
    features.TOKEN_CACHE.clear()
    received, encoded_pixels = {}, []
    for head in heads:
        head.model.pooler.register_forward_pre_hook(
            lambda module, args, name=head.spec.name: received.setdefault(name, args[0].detach().clone()))
    real_pass = features.encoder_pass  # the model work inside the GPU function
    monkeypatch.setattr(features, "encoder_pass", lambda backbone, pixels, blocks: (
        encoded_pixels.append(pixels), real_pass(backbone, pixels, blocks))[1])
    try:
        result = classification.classify(video, 0.0, sampling=probes.SAMPLING_SHARED)
    finally:
        for head in heads:
            head.model.pooler._forward_pre_hooks.clear()
    assert result.encoder_runs == 1 and len(encoded_pixels) == 1 and result.passes[0].blocks == [1, 3, 5, 7]
    normed = _independent_normed_hidden_states(jepa.load().model, encoded_pixels[0])
    torch.testing.assert_close(received["vjepa2-ssv2-probe"], normed[7], rtol=1e-5, atol=1e-5)
    expected = torch.cat([normed[1], normed[3], normed[5], normed[7]], dim=1)
    tubelets = probes.shared_clip()[0] // 2  # 4 on a CPU (8 frames), 8 on a GPU
    assert received["vjepa2-diving48-probe"].shape == (1, 4 * tubelets * 64, 64)
    torch.testing.assert_close(received["vjepa2-diving48-probe"], expected, rtol=1e-5, atol=1e-5)
    # transformers' forward feeds Diving48 the last block only: a different input, so different logits.
    with torch.inference_mode():
        own = _own_full_probe("vjepa2-diving48-probe")(encoded_pixels[0]).logits
    assert not torch.allclose(torch.softmax(own, -1).reshape(-1), result.heads[1].probs, atol=1e-4)


def test_a_pass_that_lacks_a_block_runs_again_and_keeps_what_it_had(heads):
    backbone = heads[0].backbone
    pixels = torch.randn(1, 16, 3, 128, 128, generator=torch.Generator().manual_seed(5))
    first = features.encode(backbone, pixels)
    assert set(first.layers) == {7}
    more = features.encode(backbone, pixels, blocks=(1, 3))
    assert not more.cached and set(more.layers) == {1, 3, 7}
    torch.testing.assert_close(more.tokens, first.tokens, rtol=0, atol=0)
    again = features.encode(backbone, pixels, blocks=(3, 7))
    assert again.cached and again.layers is more.layers


# --- sampling per probe -------------------------------------------------------------------------


def _record_sampling(monkeypatch):
    calls = []
    real = videos.sample_frames

    def recording(path, **kwargs):
        calls.append(kwargs)
        return real(path, **kwargs)

    monkeypatch.setattr(videos, "sample_frames", recording)
    return calls


def test_each_probe_gets_the_clip_it_was_evaluated_on(heads, video, monkeypatch):
    calls = _record_sampling(monkeypatch)
    result = classification.classify(video, 0.5, sampling=probes.SAMPLING_PER_PROBE)
    assert calls == [dict(start_s=0.5, num_frames=16, frame_step=4), dict(start_s=0.5, num_frames=32, frame_step=2)]
    by_clip = {(p.num_frames, p.frame_step): p for p in result.passes}
    assert set(by_clip) == {(16, 4), (32, 2)}
    for (frames, step), encoder_pass in by_clip.items():
        assert len(encoder_pass.timestamps_s) == frames
        assert encoder_pass.timestamps_s[0] == pytest.approx(0.5, abs=0.051)
        assert np.diff(encoder_pass.timestamps_s) == pytest.approx(step / 20, abs=1e-3)  # 20 fps
        assert encoder_pass.num_tokens == frames // 2 * 8 * 8
    assert [h.encoder_passes for h in result.heads] == [[0], [1]]
    assert result.timings()["encoder_passes"][1]["num_frames"] == 32


def test_sampled_frames_are_the_right_frames(heads, video, monkeypatch):
    seen = []
    real = videos.sample_frames

    def keep(path, **kwargs):
        sample = real(path, **kwargs)
        seen.append(sample)
        return sample

    monkeypatch.setattr(videos, "sample_frames", keep)
    classification.classify(video, 1.0, sampling=probes.SAMPLING_PER_PROBE)
    for sample, step in zip(seen, (4, 2), strict=False):
        index = np.round((sample.frames.reshape(len(sample.frames), -1).mean(axis=1) - 20) / 2).astype(int)
        assert list(index) == list(range(20, 20 + step * len(index), step))


def test_shared_sampling_runs_the_encoder_once_for_both_heads(heads, video, monkeypatch):
    calls = _record_sampling(monkeypatch)
    result = classification.classify(video, 0.25, sampling=probes.SAMPLING_SHARED)
    frames, step = probes.shared_clip()
    assert calls == [dict(start_s=0.25, num_frames=frames, frame_step=step)]
    assert len(result.passes) == 1 and result.passes[0].heads == ["Something-Something v2", "Diving48"]
    assert result.encoders_in_memory == 1
    assert any("trained and evaluated on other clips" in note and "Diving48 on 4 segments of 32 frames (step 2)" in note
               for note in result.notes)


def test_a_second_call_reuses_the_encoder_tokens(heads, video):
    classification.classify(video, 2.0)
    again = classification.classify(video, 2.0)
    assert again.encoder_runs == 0 and all(p.cached for p in again.passes)
    assert "0 encoder passes ran" in heads_tab.timings_markdown(again)
    assert "reused" in heads_tab.timings_markdown(again)


# --- labels ----------------------------------------------------------------------------------


def test_top5_labels_are_readable_ordered_and_probabilities(heads, video):
    result = classification.classify(video, 0.0)
    for head, model_head in zip(result.heads, heads, strict=True):
        labels = [label for label, _ in head.top]
        probs = [p for _, p in head.top]
        assert len(head.top) == 5 and len(set(labels)) == 5
        assert probs == sorted(probs, reverse=True)
        assert all(0 <= p <= 1 for p in probs) and sum(probs) <= 1 + 1e-6
        expected = head.probs.topk(5)
        assert [t.index for t in head.ranked] == expected.indices.tolist()
        assert probs == pytest.approx(expected.values.tolist(), abs=1e-6)
        for top in head.ranked:  # the replicas carry the real formats; the page shows them readable
            assert top.raw == model_head.id2label[top.index]
            assert top.label == readable_label(top.raw, top.index)
            assert not any(c in top.label for c in "[]'")
    dives = [t.raw for t in result.heads[1].ranked]
    assert all(raw.startswith("['") for raw in dives)  # "['Inward', '35som', 'NoTwis', 'TUCK']"
    numbers = result.timings()["heads"]["vjepa2-diving48-probe"]["top"]
    assert [n["raw"] for n in numbers] == dives and numbers[0]["label"] == result.heads[1].top[0][0]
    assert set(result.label_dicts()) == set(probes.PROBE_NAMES)


def test_duplicate_names_stay_distinct():
    probs = torch.tensor([0.5, 0.3, 0.2])
    top = top_labels(probs, {0: "same", 1: "same", 2: "other"})
    assert [t.label for t in top] == ["Same", "Same [class 1]", "Other"]


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize("start, message", [(-1, "at least 0"), (float("nan"), "finite"), ("soon", "number"),
                                            (1e9, "at most 3600")])
def test_bad_start_times_are_clear(video, start, message):
    with pytest.raises(UserError, match=message):
        probes.validate_request(video, start)


def test_no_video_and_not_a_video(heads, tmp_path):
    with pytest.raises(UserError, match="No video"):
        probes.validate_request(None, 0)
    fake = tmp_path / "clip.mp4"
    fake.write_text("not a video at all")
    with pytest.raises(UserError):
        classification.classify(str(fake), 0)


def test_unknown_sampling_is_clear(video):
    with pytest.raises(UserError, match="sampling"):
        probes.validate_request(video, 0, sampling="every frame")


# --- the paper protocol: segments x views ---------------------------------------------------------


@pytest.fixture(scope="module")
def wide_video(tmp_path_factory):
    """A 3:2 clip whose columns differ (a ramp) and whose level tells the frame: its three views differ."""
    from demos import mp4

    levels = 10 + np.arange(200)  # 10 s at 20 fps
    ramp = np.linspace(0, 30, 96)
    frames = (levels[:, None, None, None] + ramp[None, None, :, None] + np.zeros((1, 64, 1, 3))).astype(np.uint8)
    return mp4.write_mp4(frames, tmp_path_factory.mktemp("wide") / "wide.mp4", 20, crf=0)


def test_views_are_left_centre_and_right_crops_of_the_resized_clip():
    frames = np.zeros((2, 60, 90, 3), dtype=np.uint8)
    frames[:, :, :, 0] = np.arange(90, dtype=np.uint8)[None, None, :]  # red = column
    views = probes.spatial_views(frames, 40)
    assert [v.shape for v in views] == [(2, 40, 40, 3)] * 3
    firsts = [int(v[0, 20, 0, 0]) for v in views]  # short side 60 -> 40: 60 columns, crops at 0, 10, 20
    assert firsts == pytest.approx([0, 15, 30], abs=2)
    square = probes.spatial_views(np.zeros((1, 50, 50, 3), dtype=np.uint8), 40)
    assert all(np.array_equal(square[0], v) for v in square)


@pytest.mark.parametrize("height, width, axis", [(40, 45, 2), (47, 40, 1)])
def test_view_offsets_are_floored_as_vjepa2_eval_does(height, width, axis):
    """EvalVideoTransform: step = (long - short) // (views - 1), view i starts at i * step. With 5 or 7 pixels to
    spare that is 0, 2, 4 and 0, 3, 6, not the rounded 0, 2, 5 and 0, 4, 7 (the right view stops short of the edge)."""
    frames = np.zeros((1, height, width, 3), dtype=np.uint8)
    index = np.arange(max(height, width), dtype=np.uint8)
    frames[..., 0] = index[None, :, None] if axis == 1 else index[None, None, :]  # red = position on the long axis
    views = probes.spatial_views(frames, 40)  # the short side is already 40: no resizing
    spare = max(height, width) - 40
    starts = [int(v[0, 0, 0, 0]) for v in views]
    assert starts == [0, spare // 2, spare // 2 * 2]
    assert [v.shape for v in views] == [(1, 40, 40, 3)] * 3


@pytest.mark.slow  # the paper protocol's 15 clips
def test_paper_protocol_concatenates_segments_and_averages_view_probabilities(heads, wide_video, monkeypatch):
    features.TOKEN_CACHE.clear()
    calls = _record_sampling(monkeypatch)
    inputs = {name: [] for name in probes.PROBE_NAMES}
    for head in heads:
        head.model.pooler.register_forward_pre_hook(
            lambda module, args, name=head.spec.name: inputs[name].append(args[0].detach().clone()))
    try:
        result = classification.classify(wide_video, 0.0, sampling=probes.SAMPLING_PAPER)
    finally:
        for head in heads:
            head.model.pooler._forward_pre_hooks.clear()
    # 10 s of video: SSv2 reads 2 segments (from 0 and 5 s), Diving48 4 (from 0, 2.5, 5 and 7.5 s)
    starts = sorted({(c["num_frames"], c["start_s"]) for c in calls})
    assert starts == [(16, 0.0), (16, 5.0), (32, 0.0), (32, 2.5), (32, 5.0), (32, 7.5)]
    assert len(result.passes) == 2 * 3 + 4 * 3 and result.encoder_runs == 18  # every view differs here
    ssv2, diving = result.heads
    assert (ssv2.views, diving.views) == (3, 3)
    assert [x.shape[1] for x in inputs["vjepa2-ssv2-probe"]] == [2 * 8 * 64] * 3  # 2 segments, last block
    assert [x.shape[1] for x in inputs["vjepa2-diving48-probe"]] == [4 * 4 * 16 * 64] * 3  # 4 segments x 4 blocks
    assert diving.pooler_tokens == 4 * 4 * 16 * 64
    for head, model_head in zip(result.heads, heads, strict=True):
        with torch.inference_mode():
            per_view = [torch.softmax(model_head.model.classifier(model_head.model.pooler(x)), -1)
                        for x in inputs[head.name]]
        torch.testing.assert_close(head.probs, torch.stack(per_view).mean(0).reshape(-1), rtol=1e-5, atol=1e-6)
    assert "segment 2/2, view right" in heads_tab.timings_markdown(result)


def test_auto_sampling_follows_the_device(monkeypatch):
    monkeypatch.setenv(devices.ENV_DEVICE, "cpu")
    assert probes.resolve_sampling(probes.SAMPLING_AUTO)[0] == probes.SAMPLING_SHARED
    monkeypatch.setenv(devices.ENV_DEVICE, "cuda")
    sampling, reason = probes.resolve_sampling(probes.SAMPLING_AUTO)
    assert sampling == probes.SAMPLING_PER_PROBE and "GPU" in reason
    for kept in (probes.SAMPLING_SHARED, probes.SAMPLING_PER_PROBE, probes.SAMPLING_PAPER):
        assert probes.resolve_sampling(kept) == (kept, "chosen")


def test_protocol_costs():
    tokens = probes.shared_clip()[0] // 2 * 256  # 1024 on a CPU (8 frames), 2048 on a GPU (16)
    assert probes.protocol_cost(probes.SAMPLING_SHARED) == {
        "encoder_passes": 1, "encoder_tokens": tokens, "largest_pooler_input": 4 * tokens}
    assert probes.protocol_cost(probes.SAMPLING_PER_PROBE)["encoder_passes"] == 2
    paper = probes.protocol_cost(probes.SAMPLING_PAPER)
    assert paper == {"encoder_passes": 18, "encoder_tokens": 6 * 2048 + 12 * 4096, "largest_pooler_input": 65536}
    assert probes.protocol_cost(probes.SAMPLING_PAPER, views=1)["encoder_passes"] == 6


# --- the ZeroGPU pattern: set-up at start-up, the cache in the main process, one GPU function per click ----


def test_start_up_loading_compares_and_shares_the_probes_encoders(tiny_hub, monkeypatch, request):
    """On ZeroGPU `preload_all` loads every checkpoint before launch: the probes' loader runs the comparison then."""
    base = jepa.load().model
    loaded = [checkpoints.load(name) for name in probes.PROBE_NAMES]
    for entry in loaded:
        monkeypatch.setattr(entry, "encoder_comparison", None)
    monkeypatch.setenv(startup.ENV_PRELOAD, ",".join(probes.PROBE_NAMES))
    request.addfinalizer(lambda: checkpoints.reset(forget_models=False))  # lazy loading again afterwards
    startup.preload_all()
    assert all(entry.encoder_comparison.equal and entry.model.vjepa2 is base for entry in loaded)


@pytest.mark.parametrize("sampling", ["shared", pytest.param("paper", marks=pytest.mark.slow)])  # paper: 15 clips
def test_a_cached_clip_is_not_preprocessed_again(heads, wide_video, sampling, monkeypatch):
    """The cache key is the frames' hash, taken before preprocessing: a click on a cached clip preprocesses
    nothing, and the keys agree with the clip's."""
    features.TOKEN_CACHE.clear()
    preprocessed = []
    real = features.ClipToEncode.pixels
    monkeypatch.setattr(features.ClipToEncode, "pixels", lambda clip: (preprocessed.append(clip.key), real(clip))[1])
    classification.classify(wide_video, 0.0, sampling=sampling)  # as a prepare or an earlier click leaves it
    ran = list(preprocessed)
    assert ran and len(ran) == len(set(ran))  # each distinct clip preprocessed once
    preprocessed.clear()
    request = classification.prepare(wide_video, 0.0, sampling=sampling)
    assert preprocessed == [] and not any(item.runs for item in request.work.passes)
    assert sorted(plan.digest for plan in request.passes) == sorted(ran)


def test_a_cached_clip_sends_its_features_to_the_gpu_function_instead_of_its_pixels(heads, video, monkeypatch):
    import pickle

    features.TOKEN_CACHE.clear()
    sent = []
    real = probe_work.encode_and_classify
    monkeypatch.setattr(probe_work, "encode_and_classify", lambda work: (sent.append(work), real(work))[1])
    first = classification.classify(video, 4.0, sampling=probes.SAMPLING_SHARED)
    classification.HEAD_CACHE.clear()  # the features stay cached, the heads must run again: as after /prepare_clip
    second = classification.classify(video, 4.0, sampling=probes.SAMPLING_SHARED)
    assert [p.runs for p in sent[0].passes] == [True] and [p.runs for p in sent[1].passes] == [False]
    cached = sent[1].passes[0]
    assert cached.pixels is None and set(cached.layers) == {1, 3, 5, 7}
    assert all(t.device.type == "cpu" for t in cached.layers.values())
    assert (first.encoder_runs, second.encoder_runs) == (1, 0) and second.timings()["encoder_passes_reused"] == 1
    for a, b in zip(first.heads, second.heads, strict=True):
        torch.testing.assert_close(a.probs, b.probs)
    pickle.loads(pickle.dumps(sent[0]))  # what crosses ZeroGPU's process boundary pickles
    assert probe_work.heads_seconds(sent[1]) < probe_work.heads_seconds(sent[0])  # a cached clip asks for less
    assert probe_work.heads_cpu_seconds(sent[1]) < probe_work.heads_cpu_seconds(sent[0])


def test_the_gpu_function_looks_its_models_up_before_any_work_and_none_with_nothing_to_run(heads, video, monkeypatch):
    events = []
    real_load, real_pass = shared_encoder.load_heads, features.encoder_pass
    monkeypatch.setattr(shared_encoder, "load_heads", lambda *args: (events.append("models"), real_load(*args))[1])
    monkeypatch.setattr(features, "encoder_pass", lambda *args: (events.append("pass"), real_pass(*args))[1])
    features.TOKEN_CACHE.clear()
    classification.HEAD_CACHE.clear()
    request = classification.prepare(video, 2.0, sampling=probes.SAMPLING_SHARED)
    events.clear()
    result = probe_work.run_heads(request.work)
    assert events == ["models", "pass"] and list(result.probs) == probes.PROBE_NAMES
    # A question on a classified clip: the features cached and no head to run. No model is looked up (on ZeroGPU's
    # CPU a probe may have no copy), and the cached probabilities come back as they were.
    cached = features.PassInput(request.work.passes[0].encoder_of, request.work.passes[0].blocks,
                                request.work.passes[0].num_frames, None, result.layers[0])
    events.clear()
    again = probe_work.run_heads(probe_work.HeadsInput([cached], {}, result.probs))
    assert events == [] and again.probs == result.probs and again.layers == {}
    # A click for one probe looks up that probe only: on ZeroGPU's CPU another may have no copy.
    looked_up = []
    monkeypatch.setattr(shared_encoder, "load_heads", lambda *args: (looked_up.append(args), real_load(*args))[1])
    features.TOKEN_CACHE.clear()
    classification.HEAD_CACHE.clear()
    one = probes.PROBE_NAMES[-1]
    request = classification.prepare(video, 2.0, sampling=probes.SAMPLING_PER_PROBE, names=[one])
    looked_up.clear()
    assert list(probe_work.run_heads(request.work).probs) == [one] and looked_up == [([one],)]


def test_the_model_work_moves_its_inputs_to_the_models_dtype(heads, video):
    """The encoder and the heads receive CPU float32 tensors and run in their own device and dtype (VJEPA2's
    embeddings also cast the pixels themselves; the pooler does not)."""
    head = copy.deepcopy(heads[0]).model.to(torch.bfloat16)
    pixels = features.clip_to_encode(videos.sample_frames(video, num_frames=4, frame_step=1).frames,
                                     heads[0].processor).pixels()
    assert pixels.dtype == torch.float32
    layers, _ = features.encoder_pass(head.vjepa2, pixels, (7,))
    assert layers[7].dtype == torch.bfloat16
    probe = shared_encoder.Head(heads[0].spec, head, heads[0].processor, heads[0].comparison)
    assert probe_work.head_logits(probe, layers[7].float()).dtype == torch.bfloat16


def test_a_classified_clip_runs_no_head_and_no_gpu_function_again(heads, video, monkeypatch):
    """The heads' output is cached with the features it was computed from: a second click (or a question in
    grounded mode) on the same clip reads it, with the same probabilities, and calls no GPU function."""
    features.TOKEN_CACHE.clear()
    first = classification.classify(video, 3.0, sampling=probes.SAMPLING_PER_PROBE)
    assert first.head_runs == 2 and first.timings()["heads_reused"] == 0
    sent, pooled = [], []
    real = probe_work.encode_and_classify
    monkeypatch.setattr(probe_work, "encode_and_classify", lambda work: (sent.append(work), real(work))[1])
    for head in heads:
        head.model.pooler.register_forward_pre_hook(lambda module, args: pooled.append(args[0].shape))
    try:
        again = classification.classify(video, 3.0, sampling=probes.SAMPLING_PER_PROBE)
        assert sent == [] and pooled == [] and (again.encoder_runs, again.head_runs) == (0, 0)
        for a, b in zip(first.heads, again.heads, strict=True):
            assert b.cached and b.ranked == a.ranked and (b.seconds, b.pooler_tokens) == (a.seconds, a.pooler_tokens)
            torch.testing.assert_close(a.probs, b.probs, rtol=0, atol=0)
        assert again.timings()["heads_reused"] == 2 and "reused (" in heads_tab.timings_markdown(again).split("head:")[1]
        # Features gone, results kept: the head's result is not served without them; both run again.
        features.TOKEN_CACHE.clear()
        fresh = classification.classify(video, 3.0, sampling=probes.SAMPLING_PER_PROBE)
        assert (fresh.encoder_runs, fresh.head_runs) == (2, 2) and len(pooled) == 2
        # One head's result cached: only the other head runs, on the cached features.
        features.TOKEN_CACHE.clear()
        classification.classify(video, 3.5, sampling=probes.SAMPLING_PER_PROBE, names=["vjepa2-ssv2-probe"])
        pooled.clear()
        both = classification.classify(video, 3.5, sampling=probes.SAMPLING_PER_PROBE)
        assert [h.cached for h in both.heads] == [True, False] and pooled == [(1, 4 * 16 * 64, 64)]
        assert list(sent[-1].plans) == ["vjepa2-diving48-probe"] and list(sent[-1].cached_probs) == ["vjepa2-ssv2-probe"]
    finally:
        for head in heads:
            head.model.pooler._forward_pre_hooks.clear()


def _real_size_work(sampling: str, runs: bool) -> "probe_work.HeadsInput":
    """The GPU function's input for ViT-L at 256 px (2,048 tokens per 16 frames) on a wide video."""
    passes, plans = [], {}
    for probe in probes.PROBES:
        frames, _ = probes.sampling_for(probe, sampling)
        segments = probe.segments if sampling == probes.SAMPLING_PAPER else 1
        views = probes.NUM_VIEWS if sampling == probes.SAMPLING_PAPER else 1
        if sampling == probes.SAMPLING_SHARED and passes:
            plans[probe.name] = [[0]]
            continue
        plans[probe.name] = []
        for _ in range(views):
            plans[probe.name].append(list(range(len(passes), len(passes) + segments)))
            passes += [features.PassInput(probe.name, (23,), frames, torch.zeros(1) if runs else None)
                       for _ in range(segments)]
    return probe_work.HeadsInput(passes, plans)


@pytest.mark.parametrize("sampling, first, cached", [("shared", 7, 7), ("per_probe", 7, 7), ("paper", 14, 8)])
def test_gpu_durations_are_sized_to_the_passes_still_missing_and_the_heads(sampling, first, cached):
    seconds = [DISPATCHER.requested_seconds("a cold worker", probe_work.heads_seconds(_real_size_work(sampling, runs)))
               for runs in (True, False)]
    assert seconds == [first, cached] and all(s < 60 for s in seconds)


def test_on_a_cpu_only_the_shared_clip_answers_within_a_learners_patience():
    """On the development CPU's estimates the 8-frame shared clip takes seconds, each probe's clip several times as long
    and the paper protocol minutes: on ZeroGPU's CPU fallback only the first runs, the others say when to retry."""
    shared, per_probe, paper = (probe_work.heads_cpu_seconds(_real_size_work(sampling, True))
                                for sampling in ("shared", "per_probe", "paper"))
    assert shared < placement.CPU_PATIENCE_S < per_probe < paper
    assert probe_work.heads_cpu_seconds(_real_size_work("shared", False)) < shared  # a prepared clip: the heads only
