"""6.5 One frozen encoder, many tasks: attentive probes (a referee) and an LLM-backed VQA head (a commentator).

The probe computation lives in `demos.probes`; the VQA model side (projector, prompts, streaming) in
`demos.projector` and `demos.vqa`. This module decides which VQA mode can honestly answer
(`vqa_mode`), streams an answer (`answer_stream`), and builds the tab (`build_tab`) with the named
endpoints `/classify_action` and `/answer_question`. No gradio outside `build_tab`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import checkpoints
from demos import probes
from demos.errors import UserError

log = logging.getLogger(__name__)

LLM = "qwen2.5-0.5b-instruct"
PROJECTOR = "vqa-projector"
MODE_GROUNDED = "probe-grounded"
MODE_PROJECTED = "projected"
MAX_NEW_TOKENS = 128  # bounded generation: tokens ...
MAX_ANSWER_SECONDS = 30.0  # ... and wall time (demos.vqa enforces both)
PROJECTED_CLIP = (16, 4)  # frames and step of the clip whose encoder tokens the projector reads
EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples" / "videos"

EXAMPLE_QUESTIONS = [
    "What changed on the table while the camera looked away?",
    "What is the person doing with their hands?",
    "Is this a dive? If so, what kind?",
    "How sure are you, and why?",
]

MODE_TEXT = {
    MODE_GROUNDED: (
        "🟡 **Probe-grounded mode.** The language model never saw the video. It was given only the probes' "
        "top-5 labels and probabilities as text (shown below, word for word). It can restate, compare and "
        "explain those labels. It **cannot** know colours, counts, objects, positions, what happened before "
        "or after the sampled frames, or anything else the 174 + 48 labels do not name; when the question "
        "asks for that, the honest answer is \"I can't tell\"."
    ),
    MODE_PROJECTED: (
        "🟢 **Projected mode.** Visual tokens pooled from the frozen V-JEPA 2 encoder's output were mapped "
        "by a trained MLP projector into the LLM's embedding space and placed ahead of the question "
        "(LLaVA-style). The model reads the clip's representation itself, but it only knows what the "
        "projector learned to carry from its training videos; nobody checked it against labels here."
    ),
}


@dataclass
class VQAMode:
    mode: str  # MODE_GROUNDED or MODE_PROJECTED
    reason: str  # why this mode (e.g. "no projector is configured")
    projector: object | None = None
    projector_id: str = ""

    def markdown(self) -> str:
        where = f" (`{self.projector_id}`)" if self.projector_id and self.mode == MODE_PROJECTED else ""
        return f"{MODE_TEXT[self.mode]}{where}\n\n*Why this mode:* {self.reason}"


def vqa_mode() -> VQAMode:
    """Projected mode only when a projector is configured and loads; probe-grounded otherwise (and why)."""
    ckpt = checkpoints.get(PROJECTOR)
    if not ckpt.hub_id:
        return VQAMode(MODE_GROUNDED, f"no trained projector is configured (set {checkpoints.ENV_PROJECTOR_REPO} "
                                      "to the hub id of one trained with train_projector.py); none is published.")
    try:
        projector = checkpoints.load(PROJECTOR).model
    except UserError as error:
        log.warning("Projector %s could not be loaded; answering in probe-grounded mode: %s", ckpt.hub_id, error)
        return VQAMode(MODE_GROUNDED, f"the configured projector `{ckpt.hub_id}` could not be loaded ({error}).")
    return VQAMode(MODE_PROJECTED, f"the projector `{ckpt.hub_id}` is configured and loaded.", projector, ckpt.hub_id)


@dataclass
class AnswerUpdate:
    answer: str
    mode: VQAMode
    prompt_shown: str  # exactly what the LLM was told (text), or a description of its inputs in projected mode
    numbers: dict = field(default_factory=dict)


def _projected_inputs(vqa, mode: VQAMode, video_path, start_s: float, question: str, llm, tokenizer):
    """Encoder tokens of the projector's clip -> visual tokens -> `inputs_embeds`, and the prompt as text."""
    import torch

    from demos import jepa, media

    base = jepa.load()
    sample = media.sample_frames(video_path, start_s=start_s, num_frames=PROJECTED_CLIP[0],
                                 frame_step=PROJECTED_CLIP[1])
    pixel_values = base.processor(videos=[sample.frames], return_tensors="pt")["pixel_values_videos"]
    encoded = probes.encode(base.model.encoder, pixel_values)  # shared cache: no pass if already encoded
    config = base.model.config
    grid = (max(pixel_values.shape[1] // config.tubelet_size, 1), config.crop_size // config.patch_size,
            config.crop_size // config.patch_size)
    projector = mode.projector
    with torch.inference_mode():
        visual = projector(encoded.tokens.to(next(projector.parameters()).device), grid)
    question = vqa.validate_question(question)
    inputs_embeds, attention_mask = vqa.build_inputs_embeds(llm, tokenizer, visual, question, vqa.VQA_SYSTEM_PROMPT)
    messages = [{"role": "system", "content": vqa.VQA_SYSTEM_PROMPT},
                {"role": "user", "content": f"{vqa.VISUAL_PLACEHOLDER}\n{question}"}]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    shown = rendered.replace(vqa.VISUAL_PLACEHOLDER, f"[{visual.shape[1]} visual tokens: the projector's output for "
                             f"{PROJECTED_CLIP[0]} frames (step {PROJECTED_CLIP[1]}) from {start_s:g} s]")
    return inputs_embeds, attention_mask, shown, encoded, int(visual.shape[1])


@checkpoints.gpu_task
def answer_stream(video_path, start_s: float, question: str) -> Iterator[AnswerUpdate]:
    """Answer a question about the clip, streaming the growing answer.

    Grounded mode classifies the clip with every probe (encoder tokens are cached, so after
    `/classify_action` this costs only the heads) and puts their top labels into the prompt as text.
    Projected mode feeds the projector's visual tokens through `inputs_embeds`. Generation is
    bounded by `MAX_NEW_TOKENS` and `MAX_ANSWER_SECONDS`.
    """
    from demos import vqa

    question = vqa.validate_question(question)
    start_s = probes.validate_start(start_s)
    if video_path is None:
        raise UserError("No video: upload a clip, record one or pick an example, then ask.")
    mode = vqa_mode()
    llm_loaded = checkpoints.load(LLM)
    llm, tokenizer = llm_loaded.model, llm_loaded.processor
    numbers: dict = {"mode": mode.mode, "max_new_tokens": MAX_NEW_TOKENS, "max_time_s": MAX_ANSWER_SECONDS}
    started = time.perf_counter()
    if mode.mode == MODE_PROJECTED:
        inputs_embeds, attention_mask, prompt_shown, encoded, num_visual = _projected_inputs(
            vqa, mode, video_path, start_s, question, llm, tokenizer)
        numbers.update(encoder_seconds=round(encoded.seconds, 4), encoder_cached=encoded.cached,
                       visual_tokens=num_visual)
        stream = vqa.stream_answer(llm, tokenizer, inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                                   max_new_tokens=MAX_NEW_TOKENS, max_time_s=MAX_ANSWER_SECONDS)
    else:
        result = probes.classify(video_path, start_s)
        prompt = vqa.grounded_prompt(question, probes.grounding(result))
        prompt_shown = prompt.text
        numbers.update(encoder_passes_run=result.encoder_runs,
                       probe_seconds=round(sum(p.seconds for p in result.passes if not p.cached)
                                           + sum(h.seconds for h in result.heads), 4))
        stream = vqa.stream_answer(llm, tokenizer, messages=prompt.messages, max_new_tokens=MAX_NEW_TOKENS,
                                   max_time_s=MAX_ANSWER_SECONDS)
    numbers["inputs_seconds"] = round(time.perf_counter() - started, 4)
    yield AnswerUpdate("", mode, prompt_shown, dict(numbers))
    answer, first_token_at = "", None
    for answer in stream:
        if first_token_at is None and answer:
            first_token_at = time.perf_counter() - started
            numbers["first_token_s"] = round(first_token_at, 4)
        yield AnswerUpdate(answer, mode, prompt_shown, dict(numbers))
    numbers["total_s"] = round(time.perf_counter() - started, 4)
    if not answer.strip():
        answer = "(The model ended its turn without any answer text.)"
    yield AnswerUpdate(answer, mode, prompt_shown, dict(numbers))


# ---------------------------------------------------------------------------------------------
# The tab
# ---------------------------------------------------------------------------------------------

INTRO = """
### One frozen encoder, many tasks
The V-JEPA 2 encoder was trained once, without labels, to predict hidden parts of videos in embedding
space. Here it is **frozen**: two tiny *attentive probes* (a cross-attention pooler and one linear layer,
trained on top of it) call the action, and a language model answers questions. The encoder is the
expensive part (24 transformer blocks over every token of the clip). A head adds its pooler (3 attention
blocks over the same tokens, then one learned query that cross-attends to them) and a linear layer:
roughly an eighth of an encoder pass, and no second encoder. The table under the labels shows the times.
"""

EXPLANATION = """
### What you are looking at
- **Something-Something v2** (174 classes) is about *how* hands move objects, "pushing something from
  left to right" vs "pretending to push": it needs motion, not just appearance. **Diving48** (48 classes)
  tells dives apart by take-off, somersaults, twists and body position, again a question of motion.
- Each probe reads the clip it was evaluated on: SSv2 **16 frames, every 4th**; Diving48 **32 frames,
  every 2nd**, from the start time you pick. Different clips mean different encoder passes; choose
  *One 16-frame clip* to see both heads read a single pass (Diving48 then sees fewer frames than it was
  evaluated on).
- At start-up each probe's copy of the encoder is compared, tensor by tensor, with the base V-JEPA 2
  encoder. Identical weights are the proof that the probes never changed the encoder; the Space then
  keeps a single copy in memory, shared with the other V-JEPA tabs.
- The probes see at most a few seconds and know only their label lists. A label with a high
  probability is a guess about *which of these classes*, never a description of everything in the clip.
"""

SAMPLING_CHOICES = [
    ("As each probe was evaluated (SSv2: 16×4, Diving48: 32×2)", probes.SAMPLING_PER_PROBE),
    ("One 16-frame clip (step 4) for both heads: one encoder pass", probes.SAMPLING_SHARED),
]


def example_videos() -> list[str]:
    return sorted(str(p) for p in EXAMPLES_DIR.glob("*.mp4"))


def sharing_markdown() -> str:
    """What the load-time comparison found, for the page (empty until the probes are loaded)."""
    if not all(checkpoints.is_loaded(name) for name in probes.PROBE_NAMES):
        return "*The encoder comparison runs when the probes are first loaded.*"
    heads = probes.load_heads()
    lines = []
    for head in heads:
        verdict = ("✅ identical to the base encoder: **shared**" if head.shares_encoder
                   else "⚠️ **differs** from the base encoder: kept apart")
        lines.append(f"- `{head.hub_id}`: {head.comparison.sentence()}; {verdict}.")
    count = probes.resident_encoders(heads)
    return (f"**Encoders in memory: {count}** for {len(heads)} heads and the other V-JEPA tabs.\n" + "\n".join(lines))


def build_tab() -> None:
    """The 6.5 tab: video, probes, VQA panel; endpoints /classify_action and /answer_question."""
    import gradio as gr

    from demos import ui

    def load_models(progress) -> None:
        ui.ensure_loaded(["vjepa2-vitl", *probes.PROBE_NAMES], progress)

    @ui.gradio_errors
    def classify_action(video, start_s: float, sampling: str = probes.SAMPLING_PER_PROBE,
                        progress=gr.Progress()):
        """Top-5 actions from both attentive probes on one frozen V-JEPA 2 encoder.

        `start_s`: where the clip starts (seconds). `sampling`: "per_probe" (SSv2 16 frames step 4,
        Diving48 32 frames step 2, as evaluated) or "shared" (one 16-frame clip, one encoder pass).
        Returns the SSv2 labels, the Diving48 labels (label -> probability, top 5), a timing table
        (markdown), the encoder-sharing report (markdown) and the numbers (encoder passes with their
        seconds, frames and timestamps; per-head seconds; notes).
        """
        load_models(progress)
        progress(0.5, desc="Reading frames and running the encoder…")
        result = probes.classify(video, start_s, sampling=sampling)
        labels = result.label_dicts()
        return (labels[probes.PROBE_NAMES[0]], labels[probes.PROBE_NAMES[1]], probes.timings_markdown(result),
                sharing_markdown(), result.timings())

    @ui.gradio_errors
    def answer_question(video, start_s: float, question: str, progress=gr.Progress()):
        """Answer a question about the clip (streams). Returns the growing answer, the mode (markdown: which
        mode answered and what it can know) and the prompt shown (exactly what the LLM was told)."""
        from demos import vqa

        vqa.validate_question(question)  # a bad question fails before any model loads
        load_models(progress)
        ui.ensure_loaded([LLM], progress)
        progress(0.8, desc="Preparing what the language model reads…")
        for update in answer_stream(video, start_s, question):
            yield update.answer, update.mode.markdown(), update.prompt_shown

    with gr.Row():
        with gr.Column(scale=1):
            video = ui.VideoInput(label="Video", sources=["upload", "webcam"], include_audio=True, height=280,
                               elem_id="heads-video")
            if example_videos():
                gr.Examples(examples=example_videos(), inputs=video, cache_examples=False)
            start_s = gr.Number(value=0.0, minimum=0, maximum=probes.MAX_START_S, precision=2, label="Start (s)",
                                info="Where the sampled clip begins.", elem_id="heads-start")
            sampling = gr.Radio(SAMPLING_CHOICES, value=probes.SAMPLING_PER_PROBE, label="Frame sampling",
                                info="On a 2-core CPU (no GPU) the shared clip takes about 9 s, the evaluated "
                                     "clips about 30 s: a second encoder pass, over 32 frames.")
            run = gr.Button("Call the action", variant="primary", elem_id="heads-run")
        with gr.Column(scale=2):
            gr.Markdown(INTRO)
            with gr.Row():
                ssv2 = gr.Label(num_top_classes=probes.TOP_K, label="Something-Something v2 (174 actions)",
                                elem_id="heads-ssv2")
                diving = gr.Label(num_top_classes=probes.TOP_K, label="Diving48 (48 dives)", elem_id="heads-diving48")
            timings = gr.Markdown(elem_id="heads-timings")
            sharing = gr.Markdown(sharing_markdown(), elem_id="heads-sharing")
            numbers = gr.JSON(label="Numbers", visible=False)
    gr.Markdown("### Ask the commentator: a language model on the same frozen encoder")
    with gr.Row():
        with gr.Column(scale=1):
            question = gr.Textbox(label="Question", placeholder=EXAMPLE_QUESTIONS[0], lines=2, max_lines=4,
                                  elem_id="heads-question")
            gr.Examples(examples=[[q] for q in EXAMPLE_QUESTIONS], inputs=question, cache_examples=False,
                        label="Example questions")
            ask = gr.Button("Ask", variant="primary", elem_id="heads-ask")
        with gr.Column(scale=2):
            answer = gr.Textbox(label="Answer (streams in)", lines=4, interactive=False, elem_id="heads-answer")
            mode = gr.Markdown(elem_id="heads-mode")
            with gr.Accordion("Exactly what the language model was told", open=False):
                prompt_shown = gr.Textbox(show_label=False, lines=10, max_lines=30, interactive=False,
                                          elem_id="heads-prompt")
            with gr.Accordion("What each mode can and cannot know", open=False):
                gr.Markdown(MODE_TEXT[MODE_GROUNDED] + "\n\n" + MODE_TEXT[MODE_PROJECTED])
    gr.Markdown(EXPLANATION)

    run.click(classify_action, [video, start_s, sampling], [ssv2, diving, timings, sharing, numbers],
              api_name="classify_action", concurrency_id=ui.MODEL_CONCURRENCY_ID)
    ask_args = dict(fn=answer_question, inputs=[video, start_s, question], outputs=[answer, mode, prompt_shown],
                    concurrency_id=ui.MODEL_CONCURRENCY_ID)
    ask.click(api_name="answer_question", **ask_args)
    question.submit(api_name=False, **ask_args)
