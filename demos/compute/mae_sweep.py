"""6.1's sweep: MAE's reconstruction at every step of the ratio slider, for one image, checkpoint and seed.

The slider moves in steps of `RATIO_STEP` from 0 to `masks.MAX_MASK_RATIO`: 20 settings. `reconstruct_ratios` runs
them all in one device call (one GPU call on ZeroGPU), each exactly as `mae.reconstruct` runs one, so a ratio answered
from the sweep is the ratio computed alone. The sweeps are kept in `SWEEPS` (the bundled pictures' on disk too), and
`cached` answers a ratio from one with no device call.
"""

from __future__ import annotations

import numpy as np

import checkpoints
from demos import examples, images, masks, sweeps
from demos.compute import mae
from demos.gpu_functions import gpu_task

RATIO_STEP = 0.05  # the page's slider step
# The page's other controls as it opens: a bundled picture's sweep at these is what every learner drags over.
PAGE_SEED, PAGE_CHECKPOINT = 0, "vit-mae-base"
# Sweeps kept in memory: a few pictures at a few seeds (each about 15 MB: five 224-px pictures at 20 ratios).
SWEEPS_KEPT = 6


def slider_ratios() -> list[float]:
    """Every ratio the slider reaches, 0 to `masks.MAX_MASK_RATIO`."""
    steps = round(masks.MAX_MASK_RATIO / RATIO_STEP)
    return [round(step * RATIO_STEP, 2) for step in range(steps + 1)]


def on_slider(ratio: float) -> bool:
    """Whether `ratio` is one of the slider's steps (a script may ask for any ratio)."""
    return any(abs(ratio - step) < 1e-9 for step in slider_ratios())


def slider_step(ratio: float) -> float:
    """The slider's step nearest `ratio` (the sweep's key for it)."""
    return round(round(ratio / RATIO_STEP) * RATIO_STEP, 2)


def gpu_seconds(image, checkpoint: str = "vit-mae-base", *, ratios=(), **_) -> float:
    return len(ratios) * mae.gpu_seconds(image, checkpoint)


def cpu_seconds(image, checkpoint: str = "vit-mae-base", *, ratios=(), **_) -> float:
    return len(ratios) * mae.cpu_seconds(image, checkpoint)


@gpu_task(gpu_seconds=gpu_seconds, cpu_seconds=cpu_seconds)
def reconstruct_ratios(image: np.ndarray, checkpoint: str = "vit-mae-base", *, ratios, seed: int) -> list:
    """`mae.reconstruct` at each of `ratios`, in one device call."""
    return [mae.reconstruct.plain(image, checkpoint, ratio=ratio, seed=seed) for ratio in ratios]


def key(image: np.ndarray, checkpoint: str, seed: int) -> tuple:
    """What a sweep depends on: the picture's content, the seed, and the weights (`checkpoints.weights_id`, dtype)."""
    dtype = str(next(mae.load(checkpoint).model.parameters()).dtype)
    return images.image_digest(image), checkpoint, checkpoints.weights_id(checkpoint), dtype, int(seed)


# ---------------------------------------------------------------------------------------------
# On disk: the pictures stacked over the ratios, the numbers as JSON
# ---------------------------------------------------------------------------------------------

_PICTURES = ("masked", "reconstruction", "pasted", "error_map")


def _encode(results: list) -> tuple[dict, dict]:
    first = results[0]
    arrays = {name: np.stack([getattr(r, name) for r in results]) for name in _PICTURES}
    arrays["model_view"] = first.model_view
    arrays["per_patch_mse"] = np.stack([r.per_patch_mse for r in results])
    arrays["hidden"] = np.stack([masks.hidden_mask(first.grid.num_patches, r.hidden_ids) for r in results])
    numbers = [{"hidden_mse": r.hidden_mse, "model_loss": r.model_loss, "best_constant_mse": r.best_constant_mse,
                "image_mean_colour_mse": r.image_mean_colour_mse} for r in results]
    grid = first.grid
    return arrays, {"grid": [grid.rows, grid.cols, grid.patch_size], "numbers": numbers}


def _decode(arrays: dict, meta: dict) -> list:
    grid = masks.PatchGrid(*meta["grid"])
    return [mae.Reconstruction(model_view=arrays["model_view"], **{name: arrays[name][i] for name in _PICTURES},
                               grid=grid, hidden_ids=np.flatnonzero(arrays["hidden"][i]).astype(np.int64),
                               per_patch_mse=arrays["per_patch_mse"][i], **numbers)
            for i, numbers in enumerate(meta["numbers"])]


SWEEPS = sweeps.SweepStore("mae-ratios", SWEEPS_KEPT, sweeps.Codec(_encode, _decode))


def sweep(image: np.ndarray, checkpoint: str, seed: int, *, keep_on_disk: bool = False) -> tuple[dict, bool]:
    """{ratio: Reconstruction} at every slider step, and whether it was computed now (one device call) rather than
    found (in memory, or on disk for a bundled picture)."""
    ratios = slider_ratios()
    results, computed = SWEEPS.get_or_compute(
        key(image, checkpoint, seed), lambda: reconstruct_ratios(image, checkpoint, ratios=ratios, seed=seed),
        keep_on_disk=keep_on_disk)
    return dict(zip(ratios, results, strict=True)), computed


def shared(image: np.ndarray, checkpoint: str, seed: int) -> bool:
    """Whether this is a sweep every learner drags over (a bundled picture, the page's seed and checkpoint), computed
    once for everyone by the first request that needs any of its ratios, and kept on disk."""
    return (checkpoint, int(seed)) == (PAGE_CHECKPOINT, PAGE_SEED) and examples.is_bundled_image(image)


def cached(image: np.ndarray, checkpoint: str, ratio: float, seed: int):
    """The reconstruction at `ratio` from a sweep already made, or None (no device call either way)."""
    if not (on_slider(ratio) and checkpoints.is_loaded(checkpoint)):
        return None
    results = SWEEPS.get(key(image, checkpoint, seed))
    return None if results is None else results[slider_ratios().index(slider_step(ratio))]


def previews(image: np.ndarray, checkpoint: str, seed: int) -> dict:
    """{ratio: MaskPreview} at every slider step: what each ratio hides, drawn without a model (milliseconds)."""
    return {ratio: mae.mask_preview(image, checkpoint, ratio=ratio, seed=seed) for ratio in slider_ratios()}
