"""6.5 compute: attentive probes on one shared frozen encoder (tiny offline checkpoints)."""

import copy

import numpy as np
import pytest
import torch
from heads_video import write_counting_video

import checkpoints
from demos import jepa
from demos.compute import probes
from demos.tabs import heads as heads_tab


@pytest.fixture(scope="module")
def heads(tiny_hub):
    return probes.load_heads()


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
    assert probes.resident_encoders(heads) == 1


def test_equal_encoders_are_detected_tensor_by_tensor(tiny_hub):
    base = jepa.load().model
    probe = _own_full_probe("vjepa2-ssv2-probe")
    comparison = probes.compare_encoders(probe.vjepa2.encoder, base.encoder)
    assert comparison.equal and comparison.num_tensors == len(base.encoder.state_dict())


def test_one_changed_weight_keeps_the_encoders_apart(tiny_hub):
    base = jepa.load().model
    probe = _own_full_probe("vjepa2-diving48-probe")
    with torch.no_grad():
        probe.vjepa2.encoder.layer[1].mlp.fc1.weight[0, 0] += 1e-3
    own_encoder = probe.vjepa2.encoder
    comparison = probes.attach_shared_encoder(probe, base)
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
    monkeypatch.setattr(loaded, "encoder_comparison", probes.attach_shared_encoder(probe, base))
    monkeypatch.setattr(loaded, "model", probe)
    result = probes.classify(video, 0.0, sampling=probes.SAMPLING_SHARED)
    shared = {h.name: h.shares_encoder for h in result.heads}
    assert shared == {"vjepa2-ssv2-probe": True, "vjepa2-diving48-probe": False}
    assert len(result.passes) == 2 and result.encoders_in_memory == 2
    assert "Not shared" in heads_tab.timings_markdown(result)
    assert "own encoder" in result.passes[1].encoder


def test_a_different_shape_is_a_difference(tiny_hub):
    base = jepa.load().model
    other = copy.deepcopy(base.encoder)
    other.layer = other.layer[:1]
    comparison = probes.compare_encoders(other, base.encoder)
    assert not comparison.equal and "names differ" in comparison.first_difference


# --- sharing is exact ---------------------------------------------------------------------------


@pytest.mark.parametrize("name, frames", [("vjepa2-ssv2-probe", 16), ("vjepa2-diving48-probe", 32)])
def test_head_on_shared_tokens_equals_the_probes_own_forward(heads, name, frames):
    head = next(h for h in heads if h.spec.name == name)
    own = _own_full_probe(name)
    pixels = torch.randn(1, frames, 3, 128, 128, generator=torch.Generator().manual_seed(frames))
    with torch.inference_mode():
        expected = own(pixels).logits
    encoded = probes.encode(head.encoder, pixels)
    assert not encoded.cached
    torch.testing.assert_close(probes.head_logits(head, encoded.tokens), expected, rtol=1e-5, atol=1e-5)
    again = probes.encode(head.encoder, pixels.clone())
    assert again.cached and again.tokens is encoded.tokens  # same clip, no second encoder pass


# --- sampling per probe -------------------------------------------------------------------------


def _record_sampling(monkeypatch):
    calls = []
    real = probes.media.sample_frames

    def recording(path, **kwargs):
        calls.append(kwargs)
        return real(path, **kwargs)

    monkeypatch.setattr(probes.media, "sample_frames", recording)
    return calls


def test_each_probe_gets_the_clip_it_was_evaluated_on(heads, video, monkeypatch):
    calls = _record_sampling(monkeypatch)
    result = probes.classify(video, 0.5)
    assert calls == [dict(start_s=0.5, num_frames=16, frame_step=4), dict(start_s=0.5, num_frames=32, frame_step=2)]
    by_clip = {(p.num_frames, p.frame_step): p for p in result.passes}
    assert set(by_clip) == {(16, 4), (32, 2)}
    for (frames, step), encoder_pass in by_clip.items():
        assert len(encoder_pass.timestamps_s) == frames
        assert encoder_pass.timestamps_s[0] == pytest.approx(0.5, abs=0.051)
        assert np.diff(encoder_pass.timestamps_s) == pytest.approx(step / 20, abs=1e-3)  # 20 fps
        assert encoder_pass.num_tokens == frames // 2 * 8 * 8
    assert [h.encoder_pass for h in result.heads] == [0, 1]
    assert result.timings()["encoder_passes"][1]["num_frames"] == 32


