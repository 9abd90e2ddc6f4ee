"""6.5 tab: one frozen encoder, many tasks: attentive probes (a referee) and an LLM-backed VQA head (a commentator).

Endpoints `/classify_action` (`heads.classify`), `/answer_question` (`heads.answer_stream`) and
`/prepare_clip` (the encoder passes the heads will read, started when a clip is picked or resampled).
"""

import gradio as gr

import checkpoints
from demos import devices, examples, streams
from demos.compute import heads
from demos.errors import UserError
from demos.tabs import actions, events, links, ready_examples, widgets
from demos.tabs.concept import Concept

EXAMPLE_QUESTIONS = [
    "What changed on the table while the camera looked away?",
    "What is the person doing with their hands?",
    "Is this a dive? If so, what kind?",
    "How sure are you, and why?",
]

# The streamed answer reaches the page at most this often: a reader still sees it grow, and each of a class's answers
# costs the Space's CPU one update (postprocessed, diffed, sent) per tenth of a second instead of one per token.
ANSWER_EVERY_S = 0.1

CALL_TO_ACTION = "Pick a downstream head and a question"
EXAMPLE_VIDEO = str(examples.VIDEOS_DIR / "cup_covers_ball.mp4")  # the clip the tab opens with, its result in place
EXAMPLE_QUESTION = EXAMPLE_QUESTIONS[0]


def example_call() -> tuple:
    """The arguments of the example's `/classify_action` call."""
    return EXAMPLE_VIDEO, 0.0, heads.SAMPLING_AUTO


def calls(index: int) -> dict[str, tuple]:
    """Each endpoint's call on bundled clip `index` (`Concept.calls`), each with a question of its own."""
    clip = examples.video(index)
    return {"/classify_action": (clip, 0.0, heads.SAMPLING_AUTO),
            "/answer_question": (clip, 0.0, EXAMPLE_QUESTIONS[index % len(EXAMPLE_QUESTIONS)], heads.SAMPLING_AUTO)}

MODE_TEXT = {
    heads.MODE_GROUNDED: (
        "🟡 **Probe-grounded mode.** The language model never saw the video. It was given only the probes' "
        "top-5 labels and probabilities as text (shown below, word for word). It can restate, compare and "
        "explain those labels. It **cannot** know colours, counts, objects, positions, what happened before "
        "or after the sampled frames, or anything else the 174 + 48 labels do not name; when the question "
        "asks for that, the honest answer is \"I can't tell\"."
    ),
    heads.MODE_PROJECTED: (
        "🟢 **Projected mode.** Visual tokens pooled from the frozen V-JEPA 2 encoder's output were mapped "
        "by a trained MLP projector into the LLM's embedding space and placed ahead of the question "
        "(LLaVA-style). The model reads the clip's representation itself, but it only knows what the "
        "projector learned to carry from its training videos; nobody checked it against labels here."
    ),
}

def mode_markdown(mode: heads.VQAMode) -> str:
    """Which mode answered, what it can know, and why this mode."""
    where = f" (`{mode.projector_id}`)" if mode.projector_id and mode.mode == heads.MODE_PROJECTED else ""
    return f"{MODE_TEXT[mode.mode]}{where}\n\n*Why this mode:* {mode.reason}"


INTRO = """
### One frozen encoder, many tasks
The V-JEPA 2 encoder was trained once, without labels, to predict hidden parts of videos in embedding
space. Here it is **frozen**: two tiny *attentive probes* (a cross-attention pooler and one linear layer,
trained on top of it) call the action, and a language model answers questions. The encoder is the
expensive part (24 transformer blocks over every token of the clip). A head adds its pooler (3 attention
blocks over the same tokens, then one learned query that cross-attends to them) and a linear layer:
roughly an eighth of an encoder pass, and no second encoder. The table under the labels shows the times.
"""

