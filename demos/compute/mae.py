"""6.1 Masked autoencoder: hide a ratio of an image's patches and let ViT-MAE paint them back.

`reconstruct` is the computation (arrays in, arrays and numbers out; inputs validated by the caller
with `validate_checkpoint`, `masks.validate_ratio` and `masks.validate_seed`). The tab is `demos.tabs.mae`.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np

import checkpoints
from demos import devices, images, mae_positions, masks, viz
from demos.errors import UserError
from demos.gpu_functions import gpu_task

log = logging.getLogger(__name__)
_check_lock = threading.Lock()

# Per-patch mean squared error (pixels in 0..1) at which the heat map saturates. Fixed, so maps made
# at different ratios or on different images can be compared by eye.
ERROR_MAP_MAX = 0.05


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
    # What a constant output (one colour in every hidden patch) would score there, same units as hidden_mse:
    best_constant_mse: float | None = None  # the best colour there is, the hidden pixels' own mean
    image_mean_colour_mse: float | None = None  # the image's mean colour

    def stats(self) -> dict:
        """Plain numbers for the API and the page."""
        return {
            "hidden_mse": self.hidden_mse,
            "model_loss": self.model_loss,
            "best_constant_mse": self.best_constant_mse,
            "image_mean_colour_mse": self.image_mean_colour_mse,
            "num_hidden": int(len(self.hidden_ids)),
            "num_patches": self.grid.num_patches,
            "grid": [self.grid.rows, self.grid.cols],
            "patch_size": self.grid.patch_size,
            "hidden_patch_ids": [int(i) for i in self.hidden_ids],
        }


def load(name: str) -> checkpoints.Loaded:
    """A ViT-MAE checkpoint, with the formula of its position tables checked once (`Loaded.position_layouts`)."""
    loaded = checkpoints.load(name)
    with _check_lock:
        if loaded.position_layouts is None:
            loaded.position_layouts = layouts = mae_positions.Layouts.of(loaded.model)
            for part, layout in vars(layouts).items():
                if layout == mae_positions.INTERPOLATED:
                    log.warning("%s: the %s's stored position table follows neither 2-D sin-cos layout; on other "
                                "image sizes it is interpolated in 2-D (an approximation)", name, part)
                else:
                    log.info("%s: the %s's position table is 2-D sin-cos (%s); other image sizes get the exact table",
                             name, part, layout)
    return loaded


for _name in checkpoints.MAE_CHECKPOINTS:
    checkpoints.use_loader(_name, load)  # ZeroGPU start-up checks the tables too (the weights are readable then)


# The work estimates, scaled by parameters: on a GPU about 3x what bench_gpu measured for ViT-MAE-huge, on the CPU
# what bench_mae measured in bf16 on the development CPU (docs/benchmarks.md).
GPU_SECONDS_PER_100M_PARAMS = 0.01
CPU_SECONDS_BASE, CPU_SECONDS_PER_100M_PARAMS = 0.05, 0.045


def gpu_seconds(image, checkpoint: str = "vit-mae-base", **_) -> float:
    """The GPU work `reconstruct` is estimated at: larger checkpoints, more seconds."""
    return checkpoints.get(checkpoint).params_millions / 100 * GPU_SECONDS_PER_100M_PARAMS


def cpu_seconds(image, checkpoint: str = "vit-mae-base", **_) -> float:
    """The CPU work `reconstruct` is estimated at."""
    return CPU_SECONDS_BASE + checkpoints.get(checkpoint).params_millions / 100 * CPU_SECONDS_PER_100M_PARAMS


@gpu_task(gpu_seconds=gpu_seconds, cpu_seconds=cpu_seconds)
def reconstruct(image: np.ndarray, checkpoint: str = "vit-mae-base", *, ratio: float = 0.75, seed: int = 0,
                hidden_ids=None, image_size: int | None = None) -> Reconstruction:
    """Hide patches and reconstruct them with ViT-MAE.

    image: HxWx3 uint8 (see `images.load_image`); checkpoint, ratio and seed as validated by the caller.
    The hidden patches are `hidden_ids` when given (exact set, row-major), else the `ratio` of patches
    chosen by `seed` (same seed and ratio, same patches).
    image_size: the side the model sees; defaults to the checkpoint's (224). At another size (the JEPA
    comparison uses V-JEPA 2's 256) the position tables are computed for that grid (`mae_positions`).
    """
    import torch

    loaded = load(checkpoint)
    model, processor = loaded.model, loaded.processor
    config = model.config
    size = int(image_size or config.image_size)
    grid = masks.PatchGrid.square(size, config.patch_size)  # 14 px patches on ViT-H: never assume 16
    if hidden_ids is None:
        hidden_ids = masks.random_hidden_ids(grid.num_patches, ratio, seed)
    hidden_ids = np.sort(np.asarray(hidden_ids, dtype=np.int64))

    view = images.center_square(image, size)
    pixel_values = processor(images=view, do_resize=False, return_tensors="pt")["pixel_values"]
    hidden = masks.hidden_mask(grid.num_patches, hidden_ids)
    with torch.inference_mode():
        logits, loss = masked_forward(model, devices.on_model(model, pixel_values), hidden,
                                      loaded.position_layouts)
    return reconstruction_of(view, pixels01(model, processor, logits, size)[0], hidden, grid, loss)


def pixels01(model, processor, logits, size: int) -> np.ndarray:
    """(B, S, S, 3) float32 in 0..1: the decoder's patches as pictures, de-normalised (ImageNet mean and std)."""
    import torch

    with torch.inference_mode():
        reconstructed = model.unpatchify(logits, (size, size))
    mean = torch.tensor(processor.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(processor.image_std).view(1, 3, 1, 1)
    return (reconstructed.float().cpu() * std + mean).clamp(0, 1).permute(0, 2, 3, 1).numpy()


def reconstruction_of(view: np.ndarray, recon01: np.ndarray, hidden: np.ndarray, grid: masks.PatchGrid,
                      loss) -> Reconstruction:
    """The `Reconstruction` of `view` from the decoder's picture `recon01` ((S, S, 3) in 0..1) with the `hidden`
    patches. Only the hidden patches of `recon01` reach its numbers, `pasted` and `error_map`."""
    recon_u8 = (recon01 * 255).round().astype(np.uint8)
    pixel_hidden = viz.patch_mask_image(hidden.reshape(grid.rows, grid.cols), grid.patch_size)
    pasted = np.where(pixel_hidden[..., None], recon_u8, view)

    view01 = view.astype(np.float32) / 255
    squared = ((recon01 - view01) ** 2).mean(axis=2)
    per_patch = squared.reshape(grid.rows, grid.patch_size, grid.cols, grid.patch_size).mean(axis=(1, 3))
    per_patch = np.where(hidden.reshape(grid.rows, grid.cols), per_patch, np.nan)
    any_hidden = bool(hidden.any())
    hidden_pixels = view01[pixel_hidden]
    return Reconstruction(
        model_view=view,
        masked=viz.grey_out(view, pixel_hidden),
        reconstruction=recon_u8,
        pasted=pasted,
        error_map=viz.error_heat_map(view, per_patch, grid.patch_size, ERROR_MAP_MAX),
        grid=grid,
        hidden_ids=np.flatnonzero(hidden),
        per_patch_mse=per_patch,
        hidden_mse=float(np.nanmean(per_patch)) if any_hidden else None,
        model_loss=float(loss) if any_hidden else None,
        best_constant_mse=(constant_output_mse(hidden_pixels, hidden_pixels.mean(axis=0, dtype=np.float64))
                           if any_hidden else None),
        image_mean_colour_mse=(constant_output_mse(hidden_pixels, view01.reshape(-1, 3).mean(axis=0, dtype=np.float64))
                               if any_hidden else None),
    )


def constant_output_mse(pixels: np.ndarray, colour: np.ndarray) -> float:
    """Mean squared error of (N, 3) pixels in 0..1 all painted one `colour`: what a collapsed output scores.
    No colour does better than the pixels' own mean, whose error is their variance."""
    pixels = pixels.astype(np.float64)  # float32 sums over a whole image drift by about 1e-8
    return float(((pixels - np.asarray(colour, dtype=np.float64)) ** 2).mean())


def masked_forward(model, pixel_values, hidden: np.ndarray, layouts: mae_positions.Layouts | None = None):
    """ViT-MAE's pre-training forward with the hidden patches given: (logits, loss).

    transformers draws the mask inside its embeddings (`ViTMAEEmbeddings.random_masking`) and takes the number
    of kept patches from the shared `config.mask_ratio`; a request cannot set it without changing the model for
    every other request. So the same modules run here in the same order, on our own kept ids: the encoder sees the
    visible patches only, the decoder fills the hidden ones with its mask token, and the loss is MAE's (mean
    squared error over the hidden patches). Both add the position tables of the input's own grid
    (`layouts.tables`; default: checked on `model` now), so at any size this is MAE built for that size.

    `hidden` is one mask (N,) or a batch of masks (B, N) of one picture (`pixel_values` (1, 3, S, S)), each hiding
    as many patches (6.2-6.3's sweep: one block at every position), sharing its patch embedding; then the logits
    are (B, N, ...) and the loss one per mask.

    Follows transformers 5.23 (requirements.txt pins it): `ViTMAEForPreTraining.forward`, which runs
    `ViTMAEModel.forward` (`ViTMAEEmbeddings.forward` without its `random_masking`, the layers, the layernorm),
    then `ViTMAEDecoder.forward` and its loss; tests/test_mae.py compares the two with the same mask.
    """
    import torch

    one = np.ndim(hidden) == 1
    hidden = np.atleast_2d(np.asarray(hidden, dtype=bool))
    if len(set(hidden.sum(axis=1).tolist())) != 1:
        raise ValueError("every mask of a batch must hide as many patches")
    vit, decoder, size = model.vit, model.decoder, pixel_values.shape[-1]
    side = size // model.config.patch_size
    encoder_positions, decoder_positions = (layouts or mae_positions.Layouts.of(model)).tables(model, side, side)
    tokens = vit.embeddings.patch_embeddings(pixel_values) + encoder_positions[:, 1:, :]
    batch, dim = len(hidden), tokens.shape[-1]
    # Each row: its visible ids, then its hidden ids (both ascending); ids_restore puts them back in grid order.
    order = torch.from_numpy(np.argsort(hidden, axis=1, kind="stable")).to(tokens.device)
    visible = order[:, :int((~hidden[0]).sum())]
    ids_restore = torch.argsort(order, dim=1)
    cls = (vit.embeddings.cls_token + encoder_positions[:, :1, :]).expand(batch, -1, -1)
    kept = torch.gather(tokens.expand(batch, -1, -1), 1, visible[..., None].expand(-1, -1, dim))
    states = torch.cat([cls, kept], dim=1)
    for layer in vit.layers:
        states = layer(states)
    states = decoder.decoder_embed(vit.layernorm(states))
    mask_tokens = decoder.mask_token.expand(batch, ids_restore.shape[1] - visible.shape[1], -1)
    patches = torch.cat([states[:, 1:], mask_tokens], dim=1)
    patches = torch.gather(patches, 1, ids_restore[..., None].expand(-1, -1, patches.shape[-1]))  # grid order
    states = torch.cat([states[:, :1], patches], dim=1) + decoder_positions
    for layer in decoder.decoder_layers:
        states = layer(states)
    logits = decoder.decoder_pred(decoder.decoder_norm(states))[:, 1:]
    target = model.patchify(pixel_values, interpolate_pos_encoding=size != model.config.image_size)
    if model.config.norm_pix_loss:
        target = (target - target.mean(dim=-1, keepdim=True)) / (target.var(dim=-1, keepdim=True) + 1.0e-6) ** 0.5
    mask = torch.from_numpy(hidden).to(logits.device)
    squared = ((logits - target) ** 2).mean(dim=-1)
    loss = (squared * mask).sum(dim=1) / mask.sum(dim=1)
    return (logits, loss[0]) if one else (logits, loss)


def validate_checkpoint(name: str) -> str:
    if name not in checkpoints.MAE_CHECKPOINTS:
        raise UserError(f"'{name}' is not a masked-autoencoder checkpoint; choose one of "
                        f"{', '.join(checkpoints.MAE_CHECKPOINTS)}.")
    return name


@dataclass
class MaskPreview:
    masked: np.ndarray  # the model view with the hidden patches grey
    grid: masks.PatchGrid
    num_hidden: int


def model_geometry(checkpoint: str) -> tuple[int, int]:
    """(image side, patch side) of the checkpoint: the loaded model's own config, else the published one."""
    if checkpoints.is_loaded(checkpoint):
        config = checkpoints.load(checkpoint).model.config
        return int(config.image_size), int(config.patch_size)
    published = checkpoints.get(checkpoint)
    return published.image_size, published.patch_size


def mask_preview(image: np.ndarray, checkpoint: str, *, ratio: float, seed: int) -> MaskPreview:
    """What `reconstruct` will hide, drawn without any model: the page shows it while the ratio or the seed moves."""
    size, patch = model_geometry(checkpoint)
    grid = masks.PatchGrid.square(size, patch)
    hidden = masks.hidden_mask(grid.num_patches, masks.random_hidden_ids(grid.num_patches, ratio, seed))
    view = images.center_square(image, size)
    masked = viz.grey_out(view, viz.patch_mask_image(hidden.reshape(grid.rows, grid.cols), grid.patch_size))
    return MaskPreview(masked, grid, int(hidden.sum()))
