"""6.4 tab: a clip, a tube of patches over a span of tubelets, the prediction over time.

Endpoints `/tube_predict`, `/tube_preview` and `/tube_prepare` (a clip's full-clip pass, started when it is
picked or resampled). The tube is dragged on a frame (`BlockPicker`); while it moves the page plays the tube's sweep
back (`SweepPlayer`, `demos.compute.tube_sweep`), and its release runs `/tube_predict`'s function once, which answers
from that sweep when it covers the tube.
"""

import itertools
import time

import gradio as gr
import numpy as np

from demos import examples, jepa, masks, sweeps, videos, viz
from demos.cache import LRUCache
from demos.compute import tube_clips, tube_sweep, tubes
from demos.errors import UserError
from demos.tabs import actions, events, links, ready_examples, widgets
from demos.tabs.block_picker import BlockPicker, picture_url
from demos.tabs.concept import Concept
from demos.tabs.sweep_player import SweepPlayer
from demos.tabs.tubes_text import features_description, still_description, summary_markdown, sweep_note


def display_scale(size: int) -> int:
    """The preview is shown as large as the output video (small models see small pictures)."""
    return viz.display_scale(size, tubes.DISPLAY_MIN_SIDE)


PREVIEW_DESCRIPTION = ("The first frame the tube hides, as the model sees it, with the patch grid and the tube in "
                       "yellow; the text below says which frame. The Top row and Left column controls move the tube.")

CALL_TO_ACTION = "Drag the tube over the clip: the predictor guesses what it hides, frame by frame"
EXAMPLE_VIDEO = str(examples.VIDEOS_DIR / "ball_behind_wall.mp4")  # the clip the tab opens with, its result in place
# Top, left, height, width in patches of the published 16x16 grid: where the ball comes out from behind the wall.
EXAMPLE_TUBE = (9, 10, 4, 4)


def example_tube(side: int = tubes.GRID_SLIDER_MAX) -> tuple[int, int, int, int]:
    """`EXAMPLE_TUBE` on a grid of `side` patches a side: the same place in the picture, the same share of it
    (a tiny replica's 8x8 grid: (4, 5, 2, 2)), so that nothing has to move it."""
    scale = side / tubes.GRID_SLIDER_MAX
    top, left, height, width = EXAMPLE_TUBE
    height, width = max(1, round(height * scale)), max(1, round(width * scale))
    return min(int(top * scale), side - height), min(int(left * scale), side - width), height, width


