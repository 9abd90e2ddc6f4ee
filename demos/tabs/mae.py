"""6.1 tab: an image, a mask ratio and seed, the reconstruction; the `/mae_reconstruct` endpoint.

The first screen holds the gesture and the claim: the ratio, the masked input (redrawn while the ratio moves, no
model) beside MAE's reconstruction, and MAE's error next to a constant colour's. The rest is folded.
"""

import random

import gradio as gr

import checkpoints
from demos import examples, images, masks, sweeps
from demos.cache import LRUCache
from demos.compute import mae, mae_sweep
from demos.tabs import actions, events, links, ready_examples, widgets
from demos.tabs.concept import Concept
from demos.tabs.sweep_player import SweepPlayer

# Below this (an RMSE under 1 % of the range) the hidden patches are, to the eye, all one colour.
CONSTANT_IS_PERFECT_MSE = 1e-4


def summary_markdown(result: mae.Reconstruction) -> str:
    """The claim in one line: how many patches were hidden, and MAE's error beside a collapsed model's."""
    stats = result.stats()
    head = f"**{stats['num_hidden']} of {stats['num_patches']} patches hidden.**"
    if result.hidden_mse is None:
        return head + " Nothing is hidden, so there is nothing to reconstruct: raise the ratio."
    best = result.best_constant_mse
    line = (f"{head} MAE's error on them: **{result.hidden_mse:.4f}**; one constant colour, at best: "
            f"**{best:.4f}**.")
    if best < CONSTANT_IS_PERFECT_MSE:
        return line + (" Here the hidden patches are all one colour, so a constant would do: hide patches that "
                       "differ from each other to see why MAE cannot collapse.")
    share = f" MAE's error is {result.hidden_mse / best:.0%} of the constant's"
    if result.hidden_mse >= best:
        return line + share + ": here MAE does no better than a single colour."
    return line + share + (": *collapse isn't the danger here, a constant output can't possibly rebuild different "
                           "patches.*")


def picture_descriptions(numbers: dict) -> list[str]:
    """What each output picture shows, in words (their alt texts), in the order of the outputs."""
    hidden, total, (rows, cols), patch = numbers["num_hidden"], numbers["num_patches"], numbers["grid"], numbers["patch_size"]
    visible = total - hidden
    error = ("No patch is hidden, so there is no error to show." if numbers["hidden_mse"] is None else
             f"The squared error on each of the {hidden} hidden patches, from dark (none) to bright ({mae.ERROR_MAP_MAX} "
             f"or more); the mean is {numbers['hidden_mse']:.4f}.")
    return [f"The image as the model sees it: a square cut into {rows}×{cols} patches of {patch} pixels.",
            masked_description(hidden, total),
            f"MAE's raw reconstruction: its guess for every one of the {total} patches, the visible ones included.",
            f"The reconstruction: the {visible} visible patches of the image, and MAE's guesses painted into the "
            f"{hidden} hidden ones.",
            error]


def masked_description(hidden: int, total: int) -> str:
    return f"The image with {hidden} of {total} patches hidden, in grey."


EXPLANATION = """
### What you are looking at
MAE cuts the image into patches, **hides most of them**, and trains a ViT to paint the hidden pixels
back from the few it can see. The encoder only ever sees the visible patches; a light decoder fills
in the rest. The reconstruction is shown as the MAE paper shows results: real pixels where the model
could see, its guesses where it could not.

### Why a high ratio still works, and what the real danger is
At 75% and beyond, the hidden patches all differ from each other, so a model that output one constant
colour would score badly everywhere: the task cannot be "solved" trivially. The line under the pictures
puts a number on it: MAE's error beside the error of the best single colour for those patches (the
hidden pixels' own mean, which no model could know; the details also give the image's mean colour).
The subtler danger is the *target*: pixels. Every hidden patch is scored on exact colours, so capacity
goes into texture, lighting and noise that no one could predict, which is why reconstructions look
**blurry** exactly where detail is unpredictable (compare the error map with the image). The next page
asks: what if we predicted a *representation* of the hidden region instead?
"""

CALL_TO_ACTION = "Drag the mask ratio up to 75%+: MAE paints the hidden patches back as you move"
EXAMPLE_IMAGE = str(examples.IMAGES_DIR / "chelsea.jpg")  # the image the tab opens with, its result in place
EXAMPLE_RATIO, EXAMPLE_SEED, EXAMPLE_CHECKPOINT = 0.75, mae_sweep.PAGE_SEED, mae_sweep.PAGE_CHECKPOINT


