"""6.2-6.3 tab: place a block on a still image, MAE paints it, V-JEPA 2 predicts its embeddings.

Endpoint `/compare_pixels_embeddings(image, top, left, height, width)`. A click on the model view,
the nudge buttons and the sliders only set the block's position; the computation follows.
"""

import gradio as gr

from demos import examples, jepa, masks, media
from demos.compute import mae_vs_jepa
from demos.tabs import common

CHECKPOINTS = [mae_vs_jepa.JEPA_CHECKPOINT, mae_vs_jepa.MAE_CHECKPOINT]


def summary_markdown(result: mae_vs_jepa.Comparison) -> str:
    s = result.stats()
    b, base = s["block"], s["baselines"]
    rows = [("**V-JEPA 2 predictor** (context only)", s["mean_cosine"]),
            ("Mean of the visible patches' embeddings", base["context_mean"]),
            ("Copy the nearest visible patch", base["nearest_context_patch"])]
    best_baseline = max(base.values())
    verdict = ("The predictor **beats both baselines**: it used the context *and* the block's position."
               if s["mean_cosine"] > best_baseline else
               "The predictor does **not** beat the best baseline here. Try another spot: large uniform "
               "regions are easy to copy, objects are where prediction pays.")
    table = "\n".join(f"| {name} | {value:+.3f} |" for name, value in rows)
    mae_line = ("" if s["mae_pixel_mse"] is None else
                f"MAE pixel error in the block: **MSE {s['mae_pixel_mse']:.4f}** (pixels in 0–1, "
                f"RMSE {s['mae_pixel_mse'] ** 0.5:.3f}).")
    return (
        f"**Block**: {b['height']}×{b['width']} patches at row {b['top']}, column {b['left']} "
        f"({len(s['block_patch_ids'])} of {s['grid'][0] * s['grid'][1]} patches hidden; V-JEPA 2 sees the image as "
        f"{s['num_frames']} identical frames = {s['tubelets']} tubelet{'s' if s['tubelets'] > 1 else ''}, "
        f"{len(s['target_token_ids'])} hidden tokens, {s['num_context_tokens']} visible).\n\n"
        f"| Guess for the hidden embeddings | mean cosine to the actual ones |\n|---|---|\n{table}\n\n"
        f"{verdict}\n\n"
        f"Nearest neighbours: {s['neighbour_is_own_patch']:.0%} of the predicted patches are closest to their own "
        f"actual patch, {s['neighbour_in_block']:.0%} land inside the block. {mae_line}"
    )


def picture_descriptions(numbers: dict) -> list[str]:
    """What each output picture shows, in words (their alt texts), in the order of `mae_vs_jepa.IMAGE_ORDER`."""
    b, (rows, cols), base = numbers["block"], numbers["grid"], numbers["baselines"]
    block = f"{b['height']}×{b['width']} block"
    mae_error = "" if numbers["mae_pixel_mse"] is None else f" (pixel error {numbers['mae_pixel_mse']:.4f})"
    return [f"The image as both models see it, cut into {rows}×{cols} patches; the hidden {block}, outlined in yellow, "
            f"starts at row {b['top']}, column {b['left']}.",
            f"MAE's pixels painted into the hidden {block}{mae_error}.",
            "A close-up of the block: the real pixels on the left, MAE's on the right.",
            "The image's actual embeddings as colours, one per patch: similar colours, similar embeddings.",
            f"The same colours with V-JEPA 2's predicted embeddings pasted into the {block}: mean cosine "
            f"{numbers['mean_cosine']:+.2f} with the actual ones, against {base['context_mean']:+.2f} and "
            f"{base['nearest_context_patch']:+.2f} for the two baselines.",
            f"The cosine of each predicted embedding with the actual one over the {block}, red 1, white 0, blue -1; "
            f"the mean is {numbers['mean_cosine']:+.2f}.",
            f"For each predicted embedding, the patch whose actual embedding is nearest, lit up: "
            f"{numbers['neighbour_is_own_patch']:.0%} find their own patch, {numbers['neighbour_in_block']:.0%} land "
            f"inside the block."]


CALL_TO_ACTION = "Drag the target block"
EXAMPLE_IMAGE = str(examples.IMAGES_DIR / "chelsea.jpg")  # the image the tab opens with, its result in place

