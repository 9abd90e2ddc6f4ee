"""6.2-6.3 Pixels vs embeddings: hide one block of a still image, fill it in two ways.

Left, MAE (`facebook/vit-mae-base`) paints the block's pixels. Right, V-JEPA 2
(`facebook/vjepa2-vitl-fpc64-256`) predicts the block's *embeddings* from the visible context only,
conditioned on where the block is (the predictor's mask tokens carry the block's positions: the
"z" of the chapter). The prediction is scored against the actual embeddings of the full image.

Both models see the same square view (`images.center_square(image, crop)`, crop = V-JEPA 2's
`config.crop_size`, 256 px); MAE runs at that size too, so its 16x16 patch grid is V-JEPA 2's grid
and the MAE mask is exactly the JEPA block. V-JEPA 2 sees the picture as a static clip: 16 identical frames on
a GPU, as its image evaluation does, 2 on a CPU (`default_frames`, `frames_reason`).

Each model is scored beside guesses that need no learning: the embeddings' baselines (the mean of the visible
embeddings, a copy of the nearest visible patch's) and the pixels' (`pixel_baselines`: the visible pixels' mean
colour, a copy of the nearest visible patch).

`compare` is the computation (an image array and the block as plain numbers in, a `Comparison` out);
its model work is the GPU function `predict_block`, and the full-image targets are cached in the main
process (see `demos.gpu_functions`). A block covered by a sweep (its size at every position, `block_sweep`) is
answered from the sweep with no device call.
The tab (`demos.tabs.mae_vs_jepa`) names the endpoint `/compare_pixels_embeddings(image, top, left,
height, width)`, so clicks, nudge buttons, sliders and `gradio_client` all end in the same call.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

import checkpoints
from demos import devices, examples, images, jepa, masks, viz, zerogpu
from demos.cache import LRUCache
from demos.compute import block_sweep, mae
from demos.errors import UserError, whole_number
from demos.gpu_functions import gpu_task
from demos.noise import Noise, added_noise_mse

JEPA_CHECKPOINT = jepa.CHECKPOINT  # "vjepa2-vitl"
MAE_CHECKPOINT = "vit-mae-base"

# V-JEPA 2 sees a still image as a static clip. Its official image evaluation repeats the image 16 times (8
# tubelets of 2 frames: 2048 tokens for the 256-px ViT-L): a GPU feeds that (`default_frames`). A CPU feeds it
# twice, ONE tubelet: 256 tokens, 8x fewer, and attention's cost falls even more; that keeps a click on a small CPU
# short (docs/benchmarks.md). With identical frames every tubelet holds the same pixels, so the block is still hidden
# "in every frame"; the features are not those of 16 frames (attention sees fewer copies): an input the model was
# not evaluated on, and `python -m checks.real_weights` prints what it costs the predictor.
GPU_FRAMES = 16
CPU_FRAMES = 2
DEFAULT_BLOCK = (6, 6, 4, 4)  # top row, left column, height, width in patches: the centre of a 16x16 grid
PUBLISHED_GRID = 16  # vjepa2-vitl-fpc64-256: 256 px / 16-px patches; sliders start with this range
# Pictures whose full-image features are kept (ViT-L: 8 MB each at 16 frames, 1 MB at 2; at most 96 MB): each
# image and each of its noise levels is one, so a few images with their noise sweeps (3 levels by default).
TARGET_CACHE_SIZE = 12
# Blocks whose model work is kept (the prediction and MAE's painting): the noise sweep that
# follows a comparison on the page reuses the comparison's level instead of running it again.
BLOCK_CACHE_SIZE = 8


def default_frames() -> int:
    """Frames of the static clip on the device this action is planned for (`devices.models_on_gpu`: known without
    loading a model; False inside an action ZeroGPU sent to the Space's CPU, `zerogpu.on_cpu`)."""
    return GPU_FRAMES if devices.models_on_gpu() else CPU_FRAMES


def frames_reason(num_frames: int, *, asked: bool = False) -> str:
    """Why V-JEPA 2 sees the picture as `num_frames` frames, in a sentence for the page and the numbers."""
    tubelets = max(1, num_frames // 2)
    clip = f"{num_frames} frames ({tubelets} tubelet{'s' if tubelets > 1 else ''})"
    if num_frames == GPU_FRAMES:
        return f"{clip}, as V-JEPA 2's image evaluation repeats a still image"
    if asked:
        return f"{clip}, as asked; V-JEPA 2's image evaluation repeats a still image {GPU_FRAMES} times"
    why = zerogpu.cpu_reason()
    where = f"the Space's CPU ({why})" if why else "this CPU"
    fewer = f"{GPU_FRAMES // num_frames}x fewer tokens" if num_frames < GPU_FRAMES else "the tokens"
    return (f"{clip} on {where}: {fewer} than the {GPU_FRAMES} frames of V-JEPA 2's image evaluation, so that a "
            f"click answers within seconds; a GPU feeds {GPU_FRAMES}")


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


def block_tokens(config, top, left, height, width, num_frames: int) -> tuple[masks.PatchGrid, masks.Block, BlockTokens]:
    """V-JEPA 2's patch grid, the validated block on it, and the block as tokens of a `num_frames` still clip."""
    grid = masks.PatchGrid.square(config.crop_size, config.patch_size)
    patch_ids = block_patch_ids(grid, top, left, height, width)
    block = masks.Block(int(top), int(left), int(height), int(width))
    return grid, block, BlockTokens.of(jepa.TokenLayout.of(config, num_frames), patch_ids)


def block_pixels(grid: masks.PatchGrid, patch_ids) -> np.ndarray:
    """(S, S) bool: the pixels of the block's patches."""
    hidden = masks.hidden_mask(grid.num_patches, patch_ids).reshape(grid.rows, grid.cols)
    return viz.patch_mask_image(hidden, grid.patch_size)


def nudge(direction: str, grid: masks.PatchGrid, top, left, height, width) -> tuple[int, int]:
    """Move the block one patch up, down, left or right, staying inside the grid."""
    step = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}[direction]
    block = masks.fit_block(grid, whole_number("The block's top row", top) + step[0],
                            whole_number("The block's left column", left) + step[1],
                            whole_number("The block's height", height), whole_number("The block's width", width))
    return block.top, block.left


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


def pixel_baselines(view: np.ndarray, grid: masks.PatchGrid, patch_ids) -> dict:
    """The pixels' own baselines, scored as MAE is (`mae_pixel_mse`: the mean squared error over the block's pixels,
    pixels in 0..1, against the picture both models see): every hidden pixel painted the visible pixels' mean colour
    (`context_mean_colour`), and each hidden patch a copy of the nearest visible patch (`nearest_context_patch`, the
    embeddings' rule, `nearest_context_ids`, on the patch grid)."""
    pixels = np.asarray(view, dtype=np.float64) / 255
    p, patch_ids = grid.patch_size, np.asarray(patch_ids, dtype=np.int64)
    hidden = block_pixels(grid, patch_ids)
    mean_colour = mae.constant_output_mse(pixels[hidden], pixels[~hidden].mean(axis=0))
    patches = pixels.reshape(grid.rows, p, grid.cols, p, 3).swapaxes(1, 2).reshape(grid.num_patches, p, p, 3)
    spatial = jepa.TokenLayout(tubelets=1, rows=grid.rows, cols=grid.cols, tubelet_size=2, patch_size=p)
    nearest = nearest_context_ids(spatial, masks.complement(grid.num_patches, patch_ids), patch_ids)
    copied = float(((patches[patch_ids] - patches[nearest]) ** 2).mean())
    return {"context_mean_colour": mean_colour, "nearest_context_patch": copied}


# ---------------------------------------------------------------------------------------------
# Full-image target features: cached in this (the main) process per (image, noise, checkpoint, frames),
# so that moving the block reruns only the context encoder, the predictor and MAE; and each block's own
# model work, so that a block already run (the noise sweep after a comparison) runs nothing again
# ---------------------------------------------------------------------------------------------


@dataclass
class ImageFeatures:
    view: np.ndarray  # (S, S, 3) uint8: the square both models see
    targets: torch.Tensor  # (N, D) float32 on CPU: layer-normalised full-clip encoder output
    spatial: torch.Tensor  # (rows*cols, D): targets averaged over tubelets (identical frames)
    pca: tuple  # viz.pca_basis of `spatial`: one projection for actual and predicted
    encode_seconds: float = 0.0

    @classmethod
    def of(cls, view: np.ndarray, targets: torch.Tensor, layout: jepa.TokenLayout, encode_seconds: float):
        spatial = targets.view(layout.tubelets, layout.tokens_per_tubelet, -1).mean(dim=0)
        return cls(view, targets, spatial, viz.pca_basis(spatial.numpy()), encode_seconds)


TARGET_CACHE = LRUCache(TARGET_CACHE_SIZE)  # per (image, noise, checkpoint, frames, dtype), tied to the model


def target_key(image_digest: str, noise: Noise, loaded: checkpoints.Loaded, num_frames: int) -> tuple:
    """The cache key of a picture's full-image targets: the image's content, its noise, the model and its dtype."""
    dtype = next(loaded.model.parameters()).dtype
    return (image_digest, noise, loaded.checkpoint.name, int(num_frames), str(dtype))


def keep_targets(key: tuple, view: np.ndarray, device_pass: BlockPass, layout: jepa.TokenLayout,
                 model) -> ImageFeatures:
    """Cache the full-image targets a GPU call computed for `view`."""
    features = ImageFeatures.of(view, device_pass.targets, layout, device_pass.seconds["target_encoder"])
    TARGET_CACHE.put(key, features, owner=model)
    return features


BLOCK_CACHE = LRUCache(BLOCK_CACHE_SIZE)  # per (picture's target key, block, MAE checkpoint), tied to the model


def cached_pass(target_key: tuple, patch_ids, mae_checkpoint: str, model) -> BlockPass | None:
    """The model work already done for this block of this picture, with its stage times zeroed (none ran now)."""
    device_pass = BLOCK_CACHE.get((target_key, np.asarray(patch_ids).tobytes(), mae_checkpoint), owner=model)
    if device_pass is None:
        return None
    return dataclasses.replace(device_pass, targets=None, seconds=dict.fromkeys(device_pass.seconds, 0.0))


def keep_pass(target_key: tuple, patch_ids, mae_checkpoint: str, device_pass: BlockPass, model) -> None:
    BLOCK_CACHE.put((target_key, np.asarray(patch_ids).tobytes(), mae_checkpoint),
                    dataclasses.replace(device_pass, targets=None), owner=model)


def sweep_key(target_key: tuple, mae_checkpoint: str, height: int, width: int) -> tuple:
    """The key of the sweep of a height x width block over the picture of `target_key` (`block_sweep.key`)."""
    return block_sweep.key(target_key, mae_checkpoint, mae.load(mae_checkpoint).model, height, width,
                           (checkpoints.weights_id(target_key[2]), checkpoints.weights_id(mae_checkpoint)))


def sweep_kept_on_disk(image_digest: str, height: int, width: int) -> bool:
    """A bundled example's sweep at the page's block size is the same for every learner: kept on disk."""
    return (height, width) == DEFAULT_BLOCK[2:] and image_digest in examples.bundled_image_digests()


def sweep_pass(sweep: block_sweep.BlockSweep, block: masks.Block) -> BlockPass | None:
    """The model work of `block` read from a sweep that covers it (no stage ran now), else None."""
    work = sweep.block_work(block.top, block.left) if sweep is not None else None
    if work is None:
        return None
    predicted, reconstruction = work
    return BlockPass(None, predicted, reconstruction, dict.fromkeys(STAGES, 0.0))


def known_work(key: tuple, digest: str, block: masks.Block, tokens: BlockTokens, mae_checkpoint: str,
               model) -> tuple[ImageFeatures | None, BlockPass | None, bool]:
    """What is known already of `block` of the picture of target `key`: its full-image features (cached, or read
    from a sweep of the picture) and the block's model work (cached, or read from a sweep that covers it), and
    whether that work came from a sweep. (None, None, False) for a picture new here."""
    sweep = block_sweep.find(sweep_key(key, mae_checkpoint, block.height, block.width),
                             on_disk=sweep_kept_on_disk(digest, block.height, block.width))
    features = TARGET_CACHE.get(key, owner=model)
    if features is None and sweep is not None and sweep.targets is not None:
        features = ImageFeatures.of(sweep.view, sweep.targets, tokens.layout, 0.0)
        TARGET_CACHE.put(key, features, owner=model)
    if features is None:
        return None, None, False
    device_pass = cached_pass(key, tokens.patch_ids, mae_checkpoint, model)
    if device_pass is not None:
        return features, device_pass, False
    device_pass = sweep_pass(sweep, block)
    return features, device_pass, device_pass is not None


@dataclass
class BlockPass:
    """What the GPU function returns: CPU tensors and MAE's result."""

    targets: torch.Tensor | None  # (N, D) full-image targets, when they were computed (not passed in)
    predicted: torch.Tensor  # (M, D) float32
    reconstruction: mae.Reconstruction
    seconds: dict


# The work estimates, by frames, from the benchmarks in docs/benchmarks.md: on a GPU a fixed part for MAE, the
# predictor and the rest (about 2x the whole 2-frame comparison bench_gpu measured), plus each ViT-L pass as 6.4
# estimates it (`tubes`), growing with the power 1.5 of the frames; on the CPU bench_mae_vs_jepa's 2-frame comparison
# with and without cached targets (one pass or two), each pass growing with the power 1.2 of the frames (so that 16
# frames meet bench_tubes' 16-frame ViT-L pass), the predictor in proportion to the frames, MAE fixed.
GPU_SECONDS_BLOCK = 0.3
GPU_SECONDS_PER_PASS_16_FRAMES, GPU_PASS_POWER = 0.15, 1.5
CPU_SECONDS_PER_PASS_2_FRAMES, CPU_PASS_POWER = 0.55, 1.2
CPU_SECONDS_MAE, CPU_SECONDS_PREDICTOR_2_FRAMES = 0.15, 0.22


def _passes(targets_cached: bool) -> int:
    """Encoder passes over the clip: the full clip's targets and the context alone, or the context alone."""
    return 1 if targets_cached else 2


def gpu_work_seconds(num_frames: int, targets_cached: bool) -> float:
    """One comparison's GPU work."""
    per_pass = GPU_SECONDS_PER_PASS_16_FRAMES * (num_frames / GPU_FRAMES) ** GPU_PASS_POWER
    return GPU_SECONDS_BLOCK + _passes(targets_cached) * per_pass


def cpu_work_seconds(num_frames: int, targets_cached: bool) -> float:
    """One comparison's CPU work."""
    frames = num_frames / CPU_FRAMES
    per_pass = CPU_SECONDS_PER_PASS_2_FRAMES * frames ** CPU_PASS_POWER
    return CPU_SECONDS_MAE + CPU_SECONDS_PREDICTOR_2_FRAMES * frames + _passes(targets_cached) * per_pass


def gpu_seconds(view, patch_ids, context_ids, target_ids, num_frames, *, targets=None, **_) -> float:
    """The GPU work `predict_block` is estimated at."""
    return gpu_work_seconds(num_frames, targets is not None)


def cpu_seconds(view, patch_ids, context_ids, target_ids, num_frames, *, targets=None, **_) -> float:
    """The CPU work `predict_block` is estimated at."""
    return cpu_work_seconds(num_frames, targets is not None)


@gpu_task(gpu_seconds=gpu_seconds, cpu_seconds=cpu_seconds)
def predict_block(view: np.ndarray, patch_ids, context_ids, target_ids, num_frames: int, *,
                  targets: torch.Tensor | None = None, jepa_checkpoint: str = JEPA_CHECKPOINT,
                  mae_checkpoint: str = MAE_CHECKPOINT) -> BlockPass:
    """The model work of one comparison: full-image targets (only when `targets` is None), the context
    encoder on the context tokens alone, the predictor, and MAE on the same block."""
    loaded = jepa.load(jepa_checkpoint)
    model, processor = loaded.model, loaded.processor
    pixel_values = jepa.clip_tensor(processor, np.repeat(view[None], num_frames, axis=0))
    computed, predicted, seconds = jepa.targets_context_predict(model, pixel_values, context_ids, target_ids,
                                                                need_targets=targets is None)
    seconds["target_encoder"] = seconds.pop("targets")  # this endpoint's name for it
    start = time.perf_counter()
    reconstruction = mae.reconstruct.plain(view, mae_checkpoint, hidden_ids=patch_ids,
                                           image_size=model.config.crop_size)
    seconds["mae"] = time.perf_counter() - start
    return BlockPass(computed, predicted, reconstruction, seconds)


STAGES = ("target_encoder", "context_encoder", "predictor", "mae")  # a `BlockPass`'s timed stages


# ---------------------------------------------------------------------------------------------
# The comparison
# ---------------------------------------------------------------------------------------------


@dataclass
class Comparison:
    grid: masks.PatchGrid
    block: masks.Block
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
    num_frames: int = CPU_FRAMES
    frames_reason: str = ""  # why V-JEPA 2 saw the picture as `num_frames` frames (`frames_reason`)
    mae_baselines: dict = field(default_factory=dict)  # `pixel_baselines`: MAE's task done without learning
    block_cache_hit: bool = False  # this block of this picture was computed before: no model ran now
    noise: Noise = Noise()  # what was added to the picture both models saw
    block_noise_mse: float = 0.0  # how far the noise moved the block's pixels (pixels in 0..1)
    block_from_sweep: bool = False  # the block's model work was read from the sweep of its size (`block_sweep`)
    images: dict = field(default_factory=dict)

    @property
    def patch_cosines(self) -> np.ndarray:
        """Per block patch (row-major over the block), averaged over tubelets."""
        return self.cosines.reshape(self.tokens.layout.tubelets, -1).mean(axis=0)

    def stats(self) -> dict:
        ids = self.tokens.patch_ids
        mse = self.reconstruction.per_patch_mse.ravel()[ids]
        return {
            "block": dataclasses.asdict(self.block),
            "grid": [self.grid.rows, self.grid.cols],
            "patch_size": self.grid.patch_size,
            "view_size": int(self.view.shape[0]),
            "num_frames": self.num_frames,
            "tubelets": self.tokens.layout.tubelets,
            "frames_reason": self.frames_reason,
            "block_patch_ids": [int(i) for i in ids],
            "target_token_ids": [int(i) for i in self.tokens.target_ids],
            "num_context_tokens": int(len(self.tokens.context_ids)),
            "cosine_per_patch": [round(float(c), 5) for c in self.patch_cosines],
            "mean_cosine": float(self.cosines.mean()),
            "baselines": {
                "context_mean": float(self.baseline_context_mean.mean()),
                "nearest_context_patch": float(self.baseline_nearest_patch.mean()),
            },
            "noise": {"kind": self.noise.kind, "level": self.noise.level, "label": self.noise.label},
            "block_noise_mse": self.block_noise_mse,
            "mae_pixel_mse": self.reconstruction.hidden_mse,
            "mae_pixel_mse_per_patch": [round(float(v), 6) for v in mse],
            "mae_baselines": dict(self.mae_baselines),
            "nearest_neighbour_ids": [int(i) for i in self.neighbour_ids],
            "neighbour_is_own_patch": float(np.mean(self.neighbour_ids == ids)),
            "neighbour_in_block": float(np.mean(np.isin(self.neighbour_ids, ids))),
            "target_cache_hit": self.target_cache_hit,
            "block_cache_hit": self.block_cache_hit,
            "block_from_sweep": self.block_from_sweep,
            "seconds": {k: round(v, 4) for k, v in self.seconds.items()},
            "checkpoints": {"jepa": checkpoints.get(JEPA_CHECKPOINT).hub_id,
                            "mae": checkpoints.get(MAE_CHECKPOINT).hub_id},
        }


@dataclass(frozen=True)
class Picture:
    """One picture as both models see it: what the comparisons of all its blocks share (`picture`)."""

    clean: np.ndarray  # (S, S, 3) uint8: the centre square, before noise
    digest: str  # the image's content
    noise: Noise
    num_frames: int
    frames_asked: bool  # the caller chose `num_frames` (else this device's)
    jepa_checkpoint: str
    mae_checkpoint: str


def picture(image, *, noise: Noise = Noise(), num_frames: int | None = None, jepa_checkpoint: str = JEPA_CHECKPOINT,
            mae_checkpoint: str = MAE_CHECKPOINT) -> Picture:
    """`image` (an HxWx3 uint8 array, `images.load_image`) with `noise`, V-JEPA 2 fed `num_frames` (None: this
    device's, `default_frames`), ready for `compare_block`."""
    asked = num_frames is not None
    crop = jepa.load(jepa_checkpoint).model.config.crop_size
    return Picture(np.array(images.center_square(image, crop)), images.image_digest(image), noise,
                   int(num_frames) if asked else default_frames(), asked, jepa_checkpoint, mae_checkpoint)


def compare(image, top, left, height, width, *, noise: Noise = Noise(), num_frames: int | None = None,
            jepa_checkpoint: str = JEPA_CHECKPOINT, mae_checkpoint: str = MAE_CHECKPOINT) -> Comparison:
    """Hide the (top, left, height, width) block (in patches) of `image` from both MAE and V-JEPA 2.

    image: an HxWx3 uint8 array (`images.load_image`); `noise` is added to the square both models see.
    num_frames: the frames of V-JEPA 2's static clip; None: this device's (`default_frames`).
    Raises `UserError` for a block a learner can fix (outside the grid, no context left). The model work
    is the GPU function `predict_block`; the full-image targets are cached here, in the main process. A block that
    a sweep of its size covers (`block_sweep`, computed by `block_sweep_work`) is read from it: no device call.
    """
    return compare_block(picture(image, noise=noise, num_frames=num_frames, jepa_checkpoint=jepa_checkpoint,
                                 mae_checkpoint=mae_checkpoint), top, left, height, width)


def compare_block(shown: Picture, top, left, height, width) -> Comparison:
    """`compare` on a `picture` already prepared (the page's playback compares every block of a sweep)."""
    noise, num_frames, mae_checkpoint = shown.noise, shown.num_frames, shown.mae_checkpoint
    loaded = jepa.load(shown.jepa_checkpoint)
    model, config = loaded.model, loaded.model.config
    grid, block, tokens = block_tokens(config, top, left, height, width, num_frames)
    layout, patch_ids = tokens.layout, tokens.patch_ids

    key = target_key(shown.digest, noise, loaded, num_frames)
    start = time.perf_counter()
    features, device_pass, from_sweep = known_work(key, shown.digest, block, tokens, mae_checkpoint, model)
    hit = features is not None
    clean = shown.clean
    view = features.view if hit else noise.apply(clean.copy())
    block_hit = device_pass is not None
    if not block_hit:
        device_pass = predict_block(view, tokens.patch_ids, tokens.context_ids, tokens.target_ids, num_frames,
                                    targets=features.targets if hit else None,
                                    jepa_checkpoint=shown.jepa_checkpoint, mae_checkpoint=mae_checkpoint)
        keep_pass(key, patch_ids, mae_checkpoint, device_pass, model)
    seconds = {"gpu_call": time.perf_counter() - start, **device_pass.seconds}
    if not hit:
        features = keep_targets(key, view, device_pass, layout, model)
    predicted, reconstruction = device_pass.predicted, device_pass.reconstruction

    start = time.perf_counter()
    targets = features.targets
    actual = targets[torch.as_tensor(tokens.target_ids)]
    cosines = jepa.cosine_rows(predicted, actual)
    base_mean = context_mean_cosines(targets, tokens.context_ids, tokens.target_ids)
    base_copy = nearest_context_cosines(targets, layout, tokens.context_ids, tokens.target_ids)
    predicted_spatial = predicted.view(layout.tubelets, len(patch_ids), -1).mean(dim=0)
    neighbour_ids, neighbour_cos = nearest_patches(predicted_spatial, features.spatial)
    mae_baselines = pixel_baselines(features.view, grid, patch_ids)
    seconds["scores"] = time.perf_counter() - start

    if reconstruction.grid != grid or not np.array_equal(reconstruction.model_view, features.view):
        raise UserError(f"{mae_checkpoint} cuts images into {reconstruction.grid.patch_size}-pixel patches, "
                        f"V-JEPA 2 into {grid.patch_size}: the two cannot hide the same block.")

    result = Comparison(grid, block, tokens, features.view, predicted, actual, cosines, base_mean, base_copy,
                        neighbour_ids, neighbour_cos, reconstruction, hit, seconds, num_frames,
                        frames_reason(num_frames, asked=shown.frames_asked), mae_baselines, block_hit, noise,
                        added_noise_mse(clean, features.view, block_pixels(grid, patch_ids)), from_sweep)
    start = time.perf_counter()
    result.images = viz.block_comparison_images(
        features.view, grid, block, actual=features.spatial.numpy(), predicted=predicted_spatial.numpy(),
        basis=features.pca, patch_cosines=result.patch_cosines, neighbour_ids=neighbour_ids,
        mae_pasted=reconstruction.pasted, mae_reconstruction=reconstruction.reconstruction)
    seconds["images"] = time.perf_counter() - start
    return result


# The pictures in the order the endpoint returns them; new ones go last, so that a caller's positions stay.
IMAGE_ORDER = ["view", "mae_pasted", "mae_closeup", "pca_actual", "pca_predicted", "cosine_map", "neighbours",
               "jepa_closeup"]