def example_call() -> tuple:
    """The arguments of the example's `/mae_reconstruct` call."""
    return EXAMPLE_IMAGE, EXAMPLE_RATIO, EXAMPLE_SEED, EXAMPLE_CHECKPOINT


def calls(index: int) -> dict[str, tuple]:
    """The endpoint's call on bundled picture `index` (`Concept.calls`)."""
    return {"/mae_reconstruct": (examples.image(index), EXAMPLE_RATIO, EXAMPLE_SEED, EXAMPLE_CHECKPOINT)}


@actions.action("mae_reconstruct")
@actions.api_doc(max_ratio=masks.MAX_MASK_RATIO, max_seed=masks.MAX_SEED, error_max=mae.ERROR_MAP_MAX,
                checkpoints=", ".join(f'"{name}"' for name in checkpoints.MAE_CHECKPOINTS))
def mae_reconstruct(image_path, mask_ratio: float, mask_seed: int, checkpoint: str, progress=gr.Progress()):
    """Masked autoencoder (ViT-MAE): hide most of an image's patches and see the model paint their pixels back.

    The image is centre-cropped to a square and resized to the model's input (224 px, cut into 16-pixel
    patches, a 14x14 grid; vit-mae-huge: 14-pixel patches, 16x16). The encoder sees only the visible patches;
    the decoder reconstructs every pixel of the hidden ones. Reconstructions blur where detail cannot be
    known from the context: that is the cost of a pixel target. Beside MAE's error, what a constant output
    (one colour in every hidden patch) would score: a collapsed model cannot rebuild different patches.

    Args:
        image_path: the image, as an http(s) URL (PNG, JPEG or WebP, any size).
        mask_ratio: share of the patches hidden, 0 to {max_ratio} (MAE trains at 0.75: 147 of 196 patches hidden).
        mask_seed: whole number, 0 to {max_seed}; the same seed and ratio hide the same patches.
        checkpoint: which ViT-MAE: {checkpoints} (larger ones reconstruct better).

    Returns:
        the image as the model sees it (PNG, 224x224 pixels)
        the masked input, hidden patches grey (PNG)
        the raw reconstruction of every patch (PNG)
        the reconstruction with the visible patches pasted back, as the MAE paper shows it (PNG)
        the squared error on each hidden patch, bright = {error_max} or more (PNG)
        a markdown summary: the hidden patches, MAE's error and the best constant colour's
        the numbers: hidden_mse (pixel MSE on the hidden patches, 0-1), model_loss, best_constant_mse and
        image_mean_colour_mse (what one colour in every hidden patch would score), num_hidden, grid,
        hidden_patch_ids, ...
    """
    image = images.load_image(image_path)
    ratio, seed = masks.validate_ratio(mask_ratio), masks.validate_seed(mask_seed)
    checkpoint = mae.validate_checkpoint(checkpoints.get(checkpoint).name)
    actions.ensure_loaded([checkpoint], progress)
    result = mae_sweep.cached(image, checkpoint, ratio, seed)
    if result is None and mae_sweep.on_slider(ratio) and mae_sweep.shared(image, checkpoint, seed):
        # The sweep every learner drags over: one device call for every ratio of the slider.
        progress(0.5, desc="Reconstructing at every ratio of the slider, once for everyone…")
        result = mae_sweep.sweep(image, checkpoint, seed, keep_on_disk=True)[0][mae_sweep.slider_step(ratio)]
    if result is None:
        progress(0.9, desc="Reconstructing…")
        result = mae.reconstruct(image, checkpoint, ratio=ratio, seed=seed)
    return (result.model_view, result.masked, result.reconstruction, result.pasted, result.error_map,
            summary_markdown(result) + actions.device_note(), {**result.stats(), **actions.device_numbers()})


def reconstruct_if_image(image_path, mask_ratio, mask_seed, checkpoint, progress=gr.Progress()):
    """A new picture or a new mask means something only once there is an image; with one, reconstruct at once."""
    if image_path is None:
        return [gr.skip()] * 7
    return mae_reconstruct(image_path, mask_ratio, mask_seed, checkpoint, progress)


def preview_text(preview: mae.MaskPreview) -> str:
    return (f"**{preview.num_hidden} of {preview.grid.num_patches} patches will be hidden.** Release the slider or "
            "press **Reconstruct** to see MAE paint them back.")