INTRO = f"""
### Hide a block, then fill it in two ways
Click on **What both models see** to move the yellow block (or use the arrows and sliders). The same
block is hidden from two models. **MAE** (left) must paint its *pixels*. **V-JEPA 2** (right) must
predict its *embeddings*: its context encoder sees only the visible patches, and its predictor is told
*where* the block is (the position-carrying mask tokens, the variable *z*). V-JEPA 2 is a video model:
the still image is fed as a static clip of {mae_vs_jepa.NUM_FRAMES} identical frames (one "tubelet"), not the 16 of the
official image evaluation, so that a click answers in about a second on a small CPU.
"""

VIEW_TEXT = """The centre square both models see, cut into 16-pixel patches. The yellow block is hidden from
both; everything else is their context."""

MAE_TEXT = """**Pixels.** MAE's guess pasted into the block, and a close-up: *real | MAE*. Its loss scores every
pixel, and the average of all plausible pixel values is a blur, so detail that cannot be known from
the context comes out smeared."""

PCA_TEXT = """**(a) Embeddings as colours.** Each patch's embedding (1024 numbers) is projected onto the 3
directions along which *this image's* embeddings vary most (PCA) and shown as RGB. Left: the actual
embeddings of the full image. Right: the same, with the predictor's guesses pasted into the block.
Similar colours mean similar embeddings: a good prediction continues the picture in concept space."""

COSINE_TEXT = """**(b) Per-patch agreement.** Cosine similarity of each predicted embedding with the actual one:
red = pointing the same way (1), white = unrelated (0), blue = opposite (−1)."""

BASELINE_TEXT = """**(c) Is that good?** The same score for two guesses that need no learning: the average of the
visible embeddings, and copying the nearest visible patch. A predictor that understood the scene
beats both."""

NEIGHBOUR_TEXT = """**(d) Nearest neighbours.** For each predicted embedding, the patch of the image whose actual
embedding is closest (lit up; green = it found its own patch, cyan = another one). If the prediction
captured *what* is hidden, its neighbours are the same kind of thing, often inside the block."""

EXPLANATION = """
### Why predict embeddings instead of pixels?
Pixels contain a lot that no one could predict from the context: the exact texture of fur, noise,
lighting. A pixel loss forces the model to spend its capacity on them and rewards hedging, which is
the blur on the left. JEPA's target is the *target encoder's* embedding of the block: the encoder is
free to leave unpredictable detail out, so the predictor is scored on what can be known (what object,
which part, how it continues). That is the chapter's claim: **predict, don't reconstruct**.

### What is computed, honestly
- The context encoder runs on the visible tokens only; the hidden tokens never enter its attention
  (transformers' `VJEPA2Model.forward` with masks would let them leak; we do not use it).
- The targets are the full image's encoder output, layer-normalised without affine: V-JEPA 2's
  training target. Cosines, baselines and neighbours are all measured against it.
- The baselines use those same full-image embeddings (which saw the block), so they are generous.
"""