def example_call(side: int = tubes.GRID_SLIDER_MAX) -> tuple:
    """The arguments of the example's `/tube_predict` (and `/tube_preview`) call: the tube placed for a grid of
    `side` patches (the published one unless told), hidden in every frame this device samples by default."""
    frames = tube_clips.default_frames()
    return (EXAMPLE_VIDEO, 0.0, frames, tube_clips.DEFAULT_FRAME_STEP, 0, *example_tube(side), 0,
            frames // 2 - 1)


CALL_TUBE = (5, 6, 2, 2)  # top, left, height, width: inside the grid of every V-JEPA 2 checkpoint, a tiny replica's too


def calls(index: int) -> dict[str, tuple]:
    """Each endpoint's call on bundled clip `index` (`Concept.calls`): the CPU's frames, `CALL_TUBE` in every one."""
    frames = tube_clips.CPU_FRAMES
    call = (examples.video(index), 0.0, frames, tube_clips.DEFAULT_FRAME_STEP, 0, *CALL_TUBE, 0, frames // 2 - 1)
    return {"/tube_predict": call, "/tube_preview": call}


def opening_call(progress) -> tuple:
    """The example's call on the grid of the model this process serves (loading it the first time): the page opens
    on a tube that fits, so its sliders, its picker and its result show the same tube."""
    crop, patch, _ = model_geometry(progress)
    return example_call(crop // patch)


EXPLANATION = """
### What you are looking at
V-JEPA 2 cuts the clip into **tubelets**: 16×16-pixel patches over 2 frames. The yellow tube is hidden:
the **context encoder sees only the tokens outside it** (the hidden pixels never enter its attention),
and the **predictor** guesses the tube's *features*, token by token, from that context. The target is
what the encoder says about the full clip there (layer-normalised, as in training). Nothing is painted
back: the video and the picture below show actual and predicted features as colours (the same 3
principal directions for both), so similar colours mean similar features. Play the clip: beside each
frame, the panel shows the tube's actual features, the predictor's guess and their cosine at that moment.

### Why tubes?
If each frame were masked at random, the model could peek at the same patch in the next frame and
copy it. Hiding the *same* region through time takes that shortcut away: to predict the tube the model
has to know what is there and how it moves. Hide a region **for a moment only** (a short time span)
and watch the *copy the last visible tubelet* baseline: when nothing changes, copying wins easily;
when something moves or appears behind the tube, only a model of the scene can keep up.

### Surprise
The prediction error over time is a **surprise** signal: V-JEPA work uses it to spot physically
implausible events (an object vanishing behind an occluder, say): error spikes where the world did
not do what the model expected.
"""


def frames_info(frames: int) -> str:
    """Which frame count is the default here, why, and what the other one costs (the slider's info)."""
    if frames == tube_clips.CPU_FRAMES:
        slower = (tube_clips.GPU_FRAMES / tube_clips.CPU_FRAMES) ** tubes.CPU_PASS_POWER  # the CPU estimate's growth
        return (f"{frames} frames ({frames // 2} tubelets of 2) by default on this CPU: a result within seconds. "
                f"{tube_clips.GPU_FRAMES} frames, as V-JEPA 2's probes were evaluated, take about {slower:.1f}x as long "
                "(attention grows faster than the tokens).")
    return (f"{frames} frames ({frames // 2} tubelets of 2) by default on this GPU, as V-JEPA 2's probes were "
            f"evaluated. {tube_clips.CPU_FRAMES} frames (the CPU default) halve the tokens; here both take well "
            "under a second.")


# The ranges the endpoints' descriptions state (API page, MCP tools), from the checks' own constants.
TUBE_LIMITS = dict(grid=tubes.GRID_SLIDER_MAX, last=tubes.GRID_SLIDER_MAX - 1, max_frames=videos.MAX_FRAMES,
                   max_step=videos.MAX_FRAME_STEP, max_fps=videos.MAX_SAMPLE_FPS)


def model_geometry(progress):
    actions.ensure_loaded([tubes.CHECKPOINT], progress)
    config = jepa.load().model.config
    return config.crop_size, config.patch_size, config.tubelet_size

def clip_for(video, start_s, num_frames, frame_step, sample_fps, progress):
    crop, patch, tubelet = model_geometry(progress)
    progress(0.05, desc="Decoding the frames…")
    clip = tube_clips.load_clip(video, start_s=start_s, num_frames=num_frames, frame_step=frame_step,
                     sample_fps=sample_fps, size=crop, tubelet_size=tubelet)
    return clip, patch, tubelet


@actions.action("tube_predict")
@actions.api_doc(**TUBE_LIMITS)
def tube_predict(video, start_s: float, num_frames: int, frame_step: int, sample_fps: float, top: int,
                 left: int, height: int, width: int, first_tubelet: int, last_tubelet: int,
                 progress=gr.Progress()):
    """Tube masking (V-JEPA 2 on video): hide a region of a clip through time and predict its features.

    The clip is sampled and centre-cropped to 256x256, cut into tubelets: 16-pixel patches over 2 frames (a
    {grid}x{grid} grid per tubelet). The context encoder sees only the tokens outside the tube; the predictor
    guesses the tube's features, which are compared by cosine with the full clip's features, per tubelet,
    beside two baselines. The error over time is a surprise signal: it spikes where the scene did not do what
    the model expected. Call tube_preview first to see a frame, the patch grid and where the tube lies.

    Args:
        video: the clip, as an http(s) URL (MP4, WebM, MOV or MKV; up to an hour).
        start_s: where sampling starts, in seconds from the beginning (0 or more).
        num_frames: frames to sample, 2 to {max_frames}, rounded up to whole tubelets of 2 (8 on a CPU, 16 on a GPU by default).
        frame_step: take every n-th frame, 1 to {max_step} (4 by default); ignored when sample_fps is above 0.
        sample_fps: sample at this many frames per second, 0 to {max_fps}; 0 uses frame_step.
        top: the tube's top row, in patches, 0 to {last} (moved inside the grid if it reaches past an edge).
        left: the tube's left column, in patches, 0 to {last}.
        height: the tube's height in patches, 1 to {grid}.
        width: the tube's width in patches, 1 to {grid}.
        first_tubelet: first hidden tubelet (tubelet t = frames 2t and 2t+1), 0 or more.
        last_tubelet: last hidden tubelet, included; first 0 and last num_frames/2 - 1 hide the region in every frame.

    Returns:
        the clip with the tube shaded, and beside each frame the tube's actual and predicted features and their cosine (MP4)
        cosine with the actual features per tubelet, for the predictor and the baselines (table: tubelet, cosine, series)
        the predictor's L1 error per tubelet, the surprise curve (table: tubelet, L1 error, series)
        the hidden pixels, actual and predicted features of each hidden tubelet as colours (PNG)
        a markdown summary
        the numbers: tube, tubelets, frames, cosine and l1 per series and tubelet, mean_cosine, grid, from_sweep, notes, seconds…
    """
    clip, patch, tubelet = clip_for(video, start_s, num_frames, frame_step, sample_fps, progress)
    result = tube_sweep.predict_tube(clip, top, left, height, width, first_tubelet, last_tubelet,
                                     progress=lambda f, d: progress(0.1 + 0.8 * f, desc=d),
                                     shared=shared_sweep(video, height, width))
    progress(0.92, desc="Rendering the video and pictures…")
    start = time.perf_counter()
    video_path = tubes.render_video(result, tubes.output_video_path(result))
    image = tubes.features_image(result)
    result.seconds["render"] = time.perf_counter() - start
    return (video_path, result.cosine_table(), result.surprise_table(), image,
            summary_markdown(result) + actions.device_note(), {**result.numbers(), **actions.device_numbers()})


@actions.gradio_errors
@actions.api_doc(**TUBE_LIMITS)
def tube_preview(video, start_s: float, num_frames: int, frame_step: int, sample_fps: float, top: int,
                 left: int, height: int, width: int, first_tubelet: int, last_tubelet: int,
                 progress=gr.Progress()):
    """See where a tube lies before predicting it: the first frame it hides, with the patch grid and the tube.

    Runs no model, only decodes the sampled frames: a quick way to choose top, left, height and width for
    tube_predict, which takes the same arguments.

    Args:
        video: the clip, as an http(s) URL (MP4, WebM, MOV or MKV; up to an hour).
        start_s: where sampling starts, in seconds from the beginning (0 or more).
        num_frames: frames to sample, 2 to {max_frames}, rounded up to whole tubelets of 2.
        frame_step: take every n-th frame, 1 to {max_step}; ignored when sample_fps is above 0.
        sample_fps: sample at this many frames per second, 0 to {max_fps}; 0 uses frame_step.
        top: the tube's top row, in patches, 0 to {last}.
        left: the tube's left column, in patches, 0 to {last}.
        height: the tube's height in patches, 1 to {grid}.
        width: the tube's width in patches, 1 to {grid}.
        first_tubelet: first hidden tubelet (tubelet t = frames 2t and 2t+1), 0 or more.
        last_tubelet: last hidden tubelet, included.

    Returns:
        the first hidden frame as the model sees it, with the patch grid and the tube in yellow (PNG)
        a markdown note: frames, frame rate, time span, grid and tubelets, and any adjustment made to the request
    """
    if video is None:
        return None, ""
    clip, patch, tubelet = clip_for(video, start_s, num_frames, frame_step, sample_fps, progress)
    grid = masks.PatchGrid.square(clip.size, patch)
    tube, notes = tubes.make_tube(grid, clip.num_frames // tubelet, top, left, height, width, first_tubelet,
                            last_tubelet)
    frames = tube.frames(tubelet)
    text = (f"{clip.num_frames} frames at {clip.playback_fps:.1f} fps "
            f"({clip.timestamps_s[0]:.2f}–{clip.timestamps_s[-1]:.2f} s), {grid.rows}×{grid.cols} patches, "
            f"{clip.num_frames // tubelet} tubelets. Showing frame {frames.start}, the first the tube hides. "
            "Click the frame to move the tube.")
    all_notes = [*clip.notes, *notes]
    if all_notes:
        text += "\n\n**Notes:** " + " ".join(all_notes)
    frame = clip.frames[min(tube.first_tubelet * tubelet, clip.num_frames - 1)]
    return viz.upscale(viz.tube_preview(frame, tube, patch), display_scale(clip.size)), text


@actions.gradio_errors
def picker_frame(video, start_s, num_frames, frame_step, sample_fps, top, left, height, width, first_tubelet,
                 last_tubelet, progress=gr.Progress()):
    """The frame the tube first hides, for the picker to draw the tube on (in the browser), and the tube on its grid."""
    if video is None:
        return gr.skip()
    clip, patch, tubelet = clip_for(video, start_s, num_frames, frame_step, sample_fps, progress)
    grid = masks.PatchGrid.square(clip.size, patch)
    tube, _ = tubes.make_tube(grid, clip.num_frames // tubelet, top, left, height, width, first_tubelet, last_tubelet)
    frame = clip.frames[min(tube.first_tubelet * tubelet, clip.num_frames - 1)]
    return BlockPicker(picture=picture_url(frame, "JPEG"), rows=grid.rows, cols=grid.cols,
                       value=block_of(tube))


BLOCK_KEYS = ("top", "left", "height", "width")
TUBE_KEYS = (*BLOCK_KEYS, "first_tubelet", "last_tubelet")  # the tube in a result's numbers, as its controls' order


def block_of(tube) -> dict:
    """The tube's place on the grid, as the picker's value."""
    return {key: int(getattr(tube, key)) for key in BLOCK_KEYS}


def place_tube(block: dict):
    """The picker's tube into the exact-position sliders (the model reads those)."""
    return tuple(int(block[key]) for key in BLOCK_KEYS)


def tubelet_limits(num_frames, first, last):
    try:
        tubelets = max(1, -(-int(num_frames) // 2))
    except (TypeError, ValueError):
        return gr.skip(), gr.skip()
    return (gr.update(maximum=tubelets - 1, value=min(first, tubelets - 1)),
            gr.update(maximum=tubelets - 1, value=min(last, tubelets - 1)))



PREPARED_CLIP = events.LatestPerSession()


@actions.action()
def tube_prepare(video, start_s: float, num_frames: int, frame_step: int, sample_fps: float,
                 request: gr.Request, progress=gr.Progress()):
    """Prepare a clip for /tube_predict: encode the full clip once (its targets, cached by content), so that
    /tube_predict with the same clip and sampling runs only the context encoder and the predictor.

    The page runs it when a clip is picked or its sampling changes. Cheap when the clip is cached. Returns
    numbers: target_cache_hit (it was cached), targets_computed, stale (a newer prepare of this session
    began, so nothing was kept), skipped (why nothing ran, e.g. on ZeroGPU), seconds, num_frames; or error
    (a clip whose sampling cannot be read). A file that is no video is refused, as by /tube_predict.
    """
    still_wanted = PREPARED_CLIP.begin(request)
    if video is None:
        return {}
    try:
        clip, _, _ = clip_for(video, start_s, num_frames, frame_step, sample_fps, progress)
        return tubes.prepare_targets(clip, still_wanted=still_wanted)
    except UserError as error:  # the preview and the click report it; a prepare stays quiet
        return {"error": str(error)}


# ---- Live while the tube is dragged: its sweep played back in the page (`SweepPlayer`) ----

PLAYBACKS = LRUCache(4)  # whole sweeps' payloads: a page that opens on the example is sent one, never re-renders it
DRAWN = LRUCache(4)  # growing sweeps' places drawn so far, so that each step draws only its new places


def shared_sweep(video, height, width) -> bool:
    """Whether a tube's sweep is the same for every learner: a bundled example's (known by its content) at the opening
    tube's size on the grid this process serves. It is kept on disk, and computed by whatever needs it first, the page
    or the API."""
    try:
        size = (int(height), int(width))
    except (TypeError, ValueError):
        return False
    crop, patch, _ = model_geometry(None)
    return size == example_tube(crop // patch)[2:] and examples.is_bundled(video)


def still_of(result: tubes.TubeResult) -> np.ndarray:
    """The frame of the result's video where the tube first hides, with the guess beside it: what the page shows in
    place of the video while the tube moves."""
    return tubes.video_frames(result)[result.tube.first_tubelet * result.layout.tubelet_size]


def playback(sweep: tube_sweep.TubeSweep, clip, drawn: dict) -> sweeps.Playback:
    """The sweep as the page plays it: per place the video's still and the summary, as the endpoint returns them.
    `drawn` keeps each place's still and texts across a growing sweep's steps."""
    for index, result in enumerate(tube_sweep.results(sweep, clip)):
        if index not in drawn:
            drawn[index] = ([result.tube.top, result.tube.left, result.tube.height, result.tube.width], still_of(result),
                            still_description(result), sweeps.markdown_html(summary_markdown(result)))
    places = [drawn[index] for index in range(sweep.done)]
    return sweeps.Playback([p[0] for p in places], {"still": [p[1] for p in places]}, {"still": [p[2] for p in places]},
                           {"summary": [p[3] for p in places]}, total=len(sweep.positions), note=sweep_note(sweep))


@actions.action()
def sweep_playback(video, start_s, num_frames, frame_step, sample_fps, top, left, height, width, first_tubelet,
                   last_tubelet, shown, progress=gr.Progress()):
    """The player's sweep for the tube's size and time span, and which one it is (`shown`). Computed when missing:
    on a GPU at once; on a CPU a few places a call, and `shown` then names the step, whose change calls the next one
    (so a click waits behind one step, not the whole sweep). A page that shows it already gets nothing new; a bad
    setting stays quiet (the click says why)."""
    if video is None:
        yield gr.skip(), gr.skip()
        return
    try:
        clip, _, _ = clip_for(video, start_s, num_frames, frame_step, sample_fps, progress)
        stream = tube_sweep.stream_sweep(clip, top, left, height, width, first_tubelet, last_tubelet,
                                         keep_on_disk=shared_sweep(video, height, width),
                                         max_places=tube_sweep.places_per_call())
        first, computed = next(stream)
    except UserError as error:  # a bad setting (the click says so too), or no device can take the sweep now
        yield SweepPlayer(sweep=sweeps.Playback([], note=f"Not live: {error}").payload()), None
        return
    which = repr((clip.digest, clip.notes, first.height, first.width, first.first, first.last))
    if not computed and which == shown:
        yield gr.skip(), gr.skip()
        return
    if not computed and PLAYBACKS.get(which) is not None:
        yield SweepPlayer(sweep=PLAYBACKS.get(which)), which
        return
    drawn = DRAWN.get(which) or {}
    DRAWN.put(which, drawn)
    for sweep, _ in itertools.chain([(first, computed)], stream):
        payload = playback(sweep, clip, drawn).payload()
        if sweep.complete:
            PLAYBACKS.put(which, payload)
        yield SweepPlayer(sweep=payload), which if sweep.complete else f"{which} step {sweep.done}"


def build_tab(endpoints: bool = True) -> ready_examples.ReadyExample:
    """The 6.4 tab: the tube dragged on a frame beside the clip it hides, playing with the guess beside each frame;
    the rest folded. Endpoints /tube_predict, /tube_preview and /tube_prepare (named when `endpoints`). Returns the
    example it opens with, for the page to show on load.
    """
    default_frames = tube_clips.default_frames()
    default_tubelets = default_frames // 2
    max_tubelet = tube_clips.GPU_FRAMES // 2 - 1  # the API's limit on every device (a 16-frame call's last tubelet)
    widgets.call_to_action(CALL_TO_ACTION)
    notice = gr.Markdown(visible=False)
    with gr.Row():
        with gr.Column(scale=2, min_width=240):
            picker = BlockPicker(dict(zip(BLOCK_KEYS, EXAMPLE_TUBE, strict=True)), rows=tubes.GRID_SLIDER_MAX,
                                 cols=tubes.GRID_SLIDER_MAX, label="A frame of the clip with the hidden tube",
                                 noun="Tube", elem_id="tube-picture")
            # While the tube is dragged: the video's still and the summary for each place, from the tube's sweep.
            player = SweepPlayer(source="tube-picture", kind="block", pictures={"still": "#tubes-shaded"},
                                 texts={"summary": "#tubes-summary"}, elem_id="tubes-live")
        with gr.Column(scale=3, min_width=280):
            shaded = gr.Video(label="The clip, tube hidden | actual vs predicted features, cosine", autoplay=True,
                              loop=True, height=widgets.CLAIM_PICTURE_PX, interactive=False, elem_id="tubes-shaded",
                              elem_classes=[widgets.RESULT, widgets.CLAIM])
    with gr.Row(equal_height=True):
        first_tubelet = gr.Slider(0, max_tubelet, value=0, step=1, label="Hidden from tubelet")
        last_tubelet = gr.Slider(0, max_tubelet, value=default_tubelets - 1, step=1,
                                 label="to tubelet (tubelet t = frames 2t, 2t+1)")
        run = gr.Button("Hide the tube and predict", variant="primary", elem_id="tubes-run", min_width=160)
    summary = gr.Markdown(elem_id="tubes-summary")
    with gr.Accordion("Another clip, and how it is sampled", open=False):
        with gr.Row():
            # include_audio=True: dropping audio would need an ffmpeg binary, which a Space may not have.
            video = widgets.VideoInput(label="Video", value=EXAMPLE_VIDEO, sources=["upload", "webcam"],
                                      include_audio=True, height=220, elem_id="tubes-video")
            with gr.Column():
                clips = gr.Examples(examples=examples.videos(), inputs=video, cache_examples=False)
                with gr.Row():
                    start_s = gr.Number(value=0.0, minimum=0, label="Start (s)", precision=2)
                    sample_fps = gr.Number(value=0, minimum=0, maximum=videos.MAX_SAMPLE_FPS, label="Or fps",
                                           info="Above 0: sample at this rate instead of the frame step.")
        with gr.Row():
            num_frames = gr.Slider(2, videos.MAX_FRAMES, value=default_frames, step=2, label="Frames",
                                   info=frames_info(default_frames))
            frame_step = gr.Slider(1, tubes.FRAME_STEP_SLIDER_MAX, value=tube_clips.DEFAULT_FRAME_STEP, step=1,
                                   label="Frame step", info="Take every n-th frame.")
    with gr.Accordion("The tube's exact place, in patches", open=False):
        with gr.Row():
            # A control, not a result: no download or share buttons (three fewer stops for the keyboard).
            preview = widgets.output_image("The first hidden frame, the grid and the tube", height=220,
                                          elem_id="tubes-preview", alt_text=PREVIEW_DESCRIPTION, buttons=["fullscreen"])
            with gr.Column():
                preview_text = gr.Markdown(elem_id="tubes-preview-text")
                top, left, height, width = widgets.block_sliders(tubes.GRID_SLIDER_MAX, EXAMPLE_TUBE,
                                                                 elem_ids=("tubes-top", "tubes-left", None, None))
    with gr.Accordion("Over time: the cosine, the surprise, the features", open=False):
        with gr.Row():
            cosine_plot = gr.LinePlot(x="tubelet", y="cosine", color="series", y_lim=[-1, 1],
                                      label="Cosine with the actual features, per tubelet",
                                      x_title="tubelet (2 frames)", elem_id="tubes-cosine")
            surprise_plot = gr.LinePlot(x="tubelet", y="L1 error", color="series",
                                        label="Surprise: the predictor's error (L1) over time",
                                        x_title="tubelet (2 frames)", elem_id="tubes-surprise")
        features = widgets.output_image("Tube features over time (PCA colours): actual vs predicted",
                                       elem_id="tubes-features")
    with gr.Accordion("What you are looking at, and the numbers", open=False):
        gr.Markdown(EXPLANATION)
        numbers = gr.JSON(label="Numbers (what the API returns)")
    link = links.Link(CONCEPT_PATH, video, examples.videos(),
                      {"top": top, "left": left, "height": height, "width": width, "first": first_tubelet,
                       "last": last_tubelet})
    links.link_control(link)

    sampling_inputs = [video, start_s, num_frames, frame_step, sample_fps]
    tube_inputs = [top, left, height, width, first_tubelet, last_tubelet]
    outputs = [shaded, cosine_plot, surprise_plot, features, summary, numbers]
    widgets.describe_pictures(numbers, [features], features_description)
    predict_args = dict(fn=tube_predict, inputs=sampling_inputs + tube_inputs, outputs=outputs,
                        concurrency_id=events.MODEL_CONCURRENCY_ID)
    run.click(api_name=events.endpoint("tube_predict", endpoints), **predict_args)

    # The preview and the picker's frame only decode frames (cached per clip): they do not wait behind a model's run,
    # so a picked clip shows on the picker while its prepare still runs.
    preview_args = dict(fn=tube_preview, inputs=sampling_inputs + tube_inputs, outputs=[preview, preview_text],
                        trigger_mode="always_last")
    frame_args = dict(fn=picker_frame, inputs=sampling_inputs + tube_inputs, outputs=picker, api_name=False,
                      trigger_mode="always_last")
    # The player's sweep follows each result (the example's too) and each new clip, span or size.
    shown_sweep = gr.State(None)
    sweep_args = dict(fn=sweep_playback, inputs=sampling_inputs + tube_inputs + [shown_sweep],
                      outputs=[player, shown_sweep], api_name=False, concurrency_id=events.MODEL_CONCURRENCY_ID,
                      trigger_mode="always_last", show_progress="hidden")
    summary.change(**sweep_args)
    shown_sweep.change(**sweep_args)  # the next step of a sweep that grows a step a call
    for picked in events.on_pick(video, clips, api_name=events.endpoint("tube_preview", endpoints), **preview_args):
        picked.then(**frame_args).then(**sweep_args)
    for control in (start_s, sample_fps):
        control.submit(api_name=False, **preview_args).then(**frame_args).then(**sweep_args)
    for control in (frame_step, first_tubelet, last_tubelet):
        control.release(api_name=False, **preview_args).then(**frame_args).then(**sweep_args)
    for control in (top, left, height, width):  # the picker follows the sliders
        control.release(api_name=False, **preview_args).then(**frame_args).then(**sweep_args)
    num_frames.release(tubelet_limits, [num_frames, first_tubelet, last_tubelet], [first_tubelet, last_tubelet],
                       api_name=False).then(api_name=False, **preview_args).then(**frame_args).then(**sweep_args)
    # Another clip or span: the old sweep's pictures are wrong at once, before the new one arrives.
    gr.on([video.change, start_s.submit, sample_fps.submit, num_frames.release, frame_step.release,
           first_tubelet.release, last_tubelet.release], lambda: (SweepPlayer(sweep=None), None),
          outputs=[player, shown_sweep], api_name=False, queue=False, show_progress="hidden")
    # A drag ends in one run: the sliders take the tube, then the model runs (Enter on the picture runs it too).
    for gesture in (picker.release, picker.submit):
        gesture(place_tube, picker, [top, left, height, width], api_name=False, queue=False).then(
            api_name=False, **predict_args).then(api_name=False, **preview_args)

    events.prepare_on([video.change, start_s.submit, sample_fps.submit, num_frames.release, frame_step.release],
                      tube_prepare, sampling_inputs, gr.JSON(visible=False),
                      api_name=events.endpoint("tube_prepare", endpoints))

    def result_for(args, progress):
        """The outputs, and the tube's controls set to the tube the result hid (fitted to the grid, if it had to be)."""
        shown = (*tube_preview(*args, progress=progress), picker_frame(*args, progress=progress))
        predicted = tube_predict(*args, progress=progress)
        tube = predicted[-1]["tube"]
        return (*shown, *predicted, *(tube[key] for key in TUBE_KEYS))

    def run_linked(values: dict, progress):
        inputs = [*sampling_inputs, *tube_inputs]
        return result_for([values.get(component, default) for component, default in
                           zip(inputs, opening_call(progress), strict=True)], progress)

    return ready_examples.ReadyExample("tubes", [preview, preview_text, picker, *outputs, *tube_inputs],
                               lambda progress: result_for(opening_call(progress), progress), link=link,
                               run=run_linked, notice=notice)


CONCEPT_PATH = "tube-masking"
CONCEPT = Concept("tubes", "6.4 Tube masking", CONCEPT_PATH, build_tab, CALL_TO_ACTION, endpoint="/tube_predict",
                  example_call=example_call, calls=calls, run_button="tubes-run",
                  summary="tubes-summary", example_summary="Tube:", pictures=2, prepare="/tube_prepare")
