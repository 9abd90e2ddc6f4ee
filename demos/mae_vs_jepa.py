"""6.2-6.3 Pixels vs embeddings: hide one block of a still image, fill it in two ways.

Left, MAE (`facebook/vit-mae-base`) paints the block's pixels. Right, V-JEPA 2
(`facebook/vjepa2-vitl-fpc64-256`) predicts the block's *embeddings* from the visible context only,
conditioned on where the block is (the predictor's mask tokens carry the block's positions: the
"z" of the chapter). The prediction is scored against the actual embeddings of the full image.

Both models see the same square view (`media.center_square(image, crop)`, crop = V-JEPA 2's
`config.crop_size`, 256 px); MAE runs at that size too, so its 16x16 patch grid is V-JEPA 2's grid
and the MAE mask is exactly the JEPA block.

`compare` is the computation (arrays and numbers in, a `Comparison` out; no gradio). `build_tab`
wires it into the page; the named endpoint `/compare_pixels_embeddings(image, top, left, height,
width)` takes the block as plain numbers, so clicks, nudge buttons, sliders and `gradio_client`
all end in the same call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import checkpoints
from demos import jepa, mae, masks, media, viz
from demos.cache import LRUCache
from demos.errors import UserError, whole_number

JEPA_CHECKPOINT = jepa.CHECKPOINT  # "vjepa2-vitl"
MAE_CHECKPOINT = "vit-mae-base"
EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples" / "images"

# V-JEPA 2 sees a still image as a static clip. The official image evaluation repeats the image 16
# times (8 tubelets of 2 frames: 2048 tokens for the 256-px ViT-L). Here it is repeated only twice,
# which is ONE tubelet: 256 tokens, 8x fewer than 16 frames, and attention cost falls even more. That
# is what keeps a click near one second on a 2-core CPU. With identical frames every tubelet holds the
# same pixels, so the block is still hidden "in every frame"; the features are not bit-identical to a
# 16-frame run (attention sees fewer copies), which is the price of the speed.
NUM_FRAMES = 2
DEFAULT_BLOCK = (6, 6, 4, 4)  # top row, left column, height, width in patches: the centre of a 16x16 grid
PUBLISHED_GRID = 16  # vjepa2-vitl-fpc64-256: 256 px / 16-px patches; sliders start with this range
TARGET_CACHE_SIZE = 8  # images whose full-image features are kept (about 1 MB each for ViT-L, 1 tubelet)

BLOCK_COLOR = (255, 220, 0)  # yellow: the hidden block, everywhere
NEIGHBOUR_COLOR = (0, 230, 255)  # cyan: nearest-neighbour patches
OWN_PATCH_COLOR = (60, 220, 60)  # green: the nearest neighbour is the predicted patch itself
DIM = 0.35  # brightness of the photo behind heat maps and highlights
CLOSEUP_SIDE = 192  # the close-up of the block is scaled up (nearest) to about this many pixels


# ---------------------------------------------------------------------------------------------
# Geometry: where the block is, as patches and as V-JEPA 2 token ids
# ---------------------------------------------------------------------------------------------


def block_patch_ids(grid: masks.PatchGrid, top, left, height, width) -> np.ndarray:
    """Row-major patch ids of the block, validated: it fits the grid and leaves some context visible."""
    top, left = whole_number("The block's top row", top), whole_number("The block's left column", left)
    height, width = whole_number("The block's height", height), whole_number("The block's width", width)
    ids = masks.block_ids(grid, top, left, height, width)  # UserError when it does not fit
    if len(ids) >= grid.num_patches:
        raise UserError(f"A {height} x {width} block covers the whole {grid.rows} x {grid.cols} patch grid: no "
                        f"context is left to predict from. Make the block smaller.")
    return ids


@dataclass(frozen=True)
class BlockTokens:
    """The block as V-JEPA 2 tokens: the same patches in every tubelet (time-major ids)."""

    layout: jepa.TokenLayout
    patch_ids: np.ndarray  # row-major spatial ids, the MAE mask
    target_ids: np.ndarray  # time-major token ids: tubelet 0's block, then tubelet 1's, ...
    context_ids: np.ndarray  # every other token, sorted

    @classmethod
    def of(cls, layout: jepa.TokenLayout, patch_ids) -> BlockTokens:
        grid = masks.PatchGrid(layout.rows, layout.cols, layout.patch_size)
        patch_ids = np.asarray(patch_ids, dtype=np.int64)
        target = masks.spatiotemporal_ids(grid, patch_ids, range(layout.tubelets))
        return cls(layout, patch_ids, target, masks.complement(layout.num_tokens, target))


def block_at_click(x, y, view_size: int, grid: masks.PatchGrid, height, width) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a block centred on the clicked pixel of the model view.

    Clicks outside the view move the block to the nearest position inside it; a block bigger than the
    grid is shrunk to the grid (the compute step then says if no context is left).
    """
    x, y = float(x), float(y)
    if not (np.isfinite(x) and np.isfinite(y)) or view_size <= 0:
        raise UserError("That click did not land on the image; click on the picture to place the block.")
    height = min(max(whole_number("The block's height", height), 1), grid.rows)
    width = min(max(whole_number("The block's width", width), 1), grid.cols)
    row = np.floor(y * grid.rows / view_size)
    col = np.floor(x * grid.cols / view_size)
    top, left = masks.clamp_block(grid, row, col, height, width)
    return top, left, height, width


