"""6.2-6.3 tab: place a block on a still image, MAE paints it, V-JEPA 2 predicts its embeddings.

Endpoints `/compare_pixels_embeddings(image, top, left, height, width, noise, grain_level, jpeg_quality)` and
`/noise_sweep(image, top, left, height, width, noise, grain_level, jpeg_quality, levels)`. The block is dragged on
the picture (`BlockPicker`) or set by the folded sliders; its release runs the comparison once, and with noise
picked the sweep over its levels follows. The page's words are in `demos.tabs.mae_vs_jepa_text`.
"""

import gradio as gr
import numpy as np

from demos import examples, images, jepa, masks, viz
from demos.compute import block_sweep_work, mae_vs_jepa
from demos.compute import noise_sweep as sweeps
from demos.noise import (
    DEFAULT_GRAIN_LEVEL,
    DEFAULT_JPEG_QUALITY,
    GRAIN,
    JPEG,
    MAX_GRAIN_LEVEL,
    MAX_JPEG_QUALITY,
    MIN_JPEG_QUALITY,
    NONE,
    Noise,
)
from demos.tabs import actions, events, links, mae_vs_jepa_live, ready_examples, widgets
from demos.tabs.block_picker import BlockPicker, picture_url
from demos.tabs.concept import Concept
from demos.tabs.mae_vs_jepa_text import (
    BASELINE_TEXT,
    COSINE_TEXT,
    EXPLANATION,
    FRAMES_TEXT,
    INTRO,
    MAE_TEXT,
    NEIGHBOUR_TEXT,
    NOISE_HINT,
    PCA_TEXT,
    VIEW_TEXT,
    block_caption,
    jepa_caption,
    mae_caption,
    picture_descriptions,
    summary_markdown,
    sweep_description,
    sweep_markdown,
)

CHECKPOINTS = [mae_vs_jepa.JEPA_CHECKPOINT, mae_vs_jepa.MAE_CHECKPOINT]
CALL_TO_ACTION = "Drag the target block"
EXAMPLE_IMAGE = str(examples.IMAGES_DIR / "chelsea.jpg")  # the image the tab opens with, its result in place
# A block inside the patch grid of every V-JEPA 2 checkpoint, however small (the page fits DEFAULT_BLOCK to the grid).
EXAMPLE_CALL_BLOCK = (1, 1, 2, 2)  # top, left, height, width in patches


def example_call() -> tuple:
    """The arguments of a `/compare_pixels_embeddings` call on the example image, without noise."""
    return EXAMPLE_IMAGE, *EXAMPLE_CALL_BLOCK


CALL_SWEEP_LEVELS = 2  # the fewest a sweep takes: light enough for a CPU Space


def calls(index: int) -> dict[str, tuple]:
    """Each endpoint's call on bundled picture `index` (`Concept.calls`): the block of the example's call, the sweep
    with film grain."""
    image = examples.image(index)
    return {"/compare_pixels_embeddings": (image, *EXAMPLE_CALL_BLOCK),
            "/noise_sweep": (image, *EXAMPLE_CALL_BLOCK, GRAIN, DEFAULT_GRAIN_LEVEL, DEFAULT_JPEG_QUALITY,
                             CALL_SWEEP_LEVELS)}


@actions.action("compare_pixels_embeddings", numbers=-2, summary=-3)
@actions.api_doc(grid=mae_vs_jepa.PUBLISHED_GRID, last=mae_vs_jepa.PUBLISHED_GRID - 1, gpu_frames=mae_vs_jepa.GPU_FRAMES,
                cpu_frames=mae_vs_jepa.CPU_FRAMES,
                max_grain=MAX_GRAIN_LEVEL, min_quality=MIN_JPEG_QUALITY, max_quality=MAX_JPEG_QUALITY)