def build_tab(endpoints: bool = True) -> common.ReadyExample:
    """The 6.2-6.3 tab and its `/compare_pixels_embeddings` endpoint (named when `endpoints`).

    Returns the example it opens with, for the page to show on load.
    """

    @common.gradio_errors
    @common.api_doc(grid=mae_vs_jepa.PUBLISHED_GRID, last=mae_vs_jepa.PUBLISHED_GRID - 1, frames=mae_vs_jepa.NUM_FRAMES)
    def compare_pixels_embeddings(image_path, top: float, left: float, height: float, width: float,
                                  progress=gr.Progress()):
        """Pixels vs embeddings: hide one block of an image; MAE paints its pixels, V-JEPA 2 predicts its embeddings.

        Both models see the same 256x256 centre square, cut into a {grid}x{grid} grid of 16-pixel patches. MAE
        (vit-mae-base) reconstructs the block's pixels. V-JEPA 2 (vjepa2-vitl, the image as a static clip of {frames}
        frames) encodes the visible patches alone and its predictor guesses the block's embeddings; they are scored
        by cosine against the full image's embeddings, beside two baselines that need no learning.

        Args:
            image_path: the image, as an http(s) URL (PNG, JPEG or WebP, any size).
            top: the block's top row, in patches from the top, 0 to {last}.
            left: the block's left column, in patches from the left, 0 to {last}.
            height: the block's height in patches, 1 to {grid} (the block must fit the grid and leave some context).
            width: the block's width in patches, 1 to {grid}.

        Returns:
            the model view with the hidden block outlined (PNG)
            MAE's pixels pasted into the block (PNG)
            a close-up of the block, real | MAE (PNG)
            the actual embeddings as colours (PNG; each patch's embedding projected on its 3 main directions)
            the same, with V-JEPA 2's predicted embeddings pasted into the block (PNG)
            the cosine of each predicted embedding with the actual one, red 1, white 0, blue -1 (PNG)
            for each predicted embedding, the patch whose actual embedding is nearest (PNG)
            a markdown summary
            the numbers: mean_cosine, baselines, cosine_per_patch, mae_pixel_mse, block_patch_ids, target_token_ids, ...
        """
        image = media.load_image(image_path)
        common.ensure_loaded(CHECKPOINTS, progress)
        progress(0.9, desc="Predicting the block…")
        result = mae_vs_jepa.compare(image, top, left, height, width)
        return (*[result.images[k] for k in mae_vs_jepa.IMAGE_ORDER], summary_markdown(result), result.stats(),
                result.grid)

    top0, left0, height0, width0 = mae_vs_jepa.DEFAULT_BLOCK
    common.call_to_action(CALL_TO_ACTION)
    gr.Markdown(INTRO)
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            image = common.image_input("Image", value=EXAMPLE_IMAGE, height=260, elem_id="mvj-image")
            gr.Examples(examples=examples.images(), inputs=image, cache_examples=False)
            with gr.Row():
                height = gr.Slider(1, mae_vs_jepa.PUBLISHED_GRID, value=height0, step=1, label="Block height (patches)",
                                   elem_id="mvj-height")
                width = gr.Slider(1, mae_vs_jepa.PUBLISHED_GRID, value=width0, step=1, label="Block width (patches)",
                                  elem_id="mvj-width")
            with gr.Row():
                top = gr.Slider(0, mae_vs_jepa.PUBLISHED_GRID - 1, value=top0, step=1, label="Top row", elem_id="mvj-top")
                left = gr.Slider(0, mae_vs_jepa.PUBLISHED_GRID - 1, value=left0, step=1, label="Left column",
                                 elem_id="mvj-left")
            with gr.Row():
                up = gr.Button("↑", size="sm", min_width=40)
                down = gr.Button("↓", size="sm", min_width=40)
                go_left = gr.Button("←", size="sm", min_width=40)
                go_right = gr.Button("→", size="sm", min_width=40)
            run = gr.Button("Hide the block and predict", variant="primary", elem_id="mvj-run")
        with gr.Column(scale=1, min_width=300):
            view_out = common.output_image("What both models see: click to move the block", elem_id="mvj-view",
                                       height=300)
            gr.Markdown(VIEW_TEXT)
            mae_out = common.output_image("MAE: pixels painted into the block", elem_id="mvj-mae", height=260)
            closeup_out = common.output_image("Close-up: real | MAE", height=220)
            gr.Markdown(MAE_TEXT)
        with gr.Column(scale=2, min_width=400):
            with gr.Row():
                pca_actual = common.output_image("(a) Actual embeddings (PCA colours)", elem_id="mvj-pca-actual",
                                                 height=280, elem_classes=[common.RESULT])
                pca_predicted = common.output_image("(a) Predicted pasted into the block",
                                                elem_id="mvj-pca-predicted", height=280, elem_classes=[common.RESULT])
            gr.Markdown(PCA_TEXT)
            with gr.Row():
                cosine_out = common.output_image("(b) Cosine: predicted vs actual", height=280)
                neighbours_out = common.output_image("(d) Nearest neighbours", height=280)
            gr.Markdown(COSINE_TEXT + "\n\n" + NEIGHBOUR_TEXT)
            gr.Markdown(BASELINE_TEXT)
            summary = gr.Markdown(elem_id="mvj-summary")
            with gr.Accordion("All numbers (what the API returns)", open=False):
                numbers = gr.JSON(label="Numbers")
    gr.Markdown(EXPLANATION)
    grid = gr.State(None)  # V-JEPA 2's patch grid, once known: clicks and nudges move the block on it

    outputs = [view_out, mae_out, closeup_out, pca_actual, pca_predicted, cosine_out, neighbours_out,
               summary, numbers, grid]
    common.describe_pictures(numbers, outputs[:len(mae_vs_jepa.IMAGE_ORDER)], picture_descriptions)
    block_inputs = [image, top, left, height, width]
    run.click(compare_pixels_embeddings, block_inputs, outputs, api_name=common.endpoint("compare_pixels_embeddings", endpoints),
              concurrency_id=common.MODEL_CONCURRENCY_ID)

    def rerun_if_image(image_path, top, left, height, width, progress=gr.Progress()):
        if image_path is None:
            return [gr.skip()] * len(outputs)
        return compare_pixels_embeddings(image_path, top, left, height, width, progress)

    def rerun(event):
        event.then(rerun_if_image, block_inputs, outputs, api_name=False, concurrency_id=common.MODEL_CONCURRENCY_ID)

    def sliders_on(grid, block):
        return (gr.Slider(maximum=grid.rows - 1, value=block.top), gr.Slider(maximum=grid.cols - 1, value=block.left),
                gr.Slider(maximum=grid.rows, value=block.height), gr.Slider(maximum=grid.cols, value=block.width), grid)

    @common.gradio_errors
    def fit_controls(image_path, top, left, height, width, progress=gr.Progress()):
        """A new image: load the models (first time only) and fit the sliders to V-JEPA 2's patch grid."""
        if image_path is None:
            return [gr.skip()] * 5
        common.ensure_loaded(CHECKPOINTS, progress)
        config = jepa.load().model.config
        grid = masks.PatchGrid.square(config.crop_size, config.patch_size)
        return sliders_on(grid, masks.fit_block(grid, top, left, height, width))

    @common.gradio_errors
    def place_block(grid, height, width, evt: gr.SelectData):
        """A click on the model view only sets the position controls; the computation follows."""
        if grid is None or evt.index is None:  # no result yet, or a click beside the picture
            return [gr.skip()] * 4
        block = masks.block_at_pixel(grid, *evt.index[:2], height, width)
        return block.top, block.left, block.height, block.width

    def nudger(direction):
        @common.gradio_errors
        def move(grid, top, left, height, width):
            grid = grid or masks.PatchGrid(mae_vs_jepa.PUBLISHED_GRID, mae_vs_jepa.PUBLISHED_GRID, 16)
            return mae_vs_jepa.nudge(direction, grid, top, left, height, width)
        return move

    @common.gradio_errors
    def resize_block(grid, top, left, height, width):
        """A new size keeps the block inside the grid by moving it, instead of failing.

        A block that fits is left alone: leaving the size's number box with the keyboard fires this too, and
        its answer must not undo the position the learner sets next."""
        if grid is None:
            return [gr.skip()] * 2
        block = masks.fit_block(grid, top, left, height, width)
        if (block.top, block.left) == (top, left):
            return [gr.skip()] * 2
        return block.top, block.left

    controls = [top, left, height, width]
    rerun(image.change(fit_controls, block_inputs, [*controls, grid], api_name=False,
                       concurrency_id=common.MODEL_CONCURRENCY_ID))
    rerun(view_out.select(place_block, [grid, height, width], controls, api_name=False))
    for button, direction in [(up, "up"), (down, "down"), (go_left, "left"), (go_right, "right")]:
        rerun(button.click(nudger(direction), [grid, *controls], [top, left], api_name=False))
    for slider in (height, width):
        rerun(slider.release(resize_block, [grid, *controls], [top, left], api_name=False))
    for slider in (top, left):
        slider.release(rerun_if_image, block_inputs, outputs, api_name=False, concurrency_id=common.MODEL_CONCURRENCY_ID)

    def example_result(progress):
        *sliders, grid = fit_controls(EXAMPLE_IMAGE, *mae_vs_jepa.DEFAULT_BLOCK, progress)
        block = masks.fit_block(grid, *mae_vs_jepa.DEFAULT_BLOCK)
        return (*sliders, *compare_pixels_embeddings(EXAMPLE_IMAGE, block.top, block.left, block.height, block.width,
                                                     progress))

    return common.ReadyExample("mae_vs_jepa", [*controls, *outputs], example_result)