@actions.gradio_errors
def preview_mask(image_path, mask_ratio, mask_seed, checkpoint):
    """A new seed or checkpoint: the patches that will be hidden, drawn without a model (no queue), and no playback
    until the new mask's sweep is there."""
    if image_path is None:
        return gr.skip(), gr.skip(), gr.skip()
    preview = mae.mask_preview(images.load_image(image_path), mae.validate_checkpoint(checkpoint),
                               ratio=masks.validate_ratio(mask_ratio), seed=masks.validate_seed(mask_seed))
    return (gr.Image(preview.masked, alt_text=masked_description(preview.num_hidden, preview.grid.num_patches)),
            preview_text(preview), SweepPlayer.stopped())


# ---------------------------------------------------------------------------------------------
# The sweep the page plays back while the ratio moves
# ---------------------------------------------------------------------------------------------

PLAYBACKS = LRUCache(mae_sweep.SWEEPS_KEPT)  # sweep key -> the player's payload (its sprite sheet encoded once)


def playback(results: dict) -> sweeps.Playback:
    """Every ratio's masked input, reconstruction and claim line, as the page shows them after a run."""
    ratios, shown = list(results), list(results.values())
    return sweeps.Playback(
        settings=[[ratio] for ratio in ratios],
        pictures={"masked": [r.masked for r in shown], "pasted": [r.pasted for r in shown]},
        alts={"masked": [picture_descriptions(r.stats())[1] for r in shown],
              "pasted": [picture_descriptions(r.stats())[3] for r in shown]},
        texts={"summary": [sweeps.markdown_html(summary_markdown(r)) for r in shown]},
        note=f"Live: drag the ratio, MAE's reconstruction at all {len(ratios)} of its steps is ready.")


def preview_playback(previews: dict) -> sweeps.Playback:
    """While the sweep is computed: every ratio's masked input (no model needed)."""
    shown = list(previews.values())
    return sweeps.Playback(
        settings=[[ratio] for ratio in previews], pictures={"masked": [p.masked for p in shown]},
        alts={"masked": [masked_description(p.num_hidden, p.grid.num_patches) for p in shown]},
        texts={"summary": [sweeps.markdown_html(preview_text(p)) for p in shown]},
        note="Reconstructing at every ratio… meanwhile the masked input follows the slider.")


@actions.action()
def play_sweep(image_path, mask_seed, checkpoint, progress=gr.Progress()):
    """After a result: the reconstruction at every step of the slider, for the page to play while the ratio moves
    (the masks at once, the reconstructions once computed: one device call)."""
    if image_path is None:
        yield gr.skip()
        return
    image, seed = images.load_image(image_path), masks.validate_seed(mask_seed)
    checkpoint = mae.validate_checkpoint(checkpoints.get(checkpoint).name)
    actions.ensure_loaded([checkpoint], progress)
    key = mae_sweep.key(image, checkpoint, seed)
    payload = PLAYBACKS.get(key)
    if payload is None:
        if mae_sweep.SWEEPS.get(key) is None:
            yield SweepPlayer(sweep=preview_playback(mae_sweep.previews(image, checkpoint, seed)).payload())
        results, _ = mae_sweep.sweep(image, checkpoint, seed, keep_on_disk=mae_sweep.shared(image, checkpoint, seed))
        payload = playback(results).payload()
        PLAYBACKS.put(key, payload)
    yield SweepPlayer(sweep=payload)


def new_seed() -> int:
    return random.randint(0, masks.MAX_SEED)