def compare_pixels_embeddings(image_path, top: float, left: float, height: float, width: float,
                              noise: str = NONE, grain_level: float = DEFAULT_GRAIN_LEVEL,
                              jpeg_quality: float = DEFAULT_JPEG_QUALITY, progress=gr.Progress()):
    """Pixels vs embeddings: hide one block of an image; MAE paints its pixels, V-JEPA 2 predicts its embeddings.

    Both models see the same 256x256 centre square, cut into a {grid}x{grid} grid of 16-pixel patches, with
    film grain or JPEG compression added if asked. MAE (vit-mae-base) reconstructs the block's pixels. V-JEPA 2
    (vjepa2-vitl, the image as a static clip: {gpu_frames} frames on a GPU, as its image evaluation, {cpu_frames} on
    a CPU) encodes the visible patches alone and its predictor guesses the block's embeddings; they are scored by
    cosine against the full image's embeddings, beside two baselines that need no learning (MAE's pixels too).

    Args:
        image_path: the image, as an http(s) URL (PNG, JPEG or WebP, any size).
        top: the block's top row, in patches from the top, 0 to {last}.
        left: the block's left column, in patches from the left, 0 to {last}.
        height: the block's height in patches, 1 to {grid} (the block must fit the grid and leave some context).
        width: the block's width in patches, 1 to {grid}.
        noise: "none" (the default), "grain" (film grain) or "jpeg" (JPEG compression), added to the picture both see.
        grain_level: the film grain's standard deviation in 8-bit levels, 1 to {max_grain} (with "grain").
        jpeg_quality: the JPEG quality, {min_quality} (coarsest) to {max_quality} (with "jpeg").

    Returns:
        the model view with the hidden block outlined (PNG)
        MAE's pixels pasted into the block (PNG)
        a close-up of the block, real | MAE (PNG)
        the actual embeddings as colours (PNG; each patch's embedding projected on its 3 main directions)
        the same, with V-JEPA 2's predicted embeddings pasted into the block (PNG)
        the cosine of each predicted embedding with the actual one, red 1, white 0, blue -1 (PNG)
        for each predicted embedding, the patch whose actual embedding is nearest (PNG)
        a close-up of the block's embeddings, actual | predicted, in the same colours (PNG)
        a markdown summary
        the numbers: mean_cosine, baselines, cosine_per_patch, mae_pixel_mse, mae_baselines (the pixels' own:
        context_mean_colour, nearest_context_patch), num_frames, frames_reason, noise, block_noise_mse,
        block_patch_ids, target_token_ids, ...
    """
    image = images.load_image(image_path)
    added = Noise.of(noise, grain_level, jpeg_quality)
    actions.ensure_loaded(CHECKPOINTS, progress)
    progress(0.9, desc="Predicting the block…")
    # A bundled example at the page's block size: where one GPU call sweeps every position, it does so first, once for
    # every learner, and this comparison is read from the sweep.
    block_sweep_work.shared_first(image, height, width, noise=added)
    result = mae_vs_jepa.compare(image, top, left, height, width, noise=added)
    return (*[result.images[k] for k in mae_vs_jepa.IMAGE_ORDER], summary_markdown(result) + actions.device_note(),
            {**result.stats(), **actions.device_numbers()}, result.grid)


@actions.action("noise_sweep")
@actions.api_doc(grid=mae_vs_jepa.PUBLISHED_GRID, last=mae_vs_jepa.PUBLISHED_GRID - 1, max_grain=MAX_GRAIN_LEVEL,
                min_quality=MIN_JPEG_QUALITY, max_quality=MAX_JPEG_QUALITY, max_levels=sweeps.MAX_LEVELS)