EXPLANATION = f"""
### What you are looking at
- **Something-Something v2** (174 classes) is about *how* hands move objects, "pushing something from
  left to right" vs "pretending to push": it needs motion, not just appearance. **Diving48** (48 classes)
  tells dives apart by take-off, somersaults, twists and body position, again a question of motion.
- Each probe reads the features it was trained on: SSv2 the encoder's last block; Diving48 four blocks
  (17, 19, 21 and 23 of 24) concatenated, so it reads 4× the tokens. One encoder pass gives both.
- **Frame sampling.** *One shared clip*: one encoder pass for both heads, {heads.GPU_SHARED_CLIP[0]} frames (every
  {heads.GPU_SHARED_CLIP[1]}th) on a GPU; on a CPU {heads.CPU_SHARED_CLIP[0]} frames (every {heads.CPU_SHARED_CLIP[1]}th),
  the same two seconds of video for half the tokens, so that a click answers within seconds.
  *Each probe's clip*: SSv2 16 frames every 4th, Diving48 32 frames every 2nd (two passes).
  *Paper protocol*: what the published accuracies were measured with: SSv2 2 and Diving48 4 segments
  spread over the video, each in 3 spatial views (left, centre, right); each view's segments are read
  together, as the probes were trained, and the 3 views' probabilities are averaged. *Automatic* picks
  each probe's clip on a GPU, where it answers within a second, and the shared clip on a CPU, where the
  paper protocol takes minutes.
- At start-up each probe's copy of the encoder is compared, tensor by tensor, with the base V-JEPA 2
  encoder. Identical weights are the proof that the probes never changed the encoder; the Space then
  keeps a single copy in memory, shared with the other V-JEPA tabs.
- The probes see at most a few seconds and know only their label lists. A label with a high
  probability is a guess about *which of these classes*, never a description of everything in the clip.
"""

def _cost(sampling: str) -> str:
    cost = heads.protocol_cost(sampling)
    return f"{cost['encoder_passes']} encoder pass{'es' if cost['encoder_passes'] != 1 else ''}, " \
           f"{cost['encoder_tokens']:,} tokens"


SAMPLING_CHOICES = [
    ("Automatic: each probe's clip on a GPU, one shared clip on a CPU", heads.SAMPLING_AUTO),
    (f"One {heads.shared_clip()[0]}-frame clip (step {heads.shared_clip()[1]}) for both heads "
     f"({_cost(heads.SAMPLING_SHARED)})", heads.SAMPLING_SHARED),
    (f"Each probe's clip, one segment (SSv2 16×4, Diving48 32×2; {_cost(heads.SAMPLING_PER_PROBE)})",
     heads.SAMPLING_PER_PROBE),
    (f"Paper protocol: segments × 3 views (up to {_cost(heads.SAMPLING_PAPER)})", heads.SAMPLING_PAPER),
]
# The measured times are in docs/benchmarks.md.
SAMPLING_INFO = ("On a CPU the shared clip answers within seconds, sooner once picking the clip has prepared it; "
                 "each probe's clip takes several times as long and the paper protocol minutes (up to "
                 f"{heads.protocol_cost(heads.SAMPLING_PAPER)['encoder_passes']} ViT-L passes, and Diving48's "
                 f"pooler reads {heads.protocol_cost(heads.SAMPLING_PAPER)['largest_pooler_input']:,} tokens per "
                 "view). On a GPU each probe's clip answers within a second, the paper protocol within seconds.")


def sampling_info() -> str:
    """The radio's info: what Automatic means on this machine, and what each sampling costs."""
    sampling, _ = heads.resolve_sampling(heads.SAMPLING_AUTO)
    device = "GPU" if devices.models_on_gpu() else "CPU"
    return f"Automatic on this {device}: {SAMPLING_NAMES[sampling]}. {SAMPLING_INFO}"


SAMPLING_NAMES = {heads.SAMPLING_SHARED: f"one shared {heads.shared_clip()[0]}-frame clip",
                  heads.SAMPLING_PER_PROBE: "each probe's clip",
                  heads.SAMPLING_PAPER: "the paper protocol (segments × 3 views)"}


