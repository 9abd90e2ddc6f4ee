"""The 6.2-6.3 page's words: its prose, the summaries of a result, the captions beside the pictures and their alt texts."""

from demos.compute import mae_vs_jepa
from demos.compute import noise_sweep as sweeps
from demos.noise import GRAIN, JPEG
from demos.tabs import actions

INTRO = """The yellow block is hidden from both models. **MAE** paints its *pixels*; **V-JEPA 2** predicts its
*embeddings* from the visible patches alone, told only *where* the block is."""

FRAMES_TEXT = f"""
### A still picture for a video model
V-JEPA 2 is a video model: the picture is fed as a static clip of identical frames. Its image evaluation
repeats a picture {mae_vs_jepa.GPU_FRAMES} times ({mae_vs_jepa.GPU_FRAMES // 2} tubelets of 2 frames),
and so does this page on a GPU; on a CPU it feeds 2 frames (one tubelet, 8× fewer tokens), so that a drag answers
within seconds. The line beside the picture says which input this result had.
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

### Add noise, and watch which target moves
Pick **film grain** (its level is the grain's standard deviation, in 8-bit levels) or **JPEG compression**
(a quality; lower is coarser). Both models then see the noisy picture, and the plot follows the same
block from the clean picture to your level. Left, pixels: MAE's error against its target, which now
carries the noise, beside the noise itself, which no model could predict from the context. Right,
embeddings: how far V-JEPA 2's target moves (the cosine of the block's target embeddings in the noisy and
the clean picture) and the predictor's cosine with it. The chapter: "Force a model to predict every
pixel and it burns capacity on textures, noise, even JPEG artifacts ... JEPA predicts the gist."

### What is computed, honestly
- The context encoder runs on the visible tokens only; the hidden tokens never enter its attention
  (transformers' `VJEPA2Model.forward` with masks would let them leak; we do not use it).
- The targets are the full image's encoder output, layer-normalised without affine: V-JEPA 2's
  training target. Cosines, baselines and neighbours are all measured against it.
- The baselines use those same full-image embeddings (which saw the block), so they are generous.
"""


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
    if not result.noise.is_clean:
        mae_line += (f" Both models saw the picture with **{result.noise.label}**: in the block it differs from the "
                     f"clean picture by MSE {s['block_noise_mse']:.4f}.")
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


def sweep_markdown(result: sweeps.NoiseSweep) -> str:
    """What the noise did to each model's target, from the clean picture to the learner's level."""
    clean, last = result.levels[0], result.levels[-1]
    unpredictable = NOISE_NOBODY_PREDICTS[result.noise.kind]
    return (f"**{last.noise.label}**, same block. MAE's pixel error went from {clean.mae_pixel_mse:.4f} (clean) to "
            f"**{last.mae_pixel_mse:.4f}**; the added noise alone "
            f"accounts for {last.noise_mse:.4f} of its target ({unpredictable}). The JEPA target has cosine "
            f"**{last.target_cosine:.3f}** with the clean picture's (1: it did not move); the predictor's cosine "
            f"with its target went from {clean.predictor_cosine:+.3f} to {last.predictor_cosine:+.3f}.")


NOISE_NOBODY_PREDICTS = {
    GRAIN: "fresh random values in every pixel, which no context can tell",
    JPEG: "artefacts of the hidden pixels' own compression, which the context cannot show",
}
NOISE_HINT = "Pick film grain or JPEG compression above to compare the two targets over noise levels."


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
            f"inside the block.",
            "A close-up of the block's embeddings as colours: the actual ones on the left, V-JEPA 2's predicted ones "
            "on the right."]


def sweep_description(numbers: dict) -> list[str]:
    """What the noise-levels plot shows, in words (its alt text)."""
    labels = [level["label"] for level in numbers["levels"]]
    return [f"A plot over {len(labels)} noise levels, from {labels[0]} to {labels[-1]}: MAE's pixel error in the block "
            f"goes from {numbers['mae_pixel_mse'][0]:.4f} to {numbers['mae_pixel_mse'][-1]:.4f}, of which the added noise "
            f"is {numbers['noise_mse'][-1]:.4f}; the JEPA target's cosine with the clean one ends at "
            f"{numbers['target_cosine'][-1]:.3f}, the predictor's cosine at {numbers['predictor_cosine'][-1]:+.3f}."]


def mae_caption(numbers: dict) -> str:
    """Under MAE's close-up: its pixel error, beside the two pixel baselines, and a verdict."""
    mse, base = numbers["mae_pixel_mse"], numbers["mae_baselines"]
    if mse is None:
        return ""
    copy, mean = base["nearest_context_patch"], base["context_mean_colour"]
    verdict = ("MAE **beats both**." if mse < min(copy, mean) else
               "MAE does **not** beat the best of them here.")
    return (f"Pixel error in the block: **{mse:.4f}** (MSE, lower is better). Copying the nearest visible patch: "
            f"{copy:.4f}; the visible pixels' mean colour: {mean:.4f}. {verdict}")


def jepa_caption(numbers: dict) -> str:
    """Under JEPA's close-up: the predictor's cosine, beside the two embedding baselines, and a verdict."""
    cosine, base = numbers["mean_cosine"], numbers["baselines"]
    mean, copy = base["context_mean"], base["nearest_context_patch"]
    verdict = ("The predictor **beats both**." if cosine > max(mean, copy) else
               "The predictor does **not** beat the best of them here.")
    return (f"Cosine with the actual embeddings: **{cosine:+.3f}** (higher is better). The visible embeddings' "
            f"mean: {mean:+.3f}; copying the nearest visible patch: {copy:+.3f}. {verdict}")


def block_caption(numbers: dict) -> str:
    """Beside the picker: where the block is, and how V-JEPA 2 was fed the picture."""
    b = numbers["block"]
    return (f"**Block at row {b['top']}, column {b['left']}**, {b['height']}×{b['width']} patches, hidden from both "
            f"models. V-JEPA 2 saw the picture as {numbers['frames_reason']}." + actions.notes_caption(numbers))
