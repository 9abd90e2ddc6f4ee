"""6.5's VQA head: a small language model answers a question about a clip, on the same frozen encoder.

Two ways to let a language model talk about a clip:

- Projected mode (LLaVA-style): the projector (`projector.VideoProjector`) turns the frozen V-JEPA 2 tokens into
  K visual tokens that enter the LLM through `inputs_embeds` (`prompt.build_inputs_embeds`).
- Probe-grounded mode: the LLM never sees the video. The attentive probes' top labels and probabilities are
  written into the prompt as text (`prompt.grounded_prompt`), and the learner is shown exactly that text, so
  that no one mistakes it for the model watching the clip.

`vqa_mode` decides, once per answer, which mode can honestly answer; `answer_stream` answers in that mode,
streaming: frames, preprocessing and the encoder cache in the main process, the model work in one GPU generator
(`answer_on_device`, see `demos.gpu_functions`) that yields the LLM's inputs first. The video path, start,
sampling and question are validated by the caller. No gradio here: learner-facing problems raise `UserError`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

import checkpoints
from demos import devices, jepa, videos, zerogpu
from demos.batches import Batches
from demos.compute.heads import classification, features, probe_results, probe_work, probes, shared_encoder
from demos.compute.heads.decoding import MAX_GENERATION_SECONDS, MAX_NEW_TOKENS, StreamedText, stream_answers
from demos.compute.heads.prompt import (
    VISUAL_PLACEHOLDER,
    VQA_SYSTEM_PROMPT,
    build_inputs_embeds,
    grounded_prompt,
    projected_messages,
)
from demos.errors import UserError
from demos.gpu_functions import gpu_task

log = logging.getLogger(__name__)

LLM = "qwen2.5-0.5b-instruct"
PROJECTOR = "vqa-projector"
MODE_GROUNDED = "probe-grounded"
MODE_PROJECTED = "projected"
PROJECTED_CLIP = (16, 4)  # frames and step of the clip whose encoder tokens the projector reads


@dataclass
class VQAMode:
    mode: str  # MODE_GROUNDED or MODE_PROJECTED
    reason: str  # why this mode (e.g. "no projector is configured")
    projector: object | None = None
    projector_id: str = ""


def vqa_mode() -> VQAMode:
    """Projected mode only when a projector is configured and loads; probe-grounded otherwise (and why). Decided once
    per answer, in the main process (`answer_stream`)."""
    ckpt = checkpoints.get(PROJECTOR)
    if not ckpt.hub_id:
        return VQAMode(MODE_GROUNDED, f"no trained projector is configured (set {checkpoints.ENV_PROJECTOR_REPO} "
                                      "to the hub id of one trained with train_projector.py); none is published.")
    try:
        projector = load_projector()
    except UserError as error:
        log.warning("Projector %s could not be loaded; answering in probe-grounded mode: %s", ckpt.hub_id, error)
        return VQAMode(MODE_GROUNDED, f"the configured projector `{ckpt.hub_id}` could not be loaded ({error}).")
    return VQAMode(MODE_PROJECTED, f"the projector `{ckpt.hub_id}` is configured and loaded.", projector, ckpt.hub_id)


def load_projector() -> torch.nn.Module:
    """The projector's model where the answer runs: loaded on first use, on ZeroGPU the resident copy (a GPU
    function receives names, never models)."""
    return checkpoints.load(PROJECTOR).model


@dataclass
class AnswerUpdate:
    answer: str
    mode: VQAMode
    prompt_shown: str  # exactly what the LLM was told (text), or a description of its inputs in projected mode
    numbers: dict = field(default_factory=dict)


# Above what an H200 in bf16 measured (bench_gpu, docs/benchmarks.md), cuDNN's attention avoided (`_llm_pass`). On
# ZeroGPU generation stops at the token budget's time (`generation_time_s`), so that a slow answer ends early
# instead of being aborted with the GPU task. The prompt covers the projector, tokenizer and prefill.
GPU_SECONDS_PER_TOKEN = 0.05
GPU_SECONDS_PROMPT = 0.25
# Measured on the 2-core development CPU with the LLM in int8 (bench_vqa, bench_app; docs/benchmarks.md).
CPU_SECONDS_PER_TOKEN = 1 / 30
CPU_SECONDS_PROMPT = 1.5
CPU_SECONDS_QUESTION = 0.3  # each further question of a batch: its own tokens, after the start they share
# Questions about one clip asked together decode in one batch (`QUESTIONS_TOGETHER`): each question beyond the first
# adds this share of one question's decoding step (measured on the 2-core CPU in int8, bench_vqa; a GPU's step at
# these sizes is bound by reading the weights, not by the rows).
BATCH_ROW_COST = 0.15
MAX_QUESTIONS_TOGETHER = 8


def generation_time_s(questions: int = 1) -> float:
    """The time limit of one batch of answers: the budget's share of the GPU duration on ZeroGPU (unless the answers
    run on the Space's CPU), else `MAX_GENERATION_SECONDS`."""
    if zerogpu.ON_ZERO_GPU and zerogpu.cpu_reason() is None:
        return min(MAX_GENERATION_SECONDS, MAX_NEW_TOKENS * GPU_SECONDS_PER_TOKEN * _rows_cost(questions))
    return MAX_GENERATION_SECONDS