def test_sampled_frames_are_the_right_frames(heads, video, monkeypatch):
    seen = []
    real = probes.media.sample_frames

    def keep(path, **kwargs):
        sample = real(path, **kwargs)
        seen.append(sample)
        return sample

    monkeypatch.setattr(probes.media, "sample_frames", keep)
    probes.classify(video, 1.0)
    for sample, step in zip(seen, (4, 2), strict=False):
        index = np.round((sample.frames.reshape(len(sample.frames), -1).mean(axis=1) - 20) / 2).astype(int)
        assert list(index) == list(range(20, 20 + step * len(index), step))


def test_shared_sampling_runs_the_encoder_once_for_both_heads(heads, video, monkeypatch):
    calls = _record_sampling(monkeypatch)
    result = probes.classify(video, 0.25, sampling=probes.SAMPLING_SHARED)
    assert calls == [dict(start_s=0.25, num_frames=16, frame_step=4)]
    assert len(result.passes) == 1 and result.passes[0].heads == ["Something-Something v2", "Diving48"]
    assert result.encoders_in_memory == 1
    assert any("Diving48 was evaluated on 32 frames" in note for note in result.notes)


def test_a_second_call_reuses_the_encoder_tokens(heads, video):
    probes.classify(video, 2.0)
    again = probes.classify(video, 2.0)
    assert again.encoder_runs == 0 and all(p.cached for p in again.passes)
    assert "0 encoder passes ran" in heads_tab.timings_markdown(again)
    assert "reused" in heads_tab.timings_markdown(again)


# --- labels -------------------------------------------------------------------------------------


def test_top5_labels_are_readable_ordered_and_probabilities(heads, video):
    result = probes.classify(video, 0.0)
    for head in result.heads:
        labels = [label for label, _ in head.top]
        probs = [p for _, p in head.top]
        assert len(head.top) == 5 and len(set(labels)) == 5
        assert all(label.startswith("replica class ") for label in labels)
        assert probs == sorted(probs, reverse=True)
        assert all(0 <= p <= 1 for p in probs) and sum(probs) <= 1 + 1e-6
        expected = torch.softmax(head.logits.reshape(-1), 0).topk(5)
        assert labels == [f"replica class {i}" for i in expected.indices.tolist()]
        assert probs == pytest.approx(expected.values.tolist(), abs=1e-6)
    assert set(result.label_dicts()) == set(probes.PROBE_NAMES)


@pytest.mark.parametrize("raw, readable", [
    ("Pushing something from left to right", "Pushing something from left to right"),
    ("LABEL_7", "class 7 (the checkpoint names no label)"),
    ("Back_15som_05Twis_FREE", "back, 1.5 somersaults, 0.5 twists, free position (Back_15som_05Twis_FREE)"),
    ("['Inward', '25som', 'NoTwis', 'PIKE']", "inward, 2.5 somersaults, NoTwis, pike (['Inward', '25som', 'NoTwis', 'PIKE'])"),
    ("Forward 10som 00Twis TUCK", "forward, 1 somersault, 0 twists, tuck (Forward 10som 00Twis TUCK)"),
])
def test_readable_labels(raw, readable):
    assert probes.readable_label(raw, 7) == readable


def test_duplicate_names_stay_distinct():
    logits = torch.tensor([3.0, 2.0, 1.0])
    top = probes.top_labels(logits, {0: "same", 1: "same", 2: "other"})
    assert [name for name, _ in top] == ["same", "same [class 1]", "other"]


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize("start, message", [(-1, "at least 0"), (float("nan"), "finite"), ("soon", "number"),
                                            (1e9, "at most 3600")])
def test_bad_start_times_are_clear(video, start, message):
    with pytest.raises(probes.UserError, match=message):
        probes.validate_request(video, start)


def test_no_video_and_not_a_video(heads, tmp_path):
    with pytest.raises(probes.UserError, match="No video"):
        probes.validate_request(None, 0)
    fake = tmp_path / "clip.mp4"
    fake.write_text("not a video at all")
    with pytest.raises(probes.UserError):
        probes.classify(str(fake), 0)


def test_unknown_sampling_is_clear(video):
    with pytest.raises(probes.UserError, match="sampling"):
        probes.validate_request(video, 0, sampling="every frame")