def timings_markdown(result: heads.Classification) -> str:
    """A short table: each encoder pass and each head, with their times."""
    lines = ["| step | clip | what ran | time |", "|---|---|---|---|"]
    for i, p in enumerate(result.passes, 1):
        when = (f"reused ({p.seconds:.2f} s when first computed)" if p.cached else f"**{p.seconds:.2f} s**")
        lines.append(f"| encoder pass {i} | {p.clip} ({p.num_tokens} tokens) | {p.encoder}, "
                     f"read by {' and '.join(p.heads)} | {when} |")
    for h in result.heads:
        passes = ", ".join(str(i + 1) for i in h.encoder_passes)
        blocks = "last block" if len(h.blocks) == 1 else f"blocks {', '.join(map(str, h.blocks))} concatenated"
        views = f" × {h.views} views, probabilities averaged" if h.views > 1 else ""
        when = f"reused ({h.seconds * 1000:.1f} ms when first computed)" if h.cached else f"{h.seconds * 1000:.1f} ms"
        lines.append(f"| head: {h.title} | pass{'es' if len(h.encoder_passes) > 1 else ''} {passes} | "
                     f"attentive pooler + linear layer on the normed {blocks} ({h.pooler_tokens:,} tokens{views}) | "
                     f"{when} |")
    runs, head_runs = result.encoder_runs, result.head_runs
    summary = (f"**{runs} encoder pass{'es' if runs != 1 else ''} ran** for {len(result.heads)} heads this time "
               f"({len(result.passes) - runs} reused from the cache), and **{head_runs} head{'s' if head_runs != 1 else ''} "
               f"ran** ({len(result.heads) - head_runs} reused: same features, same result); "
               f"{result.encoders_in_memory} encoder{'s' if result.encoders_in_memory != 1 else ''} in memory. "
               f"Preprocessing {result.preprocess_seconds:.2f} s.")
    shared = all(h.shares_encoder for h in result.heads)
    if not shared:
        apart = ", ".join(h.title for h in result.heads if not h.shares_encoder)
        summary += (f"\n\n⚠️ **Not shared:** the encoder weights inside {apart} differ from the base "
                    "V-JEPA 2 encoder, so those heads run their own encoder (see the server log for the first "
                    "differing tensor).")
    summary = f"Sampling: **{SAMPLING_NAMES[result.sampling]}** ({result.sampling_reason}).\n\n" + summary
    notes = "".join(f"\n- {note}" for note in result.notes)
    return summary + "\n\n" + "\n".join(lines) + (f"\n\n**Notes**{notes}" if notes else "")


def sharing_markdown() -> str:
    """What the load-time comparison found, for the page (empty until the probes are loaded)."""
    if not all(checkpoints.is_loaded(name) for name in heads.PROBE_NAMES):
        return "*The encoder comparison runs when the probes are first loaded.*"
    loaded = heads.load_heads()
    lines = []
    for head in loaded:
        verdict = ("✅ identical to the base encoder: **shared**" if head.shares_encoder
                   else "⚠️ **differs** from the base encoder: kept apart")
        lines.append(f"- `{head.hub_id}`: {head.comparison.sentence()}; {verdict}.")
    count = heads.resident_encoders(loaded)
    return (f"**Encoders in memory: {count}** for {len(loaded)} heads and the other V-JEPA tabs.\n" + "\n".join(lines))


LABELS_MIN_WIDTH = 320  # px: each probe's labels, readable; in an 800-pixel column the two no longer fit side by side

# The ranges the endpoints' descriptions state (API page, MCP tools), from the checks' own constants.
REQUEST_LIMITS = dict(max_start=heads.MAX_START_S, top_k=heads.TOP_K, max_chars=heads.MAX_QUESTION_CHARS,
                      max_tokens=heads.MAX_NEW_TOKENS, updates_per_s=round(1 / ANSWER_EVERY_S))


def load_models(progress) -> None:
    actions.ensure_loaded(["vjepa2-vitl", *heads.PROBE_NAMES], progress)