def _rows_cost(questions: int) -> float:
    """What decoding `questions` answers together costs, in one answer's decoding."""
    return 1 + BATCH_ROW_COST * (questions - 1)


def gpu_seconds(questions: tuple[str, ...], mode: str, *, heads: probe_work.HeadsInput | None = None,
                clip: features.PassInput | None = None, max_time_s: float = MAX_GENERATION_SECONDS, **_) -> float:
    """The GPU work `answer_on_device` is estimated at: the token budget, and the encoder passes and heads still to
    run."""
    encoder_work = probe_work.heads_seconds(heads) if heads is not None else probe_work.pass_seconds(clip)
    return encoder_work + GPU_SECONDS_PROMPT + min(max_time_s, MAX_NEW_TOKENS * GPU_SECONDS_PER_TOKEN
                                                   * _rows_cost(len(questions)))


def cpu_seconds(questions: tuple[str, ...], mode: str, *, heads: probe_work.HeadsInput | None = None,
                clip: features.PassInput | None = None, max_time_s: float = MAX_GENERATION_SECONDS, **_) -> float:
    """The CPU work `answer_on_device` is estimated at, as `gpu_seconds`."""
    encoder_work = probe_work.heads_cpu_seconds(heads) if heads is not None else probe_work.pass_cpu_seconds(clip)
    return encoder_work + CPU_SECONDS_PROMPT + CPU_SECONDS_QUESTION * (len(questions) - 1) + min(
        max_time_s, MAX_NEW_TOKENS * CPU_SECONDS_PER_TOKEN * _rows_cost(len(questions)))


@dataclass
class PreparedInputs:
    """What `answer_on_device` yields first for each question (CPU values): what the LLM was told, and the encoder work
    (the same for every question)."""

    prompt_shown: str  # exactly what the LLM was told (text), or a description of its inputs in projected mode
    heads: probe_work.HeadsPass | None = None  # grounded mode: the probes' new features and probabilities
    layers: dict | None = None  # projected mode: the projector clip's features, when its pass ran here
    encoder_seconds: float = 0.0
    visual_tokens: int = 0


def _projected_inputs(clip: features.PassInput, grid, clip_text: str, question: str, llm, tokenizer):
    """Encoder tokens of the projector's clip (cached, or one pass) -> visual tokens -> `inputs_embeds`. The mode
    was decided in the main process: here the projector is only looked up, once."""
    projector = load_projector()
    backbone = shared_encoder.backbone_of(clip.encoder_of)
    layers, seconds = (features.encoder_pass(backbone, clip.pixels, clip.blocks) if clip.runs else (clip.layers, 0.0))
    tokens = layers[features.depth(backbone) - 1]
    with torch.inference_mode():
        visual = projector(devices.on_model(projector, tokens), grid)
    inputs_embeds, attention_mask = build_inputs_embeds(llm, tokenizer, visual, question, VQA_SYSTEM_PROMPT)
    rendered = tokenizer.apply_chat_template(projected_messages(question), tokenize=False, add_generation_prompt=True)
    shown = rendered.replace(VISUAL_PLACEHOLDER, f"[{visual.shape[1]} visual tokens: the projector's output for "
                             f"{clip_text}]")
    prepared = PreparedInputs(shown, layers=layers if clip.runs else None, encoder_seconds=seconds,
                              visual_tokens=int(visual.shape[1]))
    return prepared, inputs_embeds, attention_mask