def nudge(direction: str, grid: masks.PatchGrid, top, left, height, width) -> tuple[int, int]:
    """Move the block one patch up, down, left or right, staying inside the grid."""
    step = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}[direction]
    height = min(max(whole_number("The block's height", height), 1), grid.rows)
    width = min(max(whole_number("The block's width", width), 1), grid.cols)
    top = min(max(whole_number("The block's top row", top) + step[0], 0), grid.rows - height)
    left = min(max(whole_number("The block's left column", left) + step[1], 0), grid.cols - width)
    return top, left


# ---------------------------------------------------------------------------------------------
# Scores: cosines of the prediction and of two baselines, computed the same way
# ---------------------------------------------------------------------------------------------


def context_mean_cosines(features: torch.Tensor, context_ids, target_ids) -> np.ndarray:
    """Baseline 1: predict every hidden token as the mean of the context tokens' actual embeddings.

    The actual context embeddings come from the full image (the block was visible to the target
    encoder), so this baseline is, if anything, generous.
    """
    mean = features[torch.as_tensor(np.asarray(context_ids))].mean(dim=0, keepdim=True)
    actual = features[torch.as_tensor(np.asarray(target_ids))]
    return jepa.cosine_rows(mean.expand_as(actual), actual)


def nearest_context_ids(layout: jepa.TokenLayout, context_ids, target_ids) -> np.ndarray:
    """For each target token, the spatially nearest context token of the same tubelet (ties: lowest id)."""
    context = np.asarray(context_ids, dtype=np.int64)
    target = np.asarray(target_ids, dtype=np.int64)
    if len(context) == 0:
        raise UserError("No context is left to copy from: make the block smaller.")
    context = np.sort(context)  # argmin takes the first minimum: the lowest id wins ties

    def coords(ids):
        t, rest = np.divmod(ids, layout.tokens_per_tubelet)
        r, c = np.divmod(rest, layout.cols)
        return t, r, c

    tt, tr, tc = coords(target)
    ct, cr, cc = coords(context)
    distance = (tr[:, None] - cr[None]) ** 2 + (tc[:, None] - cc[None]) ** 2
    # Another tubelet only if this one has no context at all (never the case for a block in every tubelet).
    distance = distance + (tt[:, None] != ct[None]) * (layout.rows ** 2 + layout.cols ** 2 + 1)
    return context[distance.argmin(axis=1)]


def nearest_context_cosines(features: torch.Tensor, layout: jepa.TokenLayout, context_ids, target_ids) -> np.ndarray:
    """Baseline 2: copy the actual embedding of the nearest visible patch into each hidden one."""
    copied = features[torch.as_tensor(nearest_context_ids(layout, context_ids, target_ids))]
    return jepa.cosine_rows(copied, features[torch.as_tensor(np.asarray(target_ids))])