@actions.action("classify_action", summary=-3)
@actions.api_doc(**REQUEST_LIMITS)
def classify_action(video, start_s: float, sampling: str = heads.SAMPLING_AUTO,
                    progress=gr.Progress()):
    """One frozen encoder, many tasks: two attentive probes on the same frozen V-JEPA 2 encoder name the action.

    Something-Something v2 (174 hand-object actions, e.g. "Putting something on a surface") and Diving48 (48
    dives: take-off, somersaults, twists, position) each read the encoder's features of the clip through a small
    attentive pooler and a linear layer. Each gives its top {top_k} labels with probabilities: a guess among its
    own classes, never a description of everything in the clip. Frame sampling: "shared" reads one clip with one
    encoder pass for both probes, "per_probe" each probe's own evaluation clip, "paper" segments x 3 views as the
    published accuracies were measured (minutes on a CPU).

    Args:
        video: the clip, as an http(s) URL (MP4, WebM, MOV or MKV; up to an hour).
        start_s: where the sampled clip starts, in seconds from the beginning, 0 to {max_start}.
        sampling: "auto" (the default: "per_probe" on a GPU, "shared" on a CPU), "shared", "per_probe" or "paper" (see below).

    Returns:
        Something-Something v2: readable label -> probability, top {top_k}
        Diving48: readable label -> probability, top {top_k}
        a markdown table of the encoder passes and heads that ran, with their times
        a markdown report of the load-time check that both probes share the base encoder's weights
        the numbers: sampling used and why, encoder passes and heads with their seconds, each head's top {top_k} as hub labels
    """
    video, start_s, sampling = heads.validate_request(video, start_s, sampling)
    load_models(progress)
    progress(0.5, desc="Reading frames and running the encoder…")
    result = heads.classify(video, start_s, sampling=sampling)
    labels = result.label_dicts()
    return (labels[heads.PROBE_NAMES[0]], labels[heads.PROBE_NAMES[1]], timings_markdown(result) + actions.device_note(),
            sharing_markdown(), {**result.timings(), **actions.device_numbers()})


@actions.action("answer_question", summary=-3)
@actions.api_doc(**REQUEST_LIMITS)
def answer_question(video, start_s: float, question: str, sampling: str = heads.SAMPLING_AUTO,
                    progress=gr.Progress()):
    """Ask a small language model (Qwen2.5-0.5B-Instruct) a question about a clip, on the same frozen V-JEPA 2 encoder.

    In probe-grounded mode (the default) the language model never sees the video: it reads only the two probes'
    top labels and probabilities as text, so it can name actions they know and nothing else (not colours, counts
    or objects). The answer streams, up to {updates_per_s} updates a second; at most {max_tokens} new tokens.

    Args:
        video: the clip, as an http(s) URL (MP4, WebM, MOV or MKV; up to an hour).
        start_s: where the sampled clip starts, in seconds from the beginning, 0 to {max_start}.
        question: the question, 1 to {max_chars} characters.
        sampling: the probes' frame sampling in grounded mode, as for classify_action: "auto", "shared", "per_probe" or "paper".

    Returns:
        the answer (text)
        the mode that answered and what it can know (markdown)
        exactly what the language model was told
        the numbers: mode, passes and heads run or reused, seconds to the first token, tokens generated, limits
    """
    question = heads.validate_question(question)  # a bad question fails before any model loads
    video, start_s, sampling = heads.validate_request(video, start_s, sampling)
    load_models(progress)
    actions.ensure_loaded([heads.LLM], progress)
    progress(0.8, desc="Preparing what the language model reads…")
    for update in streams.paced(heads.answer_stream(video, start_s, question, sampling), ANSWER_EVERY_S):
        yield (update.answer, mode_markdown(update.mode) + actions.device_note(), update.prompt_shown,
               {**update.numbers, **actions.device_numbers()})


PREPARED_CLIP = events.LatestPerSession()