def noise_sweep(image_path, top: float, left: float, height: float, width: float, noise: str,
                       grain_level: float, jpeg_quality: float, levels: float, progress=gr.Progress()):
    """Noise nobody can predict: the same hidden block at a few levels of film grain or JPEG compression.

    From the clean picture to the level given: MAE's pixel error in the block against its (noisy) target and how
    much of it is the added noise itself, beside how far V-JEPA 2's target embeddings move (cosine of the noisy
    and the clean ones) and the predictor's cosine with its target. The chapter's claim made measurable: a pixel
    target must chase the noise, an embedding target can leave it out.

    Args:
        image_path: the image, as an http(s) URL (PNG, JPEG or WebP, any size).
        top: the block's top row, in patches of the {grid}x{grid} grid, 0 to {last}.
        left: the block's left column, 0 to {last}.
        height: the block's height in patches, 1 to {grid}.
        width: the block's width in patches, 1 to {grid}.
        noise: "grain" (film grain) or "jpeg" (JPEG compression).
        grain_level: the strongest film grain, its standard deviation in 8-bit levels, 1 to {max_grain}.
        jpeg_quality: the coarsest JPEG quality, {min_quality} to {max_quality}.
        levels: how many levels, the clean picture included, 2 to {max_levels}.

    Returns:
        a plot of the four measures over the levels (PNG)
        a markdown summary
        the numbers: per level its label, mae_pixel_mse, noise_mse, target_cosine, predictor_cosine and cache hits
    """
    image = images.load_image(image_path)
    added = Noise.of(noise, grain_level, jpeg_quality)
    actions.ensure_loaded(CHECKPOINTS, progress)
    progress(0.5, desc="Hiding the block at each noise level…")
    result = sweeps.sweep(image, top, left, height, width, added, levels)
    stats = result.stats()
    plot = viz.noise_sweep_plot([level["label"] for level in stats["levels"]], stats["mae_pixel_mse"],
                                stats["noise_mse"], stats["target_cosine"], stats["predictor_cosine"])
    return plot, sweep_markdown(result) + actions.device_note(), {**stats, **actions.device_numbers()}


def sweep_if_noise(image_path, top, left, height, width, noise, grain_level, jpeg_quality, levels,
                   progress=gr.Progress()):
    """After each comparison: the sweep over the noise levels, or the hint when no noise is picked."""
    if image_path is None:
        return [gr.skip()] * 3
    if noise == NONE:
        return None, NOISE_HINT, None
    return noise_sweep(image_path, top, left, height, width, noise, grain_level, jpeg_quality, levels, progress)


def compare_if_image(image_path, top, left, height, width, noise, grain_level, jpeg_quality, progress=gr.Progress()):
    if image_path is None:
        return [gr.skip()] * (len(mae_vs_jepa.IMAGE_ORDER) + 3)
    return compare_pixels_embeddings(image_path, top, left, height, width, noise, grain_level, jpeg_quality, progress)


def model_grid(progress=None) -> masks.PatchGrid:
    """V-JEPA 2's patch grid (loading the models the first time)."""
    actions.ensure_loaded(CHECKPOINTS, progress)
    config = jepa.load().model.config
    return masks.PatchGrid.square(config.crop_size, config.patch_size)


@actions.gradio_errors
def fit_controls(image_path, top, left, height, width, noise, grain_level, jpeg_quality, progress=gr.Progress()):
    """A new picture: the sliders fitted to V-JEPA 2's patch grid, and the picker showing the picture both models
    will see, the block on it."""
    if image_path is None:
        return [gr.skip()] * 6
    grid = model_grid(progress)
    block = masks.fit_block(grid, top, left, height, width)
    return (gr.Slider(maximum=grid.rows - 1, value=block.top), gr.Slider(maximum=grid.cols - 1, value=block.left),
            gr.Slider(maximum=grid.rows, value=block.height), gr.Slider(maximum=grid.cols, value=block.width), grid,
            picker_view(image_path, block, noise, grain_level, jpeg_quality, grid))


def picker_view(image_path, block: masks.Block, noise, grain_level, jpeg_quality, grid: masks.PatchGrid):
    """The picker: the square both models see (with its noise), its grid, the block."""
    square = images.center_square(images.load_image(image_path), grid.rows * grid.patch_size)
    view = Noise.of(noise, grain_level, jpeg_quality).apply(np.array(square))
    return BlockPicker(picture=picture_url(view, "JPEG"), rows=grid.rows, cols=grid.cols, value=block_value(block))