def nearest_patches(queries: torch.Tensor, keys: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """For each (M, D) query, the index of the most similar (cosine) of the (N, D) keys, and that similarity."""
    sims = F.normalize(queries.float(), dim=-1) @ F.normalize(keys.float(), dim=-1).T
    best, index = sims.max(dim=1)
    return index.cpu().numpy(), best.cpu().numpy()


# ---------------------------------------------------------------------------------------------
# Full-image target features: cached per (image, checkpoint, frames), so moving the block is cheap
# ---------------------------------------------------------------------------------------------


@dataclass
class ImageFeatures:
    view: np.ndarray  # (S, S, 3) uint8: the square both models see
    pixel_values: torch.Tensor  # (1, T, 3, S, S) normalised clip
    targets: torch.Tensor  # (N, D) float32 on CPU: layer-normalised full-clip encoder output
    spatial: torch.Tensor  # (rows*cols, D): targets averaged over tubelets (identical frames)
    pca: tuple  # viz.pca_basis of `spatial`: one projection for actual and predicted
    encode_seconds: float = 0.0


TARGET_CACHE = LRUCache(TARGET_CACHE_SIZE)  # per (image, checkpoint, frames, dtype), tied to the model


def image_features(image: np.ndarray, loaded: checkpoints.Loaded, num_frames: int = NUM_FRAMES) -> tuple[ImageFeatures, bool]:
    """The view, clip and full-image target features of `image`, from the cache when possible; (features, hit)."""
    model, processor = loaded.model, loaded.processor
    config = model.config
    dtype = next(model.parameters()).dtype
    key = (media.image_digest(image), loaded.checkpoint.name, int(num_frames), str(dtype))
    cached = TARGET_CACHE.get(key, owner=model)
    if cached is not None:
        return cached, True
    start = time.perf_counter()
    view = np.array(media.center_square(image, config.crop_size))  # a writable copy (torch warns otherwise)
    frames = np.repeat(view[None], num_frames, axis=0)
    pixel_values = jepa.clip_tensor(processor, frames)
    targets = jepa.target_features(model, pixel_values)[0].cpu()
    layout = jepa.TokenLayout.of(config, num_frames)
    spatial = targets.view(layout.tubelets, layout.tokens_per_tubelet, -1).mean(dim=0)
    item = ImageFeatures(view, pixel_values, targets, spatial, viz.pca_basis(spatial.numpy()),
                         time.perf_counter() - start)
    TARGET_CACHE.put(key, item, owner=model)
    return item, False


# ---------------------------------------------------------------------------------------------
# The comparison
# ---------------------------------------------------------------------------------------------


@dataclass
class Comparison:
    grid: masks.PatchGrid
    block: tuple[int, int, int, int]  # top, left, height, width (patches)
    tokens: BlockTokens
    view: np.ndarray  # the square both models see
    predicted: torch.Tensor  # (M, D) float32: the predictor's embeddings of the target tokens
    actual: torch.Tensor  # (M, D) float32: the actual (layer-normalised) embeddings there
    cosines: np.ndarray  # (M,) per target token
    baseline_context_mean: np.ndarray  # (M,)
    baseline_nearest_patch: np.ndarray  # (M,)
    neighbour_ids: np.ndarray  # (block patches,) nearest actual patch of each predicted patch
    neighbour_cosines: np.ndarray
    reconstruction: mae.Reconstruction
    target_cache_hit: bool
    seconds: dict
    num_frames: int = NUM_FRAMES
    images: dict = field(default_factory=dict)

    @property
    def patch_cosines(self) -> np.ndarray:
        """Per block patch (row-major over the block), averaged over tubelets."""
        return self.cosines.reshape(self.tokens.layout.tubelets, -1).mean(axis=0)

    def stats(self) -> dict:
        top, left, height, width = self.block
        ids = self.tokens.patch_ids
        mse = self.reconstruction.per_patch_mse.ravel()[ids]
        return {
            "block": {"top": top, "left": left, "height": height, "width": width},
            "grid": [self.grid.rows, self.grid.cols],
            "patch_size": self.grid.patch_size,
            "view_size": int(self.view.shape[0]),
            "num_frames": self.num_frames,
            "tubelets": self.tokens.layout.tubelets,
            "block_patch_ids": [int(i) for i in ids],
            "target_token_ids": [int(i) for i in self.tokens.target_ids],
            "num_context_tokens": int(len(self.tokens.context_ids)),
            "cosine_per_patch": [round(float(c), 5) for c in self.patch_cosines],
            "mean_cosine": float(self.cosines.mean()),
            "baselines": {
                "context_mean": float(self.baseline_context_mean.mean()),
                "nearest_context_patch": float(self.baseline_nearest_patch.mean()),
            },
            "mae_pixel_mse": self.reconstruction.hidden_mse,
            "mae_pixel_mse_per_patch": [round(float(v), 6) for v in mse],
            "nearest_neighbour_ids": [int(i) for i in self.neighbour_ids],
            "neighbour_is_own_patch": float(np.mean(self.neighbour_ids == ids)),
            "neighbour_in_block": float(np.mean(np.isin(self.neighbour_ids, ids))),
            "target_cache_hit": self.target_cache_hit,
            "seconds": {k: round(v, 4) for k, v in self.seconds.items()},
            "checkpoints": {"jepa": checkpoints.get(JEPA_CHECKPOINT).hub_id,
                            "mae": checkpoints.get(MAE_CHECKPOINT).hub_id},
        }


@checkpoints.gpu_task
def compare(image, top, left, height, width, *, num_frames: int = NUM_FRAMES,
            jepa_checkpoint: str = JEPA_CHECKPOINT, mae_checkpoint: str = MAE_CHECKPOINT) -> Comparison:
    """Hide the (top, left, height, width) block (in patches) of `image` from both MAE and V-JEPA 2.

    image: a path or an HxWx3 uint8 array (`media.load_image`). Raises `UserError` for anything a
    learner can fix (unreadable image, block outside the grid, no context left).
    """
    image = media.load_image(image)
    loaded = jepa.load(jepa_checkpoint)
    model, config = loaded.model, loaded.model.config
    grid = masks.PatchGrid.square(config.crop_size, config.patch_size)
    patch_ids = block_patch_ids(grid, top, left, height, width)
    block = tuple(int(v) for v in (float(top), float(left), float(height), float(width)))
    layout = jepa.TokenLayout.of(config, num_frames)
    tokens = BlockTokens.of(layout, patch_ids)
    seconds = {}

    features, hit = image_features(image, loaded, num_frames)
    seconds["target_encoder"] = 0.0 if hit else features.encode_seconds

    start = time.perf_counter()
    context = jepa.context_features(model, features.pixel_values, tokens.context_ids)
    seconds["context_encoder"] = time.perf_counter() - start
    start = time.perf_counter()
    predicted = jepa.predict(model, context, tokens.context_ids, tokens.target_ids, layout.num_tokens)[0].cpu()
    seconds["predictor"] = time.perf_counter() - start

    start = time.perf_counter()
    targets = features.targets
    actual = targets[torch.as_tensor(tokens.target_ids)]
    cosines = jepa.cosine_rows(predicted, actual)
    base_mean = context_mean_cosines(targets, tokens.context_ids, tokens.target_ids)
    base_copy = nearest_context_cosines(targets, layout, tokens.context_ids, tokens.target_ids)
    predicted_spatial = predicted.view(layout.tubelets, len(patch_ids), -1).mean(dim=0)
    neighbour_ids, neighbour_cos = nearest_patches(predicted_spatial, features.spatial)
    seconds["scores"] = time.perf_counter() - start

    start = time.perf_counter()
    reconstruction = mae.reconstruct(features.view, mae_checkpoint, hidden_ids=patch_ids,
                                     image_size=config.crop_size)
    seconds["mae"] = time.perf_counter() - start
    if reconstruction.grid != grid or not np.array_equal(reconstruction.model_view, features.view):
        raise UserError(f"{mae_checkpoint} cuts images into {reconstruction.grid.patch_size}-pixel patches, "
                        f"V-JEPA 2 into {grid.patch_size}: the two cannot hide the same block.")

    result = Comparison(grid, block, tokens, features.view, predicted, actual, cosines, base_mean, base_copy,
                        neighbour_ids, neighbour_cos, reconstruction, hit, seconds, int(num_frames))
    start = time.perf_counter()
    result.images = render(result, features, predicted_spatial)
    seconds["images"] = time.perf_counter() - start
    return result


# ---------------------------------------------------------------------------------------------
# Pictures
# ---------------------------------------------------------------------------------------------


def _block_pixels(grid: masks.PatchGrid, block) -> tuple[int, int, int, int]:
    top, left, height, width = block
    p = grid.patch_size
    return top * p, left * p, (top + height) * p, (left + width) * p


def _outline(image: np.ndarray, grid: masks.PatchGrid, block, color=BLOCK_COLOR, thickness: int = 2) -> np.ndarray:
    return viz.draw_rectangle(image, *_block_pixels(grid, block), color=color, thickness=thickness)


def _dim(image: np.ndarray) -> np.ndarray:
    return (image.astype(np.float32) * DIM).astype(np.uint8)


def view_with_block(view: np.ndarray, grid: masks.PatchGrid, block) -> np.ndarray:
    """The model's view with a faint patch grid and the block outlined (what the learner clicks on)."""
    y0, x0, y1, x1 = _block_pixels(grid, block)
    shaded = view.copy()
    shaded[y0:y1, x0:x1] = viz.blend(view[y0:y1, x0:x1], np.full_like(view[y0:y1, x0:x1], BLOCK_COLOR), 0.25)
    return _outline(viz.draw_grid(shaded, grid.patch_size), grid, block)


def closeup(real: np.ndarray, painted: np.ndarray, grid: masks.PatchGrid, block) -> np.ndarray:
    """Real block pixels | MAE's pixels, side by side, scaled up (nearest) so blur is visible."""
    y0, x0, y1, x1 = _block_pixels(grid, block)
    scale = max(1, CLOSEUP_SIDE // max(y1 - y0, x1 - x0))
    up = lambda a: np.repeat(np.repeat(a[y0:y1, x0:x1], scale, 0), scale, 1)  # noqa: E731
    left, right = up(real), up(painted)
    gap = np.full((left.shape[0], 6, 3), 255, np.uint8)
    return np.concatenate([left, gap, right], axis=1)


def render(result: Comparison, features: ImageFeatures, predicted_spatial: torch.Tensor) -> dict:
    grid, block, ids = result.grid, result.block, result.tokens.patch_ids
    p = grid.patch_size
    view = result.view
    in_block = viz.patch_mask_image(masks.hidden_mask(grid.num_patches, ids).reshape(grid.rows, grid.cols), p)

    actual_rgb = viz.pca_colors(features.spatial.numpy(), features.pca)  # (rows*cols, 3)
    predicted_rgb = actual_rgb.copy()
    predicted_rgb[ids] = viz.pca_colors(predicted_spatial.numpy(), features.pca)
    as_image = lambda rgb: viz.upsample_patches(rgb.reshape(grid.rows, grid.cols, 3), p)  # noqa: E731

    cos_rgb = np.zeros((grid.num_patches, 3), np.uint8)
    cos_rgb[ids] = viz.cosine_colors(result.patch_cosines)
    cosine_map = np.where(in_block[..., None], as_image(cos_rgb), _dim(view))

    neighbours = _dim(view)
    nn_mask = viz.patch_mask_image(masks.hidden_mask(grid.num_patches, result.neighbour_ids)
                                   .reshape(grid.rows, grid.cols), p)
    neighbours[nn_mask] = view[nn_mask]
    for own, patch in zip(ids, result.neighbour_ids, strict=False):
        r, c = divmod(int(patch), grid.cols)
        color = OWN_PATCH_COLOR if patch == own else NEIGHBOUR_COLOR
        neighbours = viz.draw_rectangle(neighbours, r * p, c * p, (r + 1) * p, (c + 1) * p, color=color, thickness=1)

    recon = result.reconstruction
    return {
        "view": view_with_block(view, grid, block),
        "mae_pasted": _outline(recon.pasted, grid, block),
        "mae_closeup": closeup(view, recon.reconstruction, grid, block),
        "pca_actual": _outline(as_image(actual_rgb), grid, block),
        "pca_predicted": _outline(as_image(predicted_rgb), grid, block),
        "cosine_map": _outline(cosine_map, grid, block),
        "neighbours": _outline(neighbours, grid, block),
    }


IMAGE_ORDER = ["view", "mae_pasted", "mae_closeup", "pca_actual", "pca_predicted", "cosine_map", "neighbours"]


def summary_markdown(result: Comparison) -> str:
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


# ---------------------------------------------------------------------------------------------
# Texts for the learner
# ---------------------------------------------------------------------------------------------

INTRO = f"""
### Hide a block, then fill it in two ways
Click on **What both models see** to move the yellow block (or use the arrows and sliders). The same
block is hidden from two models. **MAE** (left) must paint its *pixels*. **V-JEPA 2** (right) must
predict its *embeddings*: its context encoder sees only the visible patches, and its predictor is told
*where* the block is (the position-carrying mask tokens, the variable *z*). V-JEPA 2 is a video model:
the still image is fed as a static clip of {NUM_FRAMES} identical frames (one "tubelet"), not the 16 of the
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


# ---------------------------------------------------------------------------------------------
# The tab
# ---------------------------------------------------------------------------------------------


def _grid_of(numbers) -> masks.PatchGrid | None:
    if not isinstance(numbers, dict) or "grid" not in numbers:
        return None
    rows, cols = numbers["grid"]
    return masks.PatchGrid(int(rows), int(cols), int(numbers["patch_size"]))


def build_tab() -> None:
    """The 6.2-6.3 tab and its `/compare_pixels_embeddings` endpoint."""
    import gradio as gr

    from demos import ui

    @ui.gradio_errors
    def compare_pixels_embeddings(image_path, top: float, left: float, height: float, width: float,
                                  progress=gr.Progress()):
        """Hide the block (top row, left column, height, width, in patches of V-JEPA 2's 16x16 grid) from
        MAE and from V-JEPA 2; MAE paints its pixels, V-JEPA 2 predicts its embeddings from the context.

        Returns 7 PNG images (model view with the block, MAE pasted, MAE close-up real|MAE, PCA of the
        actual embeddings, PCA with the predicted ones pasted, per-patch cosine map, nearest
        neighbours), a markdown summary and the numbers (cosine_per_patch, mean_cosine, baselines,
        mae_pixel_mse, block_patch_ids, target_token_ids, nearest_neighbour_ids, ...).
        """
        image = media.load_image(image_path)
        ui.ensure_loaded([JEPA_CHECKPOINT, MAE_CHECKPOINT], progress)
        progress(0.9, desc="Predicting the block…")
        result = compare(image, top, left, height, width)
        return (*[result.images[k] for k in IMAGE_ORDER], summary_markdown(result), result.stats())

    top0, left0, height0, width0 = DEFAULT_BLOCK
    gr.Markdown(INTRO)
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            image = ui.image_input("Image", height=260, elem_id="mvj-image")
            gr.Examples(examples=sorted(str(p) for p in EXAMPLES_DIR.glob("*.jpg")), inputs=image,
                        cache_examples=False)
            with gr.Row():
                height = gr.Slider(1, PUBLISHED_GRID, value=height0, step=1, label="Block height (patches)",
                                   elem_id="mvj-height")
                width = gr.Slider(1, PUBLISHED_GRID, value=width0, step=1, label="Block width (patches)",
                                  elem_id="mvj-width")
            with gr.Row():
                top = gr.Slider(0, PUBLISHED_GRID - 1, value=top0, step=1, label="Top row", elem_id="mvj-top")
                left = gr.Slider(0, PUBLISHED_GRID - 1, value=left0, step=1, label="Left column",
                                 elem_id="mvj-left")
            with gr.Row():
                up = gr.Button("↑", size="sm", min_width=40)
                down = gr.Button("↓", size="sm", min_width=40)
                go_left = gr.Button("←", size="sm", min_width=40)
                go_right = gr.Button("→", size="sm", min_width=40)
            run = gr.Button("Hide the block and predict", variant="primary", elem_id="mvj-run")
        with gr.Column(scale=1, min_width=300):
            view_out = ui.output_image("What both models see: click to move the block", elem_id="mvj-view",
                                       height=300)
            gr.Markdown(VIEW_TEXT)
            mae_out = ui.output_image("MAE: pixels painted into the block", elem_id="mvj-mae", height=260)
            closeup_out = ui.output_image("Close-up: real | MAE", height=220)
            gr.Markdown(MAE_TEXT)
        with gr.Column(scale=2, min_width=400):
            with gr.Row():
                pca_actual = ui.output_image("(a) Actual embeddings (PCA colours)", height=280)
                pca_predicted = ui.output_image("(a) Predicted pasted into the block",
                                                elem_id="mvj-pca-predicted", height=280)
            gr.Markdown(PCA_TEXT)
            with gr.Row():
                cosine_out = ui.output_image("(b) Cosine: predicted vs actual", height=280)
                neighbours_out = ui.output_image("(d) Nearest neighbours", height=280)
            gr.Markdown(COSINE_TEXT + "\n\n" + NEIGHBOUR_TEXT)
            gr.Markdown(BASELINE_TEXT)
            summary = gr.Markdown(elem_id="mvj-summary")
            with gr.Accordion("All numbers (what the API returns)", open=False):
                numbers = gr.JSON(label="Numbers")
    gr.Markdown(EXPLANATION)

    outputs = [view_out, mae_out, closeup_out, pca_actual, pca_predicted, cosine_out, neighbours_out,
               summary, numbers]
    block_inputs = [image, top, left, height, width]
    run.click(compare_pixels_embeddings, block_inputs, outputs, api_name="compare_pixels_embeddings",
              concurrency_id=ui.MODEL_CONCURRENCY_ID)

    def rerun_if_image(image_path, top, left, height, width, progress=gr.Progress()):
        if image_path is None:
            return [gr.skip()] * len(outputs)
        return compare_pixels_embeddings(image_path, top, left, height, width, progress)

    def rerun(event):
        event.then(rerun_if_image, block_inputs, outputs, api_name=False, concurrency_id=ui.MODEL_CONCURRENCY_ID)

    @ui.gradio_errors
    def fit_controls(image_path, top, left, height, width, progress=gr.Progress()):
        """A new image: load the models (first time only) and fit the sliders to V-JEPA 2's patch grid."""
        if image_path is None:
            return [gr.skip()] * 4
        ui.ensure_loaded([JEPA_CHECKPOINT, MAE_CHECKPOINT], progress)
        config = jepa.load().model.config
        grid = masks.PatchGrid.square(config.crop_size, config.patch_size)
        height, width = min(int(height), grid.rows), min(int(width), grid.cols)
        top, left = min(int(top), grid.rows - height), min(int(left), grid.cols - width)
        return (gr.Slider(maximum=grid.rows - 1, value=top), gr.Slider(maximum=grid.cols - 1, value=left),
                gr.Slider(maximum=grid.rows, value=height), gr.Slider(maximum=grid.cols, value=width))

    @ui.gradio_errors
    @ui.receives_click
    def place_block(numbers, height, width, evt: gr.SelectData):
        """A click on the model view only sets the position controls; the computation follows."""
        grid = _grid_of(numbers)
        if grid is None or evt.index is None:  # no result yet, or a click beside the picture
            return [gr.skip()] * 4
        x, y = evt.index[:2]
        return block_at_click(x, y, int(numbers.get("view_size", grid.rows * grid.patch_size)), grid, height, width)

    def nudger(direction):
        @ui.gradio_errors
        def move(numbers, top, left, height, width):
            grid = _grid_of(numbers) or masks.PatchGrid(PUBLISHED_GRID, PUBLISHED_GRID, 16)
            return nudge(direction, grid, top, left, height, width)
        return move

    @ui.gradio_errors
    def resize_block(numbers, top, left, height, width):
        """A new size keeps the block inside the grid by moving it, instead of failing."""
        grid = _grid_of(numbers)
        if grid is None:
            return [gr.skip()] * 2
        height, width = min(int(height), grid.rows), min(int(width), grid.cols)
        return min(int(top), grid.rows - height), min(int(left), grid.cols - width)

    controls = [top, left, height, width]
    rerun(image.change(fit_controls, block_inputs, controls, api_name=False,
                       concurrency_id=ui.MODEL_CONCURRENCY_ID))
    rerun(view_out.select(place_block, [numbers, height, width], controls, api_name=False))
    for button, direction in [(up, "up"), (down, "down"), (go_left, "left"), (go_right, "right")]:
        rerun(button.click(nudger(direction), [numbers, *controls], [top, left], api_name=False))
    for slider in (height, width):
        rerun(slider.release(resize_block, [numbers, *controls], [top, left], api_name=False))
    for slider in (top, left):
        slider.release(rerun_if_image, block_inputs, outputs, api_name=False, concurrency_id=ui.MODEL_CONCURRENCY_ID)