@actions.action()
def prepare_clip(video, start_s: float, sampling: str = heads.SAMPLING_AUTO, request: gr.Request = None,
                 progress=gr.Progress()):
    """Prepare a clip for /classify_action and /answer_question: run the encoder passes the heads will read
    (cached by content), so that the next call with the same clip, start and sampling runs only the heads;
    on a CPU, where the heads take seconds, run the heads too, so that it runs none.

    The page runs it when a clip is picked, its start or the sampling changes. Cheap when cached; on a CPU
    the paper protocol is not prepared (minutes). Returns numbers: sampling used, encoder_passes (missing
    ones), encoder_passes_run, encoder_passes_reused, heads_run, stale (a newer prepare of this session
    began, so nothing more was kept), skipped (why not), seconds; or error (/classify_action says what is
    wrong).
    """
    still_wanted = PREPARED_CLIP.begin(request)
    if video is None:
        return {}
    try:
        video, start_s, sampling = heads.validate_request(video, start_s, sampling)
        load_models(progress)
        return heads.prefetch(video, start_s, sampling=sampling, still_wanted=still_wanted)
    except UserError as error:  # the click reports it; a prepare stays quiet
        return {"error": str(error)}


def heads_caption(numbers: dict) -> str:
    """One line under the labels: what ran for both heads, and where."""
    passes, reused = numbers["encoder_passes_run"], numbers["encoder_passes_reused"]
    head_count = len(numbers["heads"])
    ran = (f"**{passes} encoder pass{'es' if passes != 1 else ''} ran** for {head_count} heads"
           + (f" ({reused} reused from the cache)" if reused else "")
           + f"; sampling: {SAMPLING_NAMES[numbers['sampling']]}.")
    return ran + actions.notes_caption(numbers)


ANSWER_LINES = {
    heads.MODE_GROUNDED: "🟡 **Probe-grounded:** the language model read only the probes' top labels, never the video; "
                       "it cannot know colours, counts or objects.",
    heads.MODE_PROJECTED: "🟢 **Projected:** the language model read the frozen encoder's features of the clip through a "
                        "trained projector.",
}


def answer_line(numbers: dict) -> str:
    """Under the answer: what the language model could know (the whole story is folded below), and whether other
    learners' questions were answered in the same pass."""
    others = numbers.get("answered_together", 1) - 1
    together = (f" 👥 *Answered in one pass with {others} other question{'s' if others > 1 else ''} about this clip.*"
                if others > 0 else "")
    return ANSWER_LINES.get(numbers.get("mode"), "") + together + actions.notes_caption(numbers)


