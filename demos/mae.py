"""6.1 Masked autoencoder: hide a ratio of an image's patches and let ViT-MAE paint them back.

`reconstruct` is the computation (arrays in, arrays and numbers out); `build_tab` wires it into the
page and names the API endpoint `/mae_reconstruct`.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import checkpoints
from demos import masks, media, viz
from demos.errors import UserError

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples" / "images"
# Per-patch mean squared error (pixels in 0..1) at which the heat map saturates. Fixed, so maps made
# at different ratios or on different images can be compared by eye.
ERROR_MAP_MAX = 0.05

# ViT-MAE reads `config.mask_ratio` at call time; the model is shared between requests, so the ratio
# is set and used under one lock.
_forward_lock = threading.Lock()


@dataclass
class Reconstruction:
    model_view: np.ndarray  # (S, S, 3) uint8: the image exactly as the model sees it
    masked: np.ndarray  # model view with hidden patches grey
    reconstruction: np.ndarray  # the decoder's raw output for every patch
    pasted: np.ndarray  # reconstruction on hidden patches, the real pixels elsewhere (MAE paper figures)
    error_map: np.ndarray  # per-patch squared error on hidden patches as a heat map
    grid: masks.PatchGrid
    hidden_ids: np.ndarray  # row-major patch ids that were hidden
    per_patch_mse: np.ndarray  # (rows, cols), pixels in 0..1; NaN on visible patches
    hidden_mse: float | None  # mean over hidden patches, pixels in 0..1; None when nothing is hidden
    model_loss: float | None  # MAE's own training loss on the hidden patches (ImageNet-normalised pixels)

    def stats(self) -> dict:
        """Plain numbers for the API and the page."""
        return {
            "hidden_mse": self.hidden_mse,
            "model_loss": self.model_loss,
            "num_hidden": int(len(self.hidden_ids)),
            "num_patches": self.grid.num_patches,
            "grid": [self.grid.rows, self.grid.cols],
            "patch_size": self.grid.patch_size,
            "hidden_patch_ids": [int(i) for i in self.hidden_ids],
        }


@checkpoints.gpu_task
def reconstruct(image: np.ndarray, checkpoint: str = "vit-mae-base", *, ratio: float = 0.75, seed: int = 0,
                hidden_ids=None, image_size: int | None = None) -> Reconstruction:
    """Hide patches and reconstruct them with ViT-MAE.

    image: HxWx3 uint8 (see `media.load_image`). The hidden patches are `hidden_ids` when given (exact
    set, row-major), else the `ratio` of patches chosen by `seed` (same seed and ratio, same patches).
    image_size: the side the model sees; defaults to the checkpoint's (224). Another size works through
    ViT-MAE's position-embedding interpolation (the JEPA comparison uses V-JEPA 2's 256).
    """
    import torch

    if checkpoint not in checkpoints.MAE_CHECKPOINTS:
        raise UserError(f"'{checkpoint}' is not a masked-autoencoder checkpoint; choose one of "
                              f"{', '.join(checkpoints.MAE_CHECKPOINTS)}.")
    loaded = checkpoints.load(checkpoint)
    model, processor = loaded.model, loaded.processor
    config = model.config
    size = int(image_size or config.image_size)
    grid = masks.PatchGrid.square(size, config.patch_size)  # 14 px patches on ViT-H: never assume 16
    if hidden_ids is None:
        hidden_ids = masks.random_hidden_ids(grid.num_patches, masks.validate_ratio(ratio), masks.validate_seed(seed))
    hidden_ids = np.sort(np.asarray(hidden_ids, dtype=np.int64))

    view = media.center_square(image, size)
    pixel_values = processor(images=view, do_resize=False, return_tensors="pt")["pixel_values"]
    device, dtype = checkpoints.device_and_dtype()
    noise, mask_ratio = masks.mae_noise(grid.num_patches, hidden_ids)
    with _forward_lock, torch.inference_mode():
        config.mask_ratio = mask_ratio
        outputs = model(pixel_values.to(device, dtype), noise=noise.to(device),
                        interpolate_pos_encoding=size != config.image_size)
        reconstructed = model.unpatchify(outputs.logits, (size, size))
    hidden = masks.hidden_mask(grid.num_patches, hidden_ids)
    if not np.array_equal(outputs.mask[0].cpu().numpy().astype(bool), hidden):
        raise RuntimeError("ViT-MAE hid other patches than asked; the noise/ratio contract changed")

    mean = torch.tensor(processor.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(processor.image_std).view(1, 3, 1, 1)
    recon01 = (reconstructed.float().cpu() * std + mean).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    recon_u8 = (recon01 * 255).round().astype(np.uint8)
    pixel_hidden = viz.patch_mask_image(hidden.reshape(grid.rows, grid.cols), grid.patch_size)
    pasted = np.where(pixel_hidden[..., None], recon_u8, view)

    squared = ((recon01 - view.astype(np.float32) / 255) ** 2).mean(axis=2)
    per_patch = squared.reshape(grid.rows, grid.patch_size, grid.cols, grid.patch_size).mean(axis=(1, 3))
    per_patch = np.where(hidden.reshape(grid.rows, grid.cols), per_patch, np.nan)
    any_hidden = bool(hidden.any())
    return Reconstruction(
        model_view=view,
        masked=viz.grey_out(view, pixel_hidden),
        reconstruction=recon_u8,
        pasted=pasted,
        error_map=error_heat_map(view, per_patch, grid),
        grid=grid,
        hidden_ids=hidden_ids,
        per_patch_mse=per_patch,
        hidden_mse=float(np.nanmean(per_patch)) if any_hidden else None,
        model_loss=float(outputs.loss) if any_hidden else None,
    )


def error_heat_map(view: np.ndarray, per_patch_mse: np.ndarray, grid: masks.PatchGrid) -> np.ndarray:
    """Hidden patches coloured by their error (inferno, 0..ERROR_MAP_MAX); visible ones a dim photo."""
    heat = viz.upsample_patches(viz.colormap(np.nan_to_num(per_patch_mse), 0.0, ERROR_MAP_MAX), grid.patch_size)
    hidden_px = viz.patch_mask_image(~np.isnan(per_patch_mse), grid.patch_size)
    dim = (view.astype(np.float32) * 0.35).astype(np.uint8)
    return np.where(hidden_px[..., None], heat, dim)


def summary_markdown(result: Reconstruction, checkpoint: str) -> str:
    stats = result.stats()
    head = (f"**{stats['num_hidden']} of {stats['num_patches']} patches hidden** "
            f"({stats['grid'][0]}×{stats['grid'][1]} grid of {stats['patch_size']}-pixel patches, "
            f"`{checkpoints.get(checkpoint).hub_id}`).")
    if result.hidden_mse is None:
        return head + " Nothing is hidden, so there is nothing to reconstruct: raise the ratio."
    return (head + f"\n\nMean squared error on the hidden patches: **{result.hidden_mse:.4f}** (pixels in 0–1; "
            f"RMSE {result.hidden_mse ** 0.5:.3f}). MAE's own training loss there (normalised pixels): "
            f"{result.model_loss:.3f}.")


EXPLANATION = """
### What you are looking at
MAE cuts the image into patches, **hides most of them**, and trains a ViT to paint the hidden pixels
back from the few it can see. The encoder only ever sees the visible patches; a light decoder fills
in the rest. The pasted view is how the MAE paper shows results: real pixels where the model could
see, its guesses where it could not.