@gpu_task(gpu_seconds=gpu_seconds, cpu_seconds=cpu_seconds)
def answer_on_device(questions: tuple[str, ...], mode: str, *, heads: probe_work.HeadsInput | None = None,
                     clip: features.PassInput | None = None, grid=None, clip_text: str = "",
                     max_time_s: float = MAX_GENERATION_SECONDS) -> Iterator[tuple[PreparedInputs | StreamedText, ...]]:
    """The model work of questions about one clip, asked together, an entry per question in every item: first the
    LLM's inputs (`PreparedInputs`: grounded, the probes' missing passes and heads, `probe_work.run_heads`, run once
    for all; projected, one question: the clip's pass if missing and the projector), then the answers after every
    token (`StreamedText`), decoded in one batch, bounded by `MAX_NEW_TOKENS` and `max_time_s`."""
    llm_loaded = checkpoints.load(LLM)
    llm, tokenizer = llm_loaded.model, llm_loaded.processor
    if mode == MODE_PROJECTED:
        (question,) = questions
        prepared, inputs_embeds, attention_mask = _projected_inputs(clip, grid, clip_text, question, llm, tokenizer)
        yield (prepared,)
        yield from stream_answers(llm, tokenizer, inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                                  max_new_tokens=MAX_NEW_TOKENS, max_time_s=max_time_s)
        return
    result = probe_work.run_heads(heads)
    grounding = probe_results.grounding(result.probs)
    prompts = [grounded_prompt(question, grounding) for question in questions]
    yield tuple(PreparedInputs(prompt.text, heads=result) for prompt in prompts)
    yield from stream_answers(llm, tokenizer, conversations=[prompt.messages for prompt in prompts],
                              max_new_tokens=MAX_NEW_TOKENS, max_time_s=max_time_s)


@dataclass(frozen=True)
class _Ran:
    """The last item of a batch's stream, for every question: where its model work ran, for how many questions, and
    whether this question is the one that counts it."""

    runs: tuple[zerogpu.Run, ...]
    questions: int
    counts: bool


# Questions about one clip asked while an answer to it is being generated: answered together, in one GPU call on
# ZeroGPU (one share of the quota) or one turn of the Space's CPU per token for all of them.
QUESTIONS_TOGETHER = Batches(MAX_QUESTIONS_TOGETHER)
# On ZeroGPU every batch is a GPU call, and a class without accounts shares one quota: a call is admitted where what
# is left covers its request (some 8 s x 1.5 for an answer), whether it answers one question or eight. So where a
# class is asking (another question about the clip within the last minute), a question waits this long for others
# before its call starts; a lone one, or one on the Space's CPU, does not wait.
QUESTIONS_LINGER_S = 1.0


def _together(questions: list[str], mode: str, **inputs) -> Iterator[tuple]:
    """`answer_on_device` for the questions of a batch, in a request scope of the batch's own, within the batch's time
    limit, then where it ran."""
    with zerogpu.request_scope(signed_in=zerogpu.signed_in(), cpu_reason=zerogpu.cpu_reason()) as runs:
        stream = answer_on_device(tuple(questions), mode, max_time_s=generation_time_s(len(questions)), **inputs)
        try:
            yield from stream
        finally:
            stream.close()
    yield tuple(_Ran(tuple(runs), len(questions), counts=index == 0) for index in range(len(questions)))


def _on_shared_quota() -> bool:
    """Whether this question's model work is a GPU call charged to the quota visitors without an account share."""
    return zerogpu.ON_ZERO_GPU and zerogpu.cpu_reason() is None and not zerogpu.signed_in()


def _batch_lane(request: classification.HeadsRequest) -> tuple:
    """Which grounded questions are answered one batch after another: about the same clips, sampled alike, from the
    same place (the Space's CPU or a GPU call). A visitor signed in on huggingface.co spends a quota of their own:
    theirs are answered alone."""
    return (tuple(sorted(request.head_keys.items())), zerogpu.cpu_reason() is None,
            object() if zerogpu.signed_in() else None)


def _batch_key(request: classification.HeadsRequest) -> tuple:
    """Which of them are answered together: those that also have the same encoder passes and heads still to run (a
    question asked while the batch before it ran them waits for it, and then runs none)."""
    work = request.work
    return _batch_lane(request), tuple(item.runs for item in work.passes), tuple(sorted(work.plans))


def _answered_with_others(question: str, mode: str, key: tuple, lane: tuple | None = None, **inputs) -> Iterator:
    """This question's entries of its batch (`QUESTIONS_TOGETHER`), each with the number of questions answered
    together; where the batch ran is recorded in this action's scope too, counted once (by its first question)."""
    answers = QUESTIONS_TOGETHER.stream(key, question, lambda questions: _together(questions, mode, **inputs), lane,
                                        linger_s=QUESTIONS_LINGER_S if _on_shared_quota() else 0.0)
    for item, size in answers:
        if isinstance(item, _Ran):
            for run in item.runs:
                zerogpu.record(dataclasses.replace(run, together=item.questions, shared=not item.counts))
        else:
            yield item, size