@actions.gradio_errors
def noisy_picture(image_path, top, left, height, width, noise, grain_level, jpeg_quality, grid):
    """New noise: the picker shows the picture as both models now see it."""
    if image_path is None or grid is None:
        return gr.skip()
    return picker_view(image_path, masks.fit_block(grid, top, left, height, width), noise, grain_level, jpeg_quality,
                       grid)


def block_value(block: masks.Block) -> dict:
    return {"top": block.top, "left": block.left, "height": block.height, "width": block.width}


def place_block(block: dict):
    """The picker's block into the exact-position sliders (the model reads those)."""
    return block["top"], block["left"], block["height"], block["width"]


@actions.gradio_errors
def resize_block(grid, top, left, height, width):
    """A new size from the sliders keeps the block inside the grid by moving it, instead of failing; the picker
    follows."""
    if grid is None:
        return [gr.skip()] * 3
    block = masks.fit_block(grid, top, left, height, width)
    return block.top, block.left, BlockPicker(value=block_value(block))


def follow_sliders(top, left, height, width):
    """The picker shows the block the sliders set."""
    return BlockPicker(value={"top": int(top), "left": int(left), "height": int(height), "width": int(width)})


def build_tab(endpoints: bool = True) -> ready_examples.ReadyExample:
    """The 6.2-6.3 tab: the block dragged on the picture, then MAE's pixels beside JEPA's embeddings for it, each
    scored; the rest folded. Endpoints /compare_pixels_embeddings and /noise_sweep (named when `endpoints`).
    Returns the example it opens with, for the page to show on load.
    """
    widgets.call_to_action(CALL_TO_ACTION)
    notice = gr.Markdown(visible=False)
    with gr.Row():
        with gr.Column(scale=2, min_width=240):
            picker = BlockPicker(dict(zip(("top", "left", "height", "width"), mae_vs_jepa.DEFAULT_BLOCK, strict=True)),
                                 rows=mae_vs_jepa.PUBLISHED_GRID, cols=mae_vs_jepa.PUBLISHED_GRID,
                                 label="The picture both models see, with the hidden block", elem_id="block-picture")
        with gr.Column(scale=3, min_width=280):
            gr.Markdown(INTRO)
            verdict = gr.Markdown(elem_id="mvj-verdict")
            run = gr.Button("Hide the block and predict", variant="primary", elem_id="mvj-run")
            live = mae_vs_jepa_live.player()
    with gr.Row(equal_height=True):
        with gr.Column(min_width=280):
            mae_closeup = widgets.output_image("Pixels: real | MAE", elem_id="mvj-mae-closeup",
                                              height=widgets.CLAIM_PICTURE_PX // 2 + 40,
                                              elem_classes=[widgets.RESULT, widgets.CLAIM])
            mae_score = gr.Markdown(elem_id="mvj-mae-score")
        with gr.Column(min_width=280):
            jepa_closeup = widgets.output_image("Embeddings: actual | predicted",
                                               elem_id="mvj-jepa-closeup", height=widgets.CLAIM_PICTURE_PX // 2 + 40,
                                               elem_classes=[widgets.RESULT, widgets.CLAIM])
            jepa_score = gr.Markdown(elem_id="mvj-jepa-score")
    with gr.Accordion("Another picture, the block's exact place, noise", open=False):
        with gr.Row():
            image = widgets.image_input("Image", value=EXAMPLE_IMAGE, height=220, elem_id="mvj-image")
            with gr.Column():
                picture_examples = gr.Examples(examples=examples.images(), inputs=image, cache_examples=False)
                top, left, height, width = widgets.block_sliders(
                    mae_vs_jepa.PUBLISHED_GRID, mae_vs_jepa.DEFAULT_BLOCK,
                    sizes=("Block height (patches)", "Block width (patches)"),
                    elem_ids=("mvj-top", "mvj-left", "mvj-height", "mvj-width"))
        with gr.Row():
            noise_kind = gr.Radio([("No noise", NONE), ("Film grain", GRAIN), ("JPEG compression", JPEG)],
                                  value=NONE, label="Noise added to the picture both models see", elem_id="mvj-noise")
            grain_level = gr.Slider(1, MAX_GRAIN_LEVEL, value=DEFAULT_GRAIN_LEVEL, step=1,
                                    label="Film grain level (its standard deviation, 8-bit levels)", elem_id="mvj-grain")
            jpeg_quality = gr.Slider(MIN_JPEG_QUALITY, MAX_JPEG_QUALITY, value=DEFAULT_JPEG_QUALITY, step=1,
                                     label="JPEG quality (lower: coarser)", elem_id="mvj-jpeg")
        sweep_summary = gr.Markdown(NOISE_HINT, elem_id="mvj-noise-summary")
        with gr.Column(visible=False) as sweep_box:  # shown once noise is picked: no empty plot before
            sweep_plot = widgets.output_image("Noise levels: MAE's pixels and V-JEPA 2's embeddings, same block",
                                             elem_id="mvj-noise-plot", height=260)
            with gr.Row():
                sweep_levels = gr.Slider(2, sweeps.MAX_LEVELS, value=sweeps.DEFAULT_LEVELS, step=1,
                                         label="Levels in the plot (the clean picture counts; each costs time)")
                sweep_run = gr.Button("Compare the noise levels", size="sm", elem_id="mvj-noise-run")
    with gr.Accordion("The whole picture: MAE's pixels, the embeddings as colours, cosine, neighbours", open=False):
        with gr.Row():
            view_out = widgets.output_image("What both models see, the block outlined", elem_id="mvj-view")
            mae_out = widgets.output_image("MAE: pixels painted into the block", elem_id="mvj-mae")
        gr.Markdown(VIEW_TEXT + "\n\n" + MAE_TEXT)
        with gr.Row():
            pca_actual = widgets.output_image("(a) Actual embeddings (PCA colours)", elem_id="mvj-pca-actual")
            pca_predicted = widgets.output_image("(a) Predicted pasted into the block", elem_id="mvj-pca-predicted")
        gr.Markdown(PCA_TEXT)
        with gr.Row():
            cosine_out = widgets.output_image("(b) Cosine: predicted vs actual")
            neighbours_out = widgets.output_image("(d) Nearest neighbours")
        gr.Markdown(COSINE_TEXT + "\n\n" + BASELINE_TEXT + "\n\n" + NEIGHBOUR_TEXT)
    with gr.Accordion("What you are looking at, and the numbers", open=False):
        summary = gr.Markdown(elem_id="mvj-summary")
        gr.Markdown(EXPLANATION + FRAMES_TEXT)
        numbers = gr.JSON(label="Numbers (what the API returns)")
        sweep_numbers = gr.JSON(label="Noise levels")
    grid = gr.State(None)  # V-JEPA 2's patch grid, once known
    link = links.Link(CONCEPT_PATH, image, examples.images(),
                      {"top": top, "left": left, "height": height, "width": width, "noise": noise_kind,
                       "grain": grain_level, "jpeg": jpeg_quality})
    links.link_control(link)

    pictures = {"view": view_out, "mae_pasted": mae_out, "mae_closeup": mae_closeup, "pca_actual": pca_actual,
                "pca_predicted": pca_predicted, "cosine_map": cosine_out, "neighbours": neighbours_out,
                "jepa_closeup": jepa_closeup}
    outputs = [*(pictures[name] for name in mae_vs_jepa.IMAGE_ORDER), summary, numbers, grid]
    widgets.describe_pictures(numbers, outputs[:len(mae_vs_jepa.IMAGE_ORDER)], picture_descriptions)
    widgets.describe_pictures(sweep_numbers, [sweep_plot], sweep_description)
    for caption, describe in ((mae_score, mae_caption), (jepa_score, jepa_caption), (verdict, block_caption)):
        widgets.caption_on(numbers, caption, describe)
    block_inputs = [image, top, left, height, width, noise_kind, grain_level, jpeg_quality]
    sweep_inputs = [*block_inputs, sweep_levels]
    sweep_outputs = [sweep_plot, sweep_summary, sweep_numbers]
    model_args = dict(api_name=False, concurrency_id=events.MODEL_CONCURRENCY_ID)

    def then_sweep(event):
        event.success(sweep_if_noise, sweep_inputs, sweep_outputs, **model_args)

    def then_compare(event):
        then_sweep(event.then(compare_if_image, block_inputs, outputs, **model_args))

    then_sweep(run.click(compare_pixels_embeddings, block_inputs, outputs,
                         api_name=events.endpoint("compare_pixels_embeddings", endpoints),
                         concurrency_id=events.MODEL_CONCURRENCY_ID))
    sweep_run.click(noise_sweep, sweep_inputs, sweep_outputs, api_name=events.endpoint("noise_sweep", endpoints),
                    concurrency_id=events.MODEL_CONCURRENCY_ID)
    sweep_levels.release(sweep_if_noise, sweep_inputs, sweep_outputs, **model_args)

    # Each result (the example, a pick, a release, new noise) asks for the sweep of its block's size, which the page
    # then plays back while the block is dragged.
    numbers.change(mae_vs_jepa_live.note_request, block_inputs, None, api_name=False, queue=False,
                   show_progress="hidden")
    numbers.change(mae_vs_jepa_live.live_sweep, [*block_inputs, live], live, api_name=False,
                   concurrency_id=events.SWEEP_CONCURRENCY_ID, trigger_mode="always_last", show_progress="hidden")

    controls = [top, left, height, width]
    for picked in events.on_pick(image, picture_examples, fit_controls, block_inputs, [*controls, grid, picker], **model_args):
        then_compare(picked)
    # A drag ends in one run: the sliders take the block, then the models run (Enter on the picture runs them too).
    for gesture in (picker.release, picker.submit):
        then_compare(gesture(place_block, picker, controls, api_name=False, queue=False))
    for slider in (height, width):
        then_compare(slider.release(resize_block, [grid, *controls], [top, left, picker], api_name=False))
    for slider in (top, left):
        then_compare(slider.release(follow_sliders, controls, picker, api_name=False, queue=False))
    noise_kind.change(lambda kind: gr.Column(visible=kind != NONE), noise_kind, sweep_box, api_name=False, queue=False,
                      show_progress="hidden")
    for event in (noise_kind.change, grain_level.release, jpeg_quality.release):
        then_compare(event(noisy_picture, [*block_inputs, grid], picker, api_name=False))

    def result_for(values: dict, progress):
        """The example's outputs, with the picker and sliders fitted to the grid, at the values given."""
        args = [values.get(component, default) for component, default in
                zip(block_inputs, [EXAMPLE_IMAGE, *mae_vs_jepa.DEFAULT_BLOCK, NONE, DEFAULT_GRAIN_LEVEL,
                                   DEFAULT_JPEG_QUALITY], strict=True)]
        *sliders, fitted, view = fit_controls(*args, progress)
        block = masks.fit_block(fitted, *args[1:5])
        return (*sliders, view, *compare_pixels_embeddings(args[0], block.top, block.left, block.height, block.width,
                                                            *args[5:], progress=progress))

    return ready_examples.ReadyExample("mae_vs_jepa", [*controls, picker, *outputs], lambda progress: result_for({}, progress),
                               link=link, run=result_for, notice=notice)


CONCEPT_PATH = "pixels-vs-embeddings"
CONCEPT = Concept("mae-vs-jepa", "6.2-6.3 Pixels vs embeddings", CONCEPT_PATH, build_tab, CALL_TO_ACTION,
                  endpoint="/compare_pixels_embeddings", example_call=example_call,
                  calls=calls, run_button="mvj-run", summary="mvj-verdict",
                  example_summary="Block at row", pictures=8)