### Why a high ratio still works, and what the real danger is
At 75% and beyond, the hidden patches all differ from each other, so a model that output one constant
colour would score badly everywhere: the task cannot be "solved" trivially, the encoder has to learn
about objects and shapes. The subtler danger is the *target*: pixels. Every hidden patch is scored on
exact colours, so capacity goes into texture, lighting and noise that no one could predict, which is
why reconstructions look **blurry** exactly where detail is unpredictable (compare the error map with
the image). The next tab asks: what if we predicted a *representation* of the hidden region instead?
"""


def _new_seed() -> int:
    return random.randint(0, masks.MAX_SEED)


def build_tab() -> None:
    """The 6.1 tab: inputs, outputs, explanation and the `/mae_reconstruct` endpoint."""
    import gradio as gr

    from demos import ui

    @ui.gradio_errors
    def mae_reconstruct(image_path, mask_ratio: float, mask_seed: int, checkpoint: str,
                        progress=gr.Progress()):
        """Hide `mask_ratio` of the image's patches (chosen by `mask_seed`) and reconstruct them with ViT-MAE.

        Returns the image as the model sees it, the masked input, the raw reconstruction, the
        reconstruction with the visible patches pasted back, the per-patch error heat map, a summary,
        and the numbers (hidden_mse, model_loss, num_hidden, grid, patch_size, hidden_patch_ids).
        """
        image = media.load_image(image_path)
        ratio, seed = masks.validate_ratio(mask_ratio), masks.validate_seed(mask_seed)
        ui.ensure_loaded([checkpoints.get(checkpoint).name], progress)
        progress(0.9, desc="Reconstructing…")
        result = reconstruct(image, checkpoint, ratio=ratio, seed=seed)
        return (result.model_view, result.masked, result.reconstruction, result.pasted, result.error_map,
                summary_markdown(result, checkpoint), result.stats())

    with gr.Row():
        with gr.Column(scale=1):
            image = ui.image_input("Image", height=320,
                                  elem_id="mae-image")
            gr.Examples(examples=sorted(str(p) for p in EXAMPLES_DIR.glob("*.jpg")), inputs=image,
                        cache_examples=False)
            ratio = gr.Slider(0.0, masks.MAX_MASK_RATIO, value=0.75, step=0.05, label="Mask ratio",
                              info="Share of patches hidden from the encoder (MAE trains at 0.75).")
            with gr.Row():
                seed = gr.Number(value=0, precision=0, minimum=0, maximum=masks.MAX_SEED, label="Mask seed",
                                 info="Same seed and ratio, same hidden patches.")
                new_mask = gr.Button("🎲 New random mask", size="sm")
            checkpoint = gr.Dropdown(
                choices=[(checkpoints.get(n).hub_id, n) for n in checkpoints.MAE_CHECKPOINTS],
                value="vit-mae-base", label="Checkpoint",
                info="Larger models reconstruct better; ViT-H uses 14-pixel patches.")
            run = gr.Button("Reconstruct", variant="primary", elem_id="mae-run")
        with gr.Column(scale=2):
            with gr.Row():
                view_out = ui.output_image("What the model sees")
                masked_out = ui.output_image("Masked input (grey = hidden)")
                pasted_out = ui.output_image("Reconstruction + visible patches", elem_id="mae-pasted")
            with gr.Row():
                raw_out = ui.output_image("Raw reconstruction (every patch)")
                error_out = ui.output_image(f"Error on hidden patches (bright = {ERROR_MAP_MAX} or more)")
            summary = gr.Markdown(elem_id="mae-summary")
            numbers = gr.JSON(label="Numbers", visible=False)
    gr.Markdown(EXPLANATION)

    outputs = [view_out, masked_out, raw_out, pasted_out, error_out, summary, numbers]
    run.click(mae_reconstruct, [image, ratio, seed, checkpoint], outputs, api_name="mae_reconstruct",
              concurrency_id=ui.MODEL_CONCURRENCY_ID)
    # A new mask only means something once there is an image; with one, show it straight away.
    def rerun_if_image(image_path, mask_ratio, mask_seed, checkpoint, progress=gr.Progress()):
        if image_path is None:
            return [gr.skip()] * len(outputs)
        return mae_reconstruct(image_path, mask_ratio, mask_seed, checkpoint, progress)

    new_mask.click(_new_seed, None, seed, api_name=False).then(
        rerun_if_image, [image, ratio, seed, checkpoint], outputs, api_name=False,
        concurrency_id=ui.MODEL_CONCURRENCY_ID)
