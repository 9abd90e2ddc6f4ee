"""The projector: shapes, pooling order, Hub round trip, the inputs_embeds path, and that it really learns."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from accelerate import Accelerator
from transformers import VJEPA2Config, VJEPA2Model, VJEPA2VideoProcessor

from demos.compute.heads.decoding import stream_answer
from demos.compute.heads.projector import VideoProjector, pool_video_tokens
from demos.compute.heads.prompt import build_inputs_embeds, vqa_token_ids
from offline.tiny_llm import build_tiny_llm, build_tiny_tokenizer
from training import clip_features, train_projector


def test_projector_maps_encoder_tokens_to_a_fixed_number_of_llm_tokens():
    projector = VideoProjector(vision_hidden_size=32, llm_hidden_size=64, patches_per_side=4,
                               pooled_frames=2, pooled_height=2, pooled_width=2)
    assert projector.num_visual_tokens == 8
    for tubelets in (4, 8):  # any clip length gives the same K
        out = projector(torch.randn(3, tubelets * 16, 32))
        assert out.shape == (3, 8, 64)
    # A grid given at call time wins over the square one derived from the config.
    assert projector(torch.randn(1, 4 * 2 * 8, 32), grid=(4, 2, 8)).shape == (1, 8, 64)
    with pytest.raises(ValueError):
        projector(torch.randn(1, 50, 32))  # not a whole number of 4x4 frames
    with pytest.raises(ValueError):
        projector(torch.randn(1, 64, 32), grid=(4, 4, 3))


def test_pooling_keeps_time_order_and_space():
    t, h, w = 8, 4, 4
    tubelet = torch.arange(t).repeat_interleave(h * w).float()  # token id t*(h*w) + ...: value t
    column = torch.arange(w).repeat(t * h).float()  # value w
    features = torch.stack([tubelet, column], dim=-1)[None]  # (1, N, 2)
    over_time = pool_video_tokens(features, (t, h, w), (4, 1, 1))
    assert over_time[0, :, 0].tolist() == [0.5, 2.5, 4.5, 6.5]  # earlier tubelets first
    over_width = pool_video_tokens(features, (t, h, w), (1, 1, 2))
    assert over_width[0, :, 1].tolist() == [0.5, 2.5]  # left before right
    both = pool_video_tokens(features, (t, h, w), (2, 1, 2))
    assert both[0].tolist() == [[1.5, 0.5], [1.5, 2.5], [5.5, 0.5], [5.5, 2.5]]  # time-major


def test_save_and_load_with_the_hub_mixin(tmp_path):
    torch.manual_seed(0)
    projector = VideoProjector(vision_hidden_size=32, llm_hidden_size=64, patches_per_side=4, pooled_frames=2,
                               pooled_height=1, pooled_width=3, mlp_hidden_size=48, encoder_id="enc", llm_id="llm")
    with torch.no_grad():
        projector.position_embedding.normal_()  # trained-looking, so the round trip must carry it
    projector.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["pooled_width"] == 3 and config["llm_id"] == "llm" and config["mlp_hidden_size"] == 48
    loaded = VideoProjector.from_pretrained(tmp_path)
    features = torch.randn(2, 4 * 16, 32)
    with torch.no_grad():
        assert torch.equal(projector(features), loaded(features))


def test_visual_tokens_sit_ahead_of_the_question_in_the_user_turn(llm, tokenizer):
    projector = VideoProjector(vision_hidden_size=32, llm_hidden_size=64, patches_per_side=4, pooled_frames=2,
                               pooled_height=2, pooled_width=2)
    with torch.no_grad():
        visual = projector(torch.randn(1, 4 * 16, 32))
    question = "What colour is the square?"
    embeds, mask = build_inputs_embeds(llm, tokenizer, visual, question, system_prompt="You answer.")
    ids = vqa_token_ids(tokenizer, question, system_prompt="You answer.")
    start, k = len(ids.before), visual.shape[1]
    assert embeds.shape == (1, start + k + len(ids.after), 64) and mask.shape == embeds.shape[:2] and mask.all()
    assert torch.equal(embeds[0, start : start + k], visual[0])
    table = llm.get_input_embeddings().weight
    assert torch.equal(embeds[0, :start], table[ids.before]) and torch.equal(embeds[0, start + k :], table[ids.after])
    # The chat template around them is the tokenizer's own: the system turn, then the user turn
    # opening right before the visual tokens and the question right after them.
    before, after = tokenizer.decode(ids.before), tokenizer.decode(ids.after)
    assert before == "<|im_start|>system\nYou answer.<|im_end|>\n<|im_start|>user\n"
    assert after == f"\n{question}<|im_end|>\n<|im_start|>assistant\n"
    with torch.no_grad():
        logits = llm(inputs_embeds=embeds, attention_mask=mask).logits
    assert logits.shape == (1, embeds.shape[1], len(tokenizer)) and torch.isfinite(logits).all()
    answers = list(stream_answer(llm, tokenizer, inputs_embeds=embeds, attention_mask=mask, max_new_tokens=4))
    assert answers and isinstance(answers[-1].text, str) and answers[-1].tokens <= 4


# ----------------------------------------------------------------------------- it must really learn

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 60, 230)}
DIRECTIONS = ("left", "right")
COLOUR_QUESTION = "What colour is the square?"
DIRECTION_QUESTION = "Which way does the square move?"


def square_clip(colour: str, direction: str, rng: np.random.Generator, frames: int = 8, size: int = 32,
                side: int = 10) -> np.ndarray:
    """(frames, size, size, 3) uint8: a square of `colour` sliding `direction` over a noisy grey field,
    at a random height, start and speed, so that only colour and direction are shared by a class."""
    video = np.full((frames, size, size, 3), 60, np.uint8) + rng.integers(0, 20, (frames, size, size, 3), dtype=np.uint8)
    speed = int(rng.integers(2, 4))
    span = speed * (frames - 1)
    x0 = int(rng.integers(0, size - side - span + 1))
    y = int(rng.integers(0, size - side + 1))
    for f in range(frames):
        x = x0 + speed * f if direction == "right" else x0 + span - speed * f
        video[f, y : y + side, x : x + side] = COLOURS[colour]
    return video


def square_examples(clips_per_class: int, seed: int, first_index: int) -> list[dict]:
    """Both questions about each clip; answers depend only on what is in the clip."""
    rng = np.random.default_rng(seed)
    examples = []
    for colour in COLOURS:
        for direction in DIRECTIONS:
            for _ in range(clips_per_class):
                video = square_clip(colour, direction, rng)
                for question, answer in ((COLOUR_QUESTION, colour), (DIRECTION_QUESTION, direction)):
                    examples.append({"index": first_index + len(examples), "video": video,
                                     "question": question, "answer": answer})
    return examples


@pytest.mark.slow  # trains for a minute on 2 cores
def test_projector_learns_to_answer_about_colour_and_motion(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is as fast, and far faster on a busy machine
    try:
        torch.manual_seed(0)
        # A tiny random-weight V-JEPA 2 (8 frames of 32x32: 4 tubelets x 4 x 4 patches) through the
        # real processor and `encode_clip`, cached by the real `cache_features`.
        encoder = VJEPA2Model(VJEPA2Config(
            crop_size=32, patch_size=8, frames_per_clip=8, hidden_size=32, num_hidden_layers=2,
            num_attention_heads=2, pred_hidden_size=32, pred_num_hidden_layers=1, pred_num_attention_heads=2,
        )).eval()
        processor = VJEPA2VideoProcessor(crop_size=32)

        def encode(video):
            return clip_features.encode_clip(encoder, processor, video)

        cache = tmp_path / "features"
        train_items = clip_features.cache_features(square_examples(12, seed=1, first_index=0), cache, encode)
        eval_items = clip_features.cache_features(square_examples(2, seed=2, first_index=10_000), cache, encode)
        assert len(train_items) == 144 and len(eval_items) == 24
        assert len(list(cache.glob("*.pt"))) == 144 + 24
        stamp = (cache / "00000000.pt").stat().st_mtime_ns

        def encoder_must_not_run(video):
            raise AssertionError("cached features were encoded again")

        clip_features.cache_features(square_examples(12, seed=1, first_index=0), cache, encoder_must_not_run)
        assert (cache / "00000000.pt").stat().st_mtime_ns == stamp

        # The LLM is random and frozen; a larger initial weight scale than a trained model's keeps its
        # logits and attention responsive enough for a prompt to steer (at 0.02 nothing can move them).
        tokenizer = build_tiny_tokenizer()
        llm = build_tiny_llm(tokenizer, initializer_range=0.2)
        frozen = {name: p.clone() for name, p in llm.named_parameters()}
        projector = VideoProjector(vision_hidden_size=32, llm_hidden_size=64, patches_per_side=4,
                                   pooled_frames=4, pooled_height=2, pooled_width=2, mlp_hidden_size=256)
        history = train_projector.train(projector, llm, tokenizer, train_items, eval_items, epochs=30,
                                        batch_size=16, learning_rate=2e-2, seed=0,
                                        accelerator=Accelerator(cpu=True), log=lambda message: None)

        assert all(torch.equal(p, frozen[name]) for name, p in llm.named_parameters()), "the LLM must stay frozen"
        start, end = history["eval_loss"][0], history["eval_loss"][-1]
        assert len(history["eval_loss"]) == 31 and len(history["train_loss"]) == 30 * 9
        assert end < 0.3 * start, f"held-out answer loss fell only from {start:.3f} to {end:.3f}"

        answers = {(item["question"], item["answer"]): [] for item in eval_items}
        for item in eval_items:
            cached = torch.load(item["features_path"], weights_only=True)
            said = train_projector.greedy_answer(projector, llm, tokenizer, cached["features"],
                                                 tuple(cached["grid"]), item["question"])
            answers[item["question"], item["answer"]].append(said.lower() == item["answer"])
        per_question = {
            question: np.mean([ok for (q, _), oks in answers.items() if q == question for ok in oks])
            for question in (COLOUR_QUESTION, DIRECTION_QUESTION)
        }
        # Chance is 1/3 for colour and 1/2 for direction; exact answers, end of turn included.
        assert per_question[COLOUR_QUESTION] >= 0.8 and per_question[DIRECTION_QUESTION] >= 0.8, per_question
        print(f"\nheld-out answer loss {start:.3f} -> {end:.3f}; exact answers {({q: float(v) for q, v in per_question.items()})}")
    finally:
        torch.set_num_threads(threads)