def _projector_clip(video_path, start_s: float):
    """Main process: the projector's clip preprocessed, and its cached encoder tokens when there are some."""
    base = jepa.load()
    sample = videos.sample_frames(video_path, start_s=start_s, num_frames=PROJECTED_CLIP[0],
                                 frame_step=PROJECTED_CLIP[1])
    to_encode = features.clip_to_encode(sample.frames, base.processor)  # the key the probes' shared clip has too
    hit, wanted = features.lookup(base.model, to_encode.key)
    layout = jepa.TokenLayout.of(base.model.config, len(sample.frames))
    grid = (layout.tubelets, layout.rows, layout.cols)
    clip = features.PassInput(jepa.CHECKPOINT, tuple(sorted(wanted)), len(sample.frames),
                              None if hit else to_encode.pixels(), hit.layers if hit else None)
    return clip, grid, base.model, to_encode.key, hit


def answer_stream(video_path, start_s: float, question: str,
                  sampling: str = probes.SAMPLING_AUTO) -> Iterator[AnswerUpdate]:
    """Answer a question about the clip, streaming the answer after every generated token.

    Grounded mode classifies the clip with every probe, sampled as `/classify_action` samples it (`sampling`),
    and puts their top labels into the prompt as text; projected mode feeds the projector's visual tokens
    through `inputs_embeds`. Frames, preprocessing and the caches stay here, in the main process: a clip
    already prepared or encoded (`/prepare_clip`, `/classify_action` or an earlier question, with the same
    sampling) runs no encoder pass, and a clip already classified runs no head either. The model work is the
    GPU generator `answer_on_device`; grounded questions about the same clip asked while it answers another are
    answered together, in one batch (`QUESTIONS_TOGETHER`; `answered_together` in the numbers). The video path,
    start, sampling and question are validated by the caller (`probes.validate_request`, `validate_question`).
    """
    mode = vqa_mode()
    numbers: dict = {"mode": mode.mode, "max_new_tokens": MAX_NEW_TOKENS}
    started = time.perf_counter()
    if mode.mode == MODE_PROJECTED:
        clip, grid, backbone, digest, hit = _projector_clip(video_path, start_s)
        clip_text = f"{PROJECTED_CLIP[0]} frames (step {PROJECTED_CLIP[1]}) from {start_s:g} s"
        stream = _answered_with_others(question, mode.mode, (object(),), clip=clip, grid=grid, clip_text=clip_text)
    else:
        request = classification.prepare(video_path, start_s, sampling=sampling)
        stream = _answered_with_others(question, mode.mode, _batch_key(request), _batch_lane(request),
                                       heads=request.work)
    try:
        prepared, numbers["answered_together"] = next(stream)
        numbers["max_time_s"] = generation_time_s(numbers["answered_together"])
        if mode.mode == MODE_PROJECTED:
            encoded = features.store(backbone, digest, prepared.layers, prepared.encoder_seconds) if clip.runs else hit
            numbers.update(encoder_seconds=round(encoded.seconds, 4), encoder_cached=encoded.cached,
                           visual_tokens=prepared.visual_tokens)
        else:
            result = classification.finish(request, prepared.heads)
            numbers.update(sampling=result.sampling, encoder_passes_run=result.encoder_runs,
                           encoder_passes_reused=len(result.passes) - result.encoder_runs,
                           heads_run=result.head_runs, heads_reused=len(result.heads) - result.head_runs,
                           probe_seconds=round(sum(p.seconds for p in result.passes if not p.cached)
                                               + sum(h.seconds for h in result.heads if not h.cached), 4))
        prompt_shown = prepared.prompt_shown
        numbers["inputs_seconds"] = round(time.perf_counter() - started, 4)
        yield AnswerUpdate("", mode, prompt_shown, dict(numbers))
        answer = ""
        for (answer, tokens), _ in stream:
            elapsed = round(time.perf_counter() - started, 4)
            if tokens:
                numbers.setdefault("first_token_s", elapsed)  # the first generated token, visible or not
            if answer:
                numbers.setdefault("first_text_s", elapsed)
            numbers["new_tokens"] = tokens
            yield AnswerUpdate(answer, mode, prompt_shown, dict(numbers))
    finally:
        stream.close()  # a closed answer stops the generation (and, on ZeroGPU, frees the GPU)
    numbers["total_s"] = round(time.perf_counter() - started, 4)
    if not answer.strip():
        answer = "(The model ended its turn without any answer text.)"
    yield AnswerUpdate(answer, mode, prompt_shown, dict(numbers))