def build_tab(endpoints: bool = True) -> ready_examples.ReadyExample:
    """The 6.1 tab: the gesture and the claim first, the rest folded; the `/mae_reconstruct` endpoint (named when
    `endpoints`). Returns the example it opens with, for the page to show on load."""
    widgets.call_to_action(CALL_TO_ACTION)
    notice = gr.Markdown(visible=False)
    with gr.Row(equal_height=True):
        masked_out = widgets.output_image("Masked input (grey = hidden)", elem_id="mae-masked",
                                         height=widgets.CLAIM_PICTURE_PX, elem_classes=[widgets.CLAIM])
        pasted_out = widgets.output_image("MAE's reconstruction", elem_id="mae-pasted",
                                         height=widgets.CLAIM_PICTURE_PX, elem_classes=[widgets.RESULT, widgets.CLAIM])
    with gr.Row(equal_height=True):
        ratio = gr.Slider(0.0, masks.MAX_MASK_RATIO, value=EXAMPLE_RATIO, step=0.05, label="Mask ratio",
                          info="Share of patches hidden (MAE trains at 0.75).", elem_id="mae-ratio", scale=3)
        with gr.Column(scale=1, min_width=160):
            run = gr.Button("Reconstruct", variant="primary", elem_id="mae-run")
            new_mask = gr.Button("🎲 New random mask", size="sm")
    player = SweepPlayer(source="mae-ratio", kind="slider", pictures={"masked": "#mae-masked", "pasted": "#mae-pasted"},
                         texts={"summary": "#mae-summary"}, elem_id="mae-live")
    summary = gr.Markdown(elem_id="mae-summary", elem_classes=[widgets.CLAIM])
    with gr.Accordion("Another picture, another mask, a larger model", open=False):
        with gr.Row():
            image = widgets.image_input("Image", value=EXAMPLE_IMAGE, height=220, elem_id="mae-image")
            with gr.Column():
                picture_examples = gr.Examples(examples=examples.images(), inputs=image, cache_examples=False)
                seed = gr.Number(value=EXAMPLE_SEED, precision=0, minimum=0, maximum=masks.MAX_SEED,
                                 label="Mask seed", info="Same seed and ratio, same hidden patches.")
                checkpoint = gr.Dropdown(
                    choices=[(checkpoints.get(n).hub_id, n) for n in checkpoints.MAE_CHECKPOINTS],
                    value=EXAMPLE_CHECKPOINT, label="Checkpoint",
                    info="Larger models reconstruct better; ViT-H uses 14-pixel patches.")
    with gr.Accordion("More pictures: the model's view, the raw reconstruction, the error", open=False):
        with gr.Row():
            view_out = widgets.output_image("What the model sees")
            raw_out = widgets.output_image("Raw reconstruction (every patch)")
            error_out = widgets.output_image(f"Error on hidden patches (bright = {mae.ERROR_MAP_MAX} or more)")
    with gr.Accordion("What you are looking at, and the numbers", open=False):
        gr.Markdown(EXPLANATION)
        numbers = gr.JSON(label="Numbers (what the API returns)")
    link = links.Link(CONCEPT_PATH, image, examples.images(), {"ratio": ratio, "seed": seed, "model": checkpoint})
    links.link_control(link)

    inputs = [image, ratio, seed, checkpoint]
    outputs = [view_out, masked_out, raw_out, pasted_out, error_out, summary, numbers]
    widgets.describe_pictures(numbers, outputs[:5], picture_descriptions)
    model_args = dict(api_name=False, concurrency_id=events.MODEL_CONCURRENCY_ID)

    def then_play(event):
        """After a result, its sweep for the player (one session's newest only)."""
        event.then(play_sweep, [image, seed, checkpoint], player, trigger_mode="always_last", show_progress="hidden",
                   **model_args)

    then_play(run.click(mae_reconstruct, inputs, outputs, concurrency_id=events.MODEL_CONCURRENCY_ID,
                        api_name=events.endpoint("mae_reconstruct", endpoints)))
    # While the ratio moves the player shows each step from the sweep, in the page; its release runs the endpoint,
    # which answers from the same sweep.
    ratio.release(reconstruct_if_image, inputs, outputs, trigger_mode="always_last", **model_args)
    gr.on([seed.input, checkpoint.input], preview_mask, inputs, [masked_out, summary, player], api_name=False,
          queue=False, show_progress="hidden", trigger_mode="always_last")
    then_play(new_mask.click(new_seed, None, seed, api_name=False, queue=False).then(
        reconstruct_if_image, inputs, outputs, **model_args))
    # A new picture: the old picture's sweep stops playing at once, and its own follows its first result.
    events.on_pick(image, picture_examples, SweepPlayer.stopped, None, player, queue=False, show_progress="hidden",
                   api_name=False)
    for picked in events.on_pick(image, picture_examples, reconstruct_if_image, inputs, outputs, **model_args):
        then_play(picked)

    def run_linked(values: dict, progress):
        return mae_reconstruct(*(values.get(component, default) for component, default in
                                 zip(inputs, example_call(), strict=True)), progress)

    return ready_examples.ReadyExample("mae", outputs, lambda progress: mae_reconstruct(*example_call(), progress),
                                       link=link, run=run_linked, notice=notice, then=then_play)


CONCEPT_PATH = "masked-autoencoder"
CONCEPT = Concept("mae", "6.1 Masked autoencoder", CONCEPT_PATH, build_tab, CALL_TO_ACTION,
                  endpoint="/mae_reconstruct", example_call=example_call, calls=calls,
                  run_button="mae-run", summary="mae-summary", example_summary="147 of 196 patches hidden", pictures=5)