def build_tab(endpoints: bool = True) -> ready_examples.ReadyExample:
    """The 6.5 tab: the clip, the two heads' buttons and the question first; both probes' labels and the answer
    beside them; the rest folded. Endpoints /classify_action and /answer_question (named when `endpoints`).
    Returns the example it opens with, for the page to show on load.
    """
    widgets.call_to_action(CALL_TO_ACTION)
    notice = gr.Markdown(visible=False)
    with gr.Row():
        video = widgets.VideoInput(label="Video", value=EXAMPLE_VIDEO, sources=["upload", "webcam"], include_audio=True,
                                  height=220, elem_id="heads-video")
        with gr.Column():
            question = gr.Textbox(label="Question for the language model", value=EXAMPLE_QUESTION,
                                  placeholder=EXAMPLE_QUESTIONS[1], lines=2, max_lines=4, elem_id="heads-question")
            with gr.Row():  # the downstream heads on the one frozen encoder: pick one
                run = gr.Button("Probes: call the action", variant="primary", elem_id="heads-run", min_width=140)
                ask = gr.Button("Language model: answer", variant="primary", elem_id="heads-ask", min_width=140)
    answer = gr.Textbox(label="The language model's answer (streams in)", lines=2, interactive=False,
                        elem_id="heads-answer", elem_classes=[widgets.CLAIM])
    answer_caption = gr.Markdown(elem_id="heads-answer-caption")
    with gr.Row():
        # Side by side where there is room for both; one above the other on a phone.
        ssv2 = gr.Label(num_top_classes=heads.TOP_K, label="Something-Something v2 probe (174 actions)",
                        elem_id="heads-ssv2", elem_classes=[widgets.RESULT, widgets.CLAIM], min_width=LABELS_MIN_WIDTH)
        diving = gr.Label(num_top_classes=heads.TOP_K, label="Diving48 probe (48 dives)",
                          elem_id="heads-diving48", elem_classes=[widgets.RESULT, widgets.CLAIM],
                          min_width=LABELS_MIN_WIDTH)
    caption = gr.Markdown(elem_id="heads-caption")
    with gr.Accordion("Another clip, its start, the frame sampling, example questions", open=False):
        gr.Examples(examples=examples.videos(), inputs=video, cache_examples=False)
        with gr.Row():
            start_s = gr.Number(value=0.0, minimum=0, maximum=heads.MAX_START_S, precision=2, label="Start (s)",
                                info="Where the sampled clip begins.", elem_id="heads-start")
            sampling = gr.Radio(SAMPLING_CHOICES, value=heads.SAMPLING_AUTO, label="Frame sampling",
                                info=sampling_info(), elem_id="heads-sampling")
        gr.Examples(examples=[[q] for q in EXAMPLE_QUESTIONS], inputs=question, cache_examples=False,
                    label="Example questions")
    with gr.Accordion("How it ran: encoder passes, heads, the shared encoder", open=False):
        timings = gr.Markdown(elem_id="heads-timings")
        sharing = gr.Markdown(sharing_markdown(), elem_id="heads-sharing")
    with gr.Accordion("What you are looking at, and what the language model was told", open=False):
        gr.Markdown(INTRO + EXPLANATION)
        mode = gr.Markdown(elem_id="heads-mode")
        prompt_shown = gr.Textbox(label="Exactly what the language model was told", lines=6, max_lines=30,
                                  interactive=False, elem_id="heads-prompt")
        with gr.Row():
            numbers = gr.JSON(label="Numbers of the probes (what the API returns)")
            answer_numbers = gr.JSON(label="Numbers of the answer")
    link = links.Link(CONCEPT_PATH, video, examples.videos(),
                      {"start": start_s, "sampling": sampling, "question": question})
    links.link_control(link)

    classify_outputs = [ssv2, diving, timings, sharing, numbers]
    run.click(classify_action, [video, start_s, sampling], classify_outputs,
              api_name=events.endpoint("classify_action", endpoints), concurrency_id=events.MODEL_CONCURRENCY_ID)
    widgets.caption_on(numbers, caption, heads_caption)
    widgets.caption_on(answer_numbers, answer_caption, answer_line)
    # The question reads the clip as the page samples it, so a prepared or classified clip runs no pass again.
    ask_args = dict(fn=answer_question, inputs=[video, start_s, question, sampling],
                    outputs=[answer, mode, prompt_shown, answer_numbers], concurrency_id=events.QUESTIONS_CONCURRENCY_ID,
                    concurrency_limit=2 * heads.MAX_QUESTIONS_TOGETHER)
    ask.click(api_name=events.endpoint("answer_question", endpoints), **ask_args)
    question.submit(api_name=False, **ask_args)
    events.prepare_on([video.change, start_s.submit, sampling.change], prepare_clip, [video, start_s, sampling],
                      gr.JSON(visible=False), api_name=events.endpoint("prepare_clip", endpoints))

    outputs = [*classify_outputs, answer, mode, prompt_shown, answer_numbers]

    def run_linked(values: dict, progress):
        clip = values.get(video, EXAMPLE_VIDEO), values.get(start_s, 0.0)
        chosen = values.get(sampling, heads.SAMPLING_AUTO)
        labels = classify_action(*clip, chosen, progress)
        *_, answered = answer_question(*clip, values.get(question, EXAMPLE_QUESTION), chosen, progress)
        return (*labels, *answered)

    return ready_examples.ReadyExample("heads", outputs, example_result, link=link, run=run_linked, notice=notice)


def example_result(progress):
    labels = classify_action(*example_call(), progress)
    *_, answered = answer_question(EXAMPLE_VIDEO, 0.0, EXAMPLE_QUESTION, heads.SAMPLING_AUTO,
                                   progress)  # the whole streamed answer
    return (*labels, *answered)


CONCEPT_PATH = "one-encoder-many-tasks"
CONCEPT = Concept("heads", "6.5 One encoder, many tasks", CONCEPT_PATH, build_tab, CALL_TO_ACTION,
                  endpoint="/classify_action", example_call=example_call, calls=calls,
                  run_button="heads-run", summary="heads-caption", example_summary="encoder pass", prepare="/prepare_clip")
