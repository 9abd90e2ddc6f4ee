"""Patch grids, random masks, blocks and tubes, as token ids.

Conventions (they match the models):
- A patch grid is `rows x cols`; patch ids are row-major: `id = row * cols + col`.
- V-JEPA 2 token ids are time-major: `id = t * (rows * cols) + row * cols + col`, `t` over tubelets.
- ViT-MAE keeps the `len_keep = int(L * (1 - mask_ratio))` lowest-`noise` patches; `masks.mae_noise`
  turns an exact set of hidden patches into the `noise` and `mask_ratio` that make it do so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from demos.errors import UserError, number, whole_number

MAX_MASK_RATIO = 0.95  # above this MAE keeps fewer than 10 of 196 patches; the slider stops here
MAX_SEED = 2**31 - 1


@dataclass(frozen=True)
class PatchGrid:
    rows: int
    cols: int
    patch_size: int  # pixels

    @property
    def num_patches(self) -> int:
        return self.rows * self.cols

    @classmethod
    def square(cls, image_size: int, patch_size: int) -> PatchGrid:
        return cls(image_size // patch_size, image_size // patch_size, patch_size)


def validate_ratio(ratio) -> float:
    return number("The mask ratio", ratio, minimum=0.0, maximum=MAX_MASK_RATIO)


def validate_seed(seed) -> int:
    return whole_number("The mask seed", seed, minimum=0, maximum=MAX_SEED)


def num_hidden(num_patches: int, ratio: float) -> int:
    """How many patches ViT-MAE hides at this ratio: its own rule, `L - int(L * (1 - ratio))`."""
    return num_patches - int(num_patches * (1 - ratio))


def random_hidden_ids(num_patches: int, ratio: float, seed: int) -> np.ndarray:
    """The patches hidden for (seed, ratio), sorted. For one seed, a higher ratio hides a superset."""
    order = np.random.default_rng(seed).permutation(num_patches)
    return np.sort(order[: num_hidden(num_patches, ratio)])


def hidden_mask(num_patches: int, hidden_ids) -> np.ndarray:
    """Boolean (num_patches,) array, True where hidden."""
    mask = np.zeros(num_patches, dtype=bool)
    mask[np.asarray(hidden_ids, dtype=np.int64)] = True
    return mask


def mae_noise(num_patches: int, hidden_ids):
    """`noise` (1, L) float tensor and `mask_ratio` that make ViT-MAE hide exactly `hidden_ids`.

    MAE keeps the lowest-noise patches, so hidden patches get noise 1 and visible ones 0. The ratio is
    set half a patch below the exact fraction so that `int(L * (1 - ratio))` cannot round the wrong way.
    """
    import torch

    hidden = hidden_mask(num_patches, hidden_ids)
    noise = torch.from_numpy(hidden.astype(np.float32))[None]
    ratio = max(0.0, (int(hidden.sum()) - 0.5) / num_patches)
    return noise, ratio


def block_ids(grid: PatchGrid, top: int, left: int, height: int, width: int) -> np.ndarray:
    """Row-major patch ids of a `height x width` block whose top-left patch is (top, left)."""
    if not (1 <= height <= grid.rows and 1 <= width <= grid.cols):
        raise UserError(f"The block must be 1 to {grid.rows} patches high and 1 to {grid.cols} wide; "
                        f"got {height} x {width}.")
    if not (0 <= top <= grid.rows - height and 0 <= left <= grid.cols - width):
        raise UserError(f"A {height} x {width} block starting at row {top}, column {left} does not fit "
                        f"in the {grid.rows} x {grid.cols} patch grid.")
    rows = np.arange(top, top + height)
    cols = np.arange(left, left + width)
    return (rows[:, None] * grid.cols + cols[None, :]).ravel()


def clamp_block(grid: PatchGrid, center_row: float, center_col: float, height: int, width: int) -> tuple[int, int]:
    """Top-left patch of a block centred as near (center_row, center_col) as the grid allows."""
    top = int(round(center_row - (height - 1) / 2))
    left = int(round(center_col - (width - 1) / 2))
    return min(max(top, 0), grid.rows - height), min(max(left, 0), grid.cols - width)


def spatiotemporal_ids(grid: PatchGrid, patch_ids, tubelets) -> np.ndarray:
    """V-JEPA 2 token ids (time-major) of the given spatial patches in each of the given tubelets."""
    patch_ids = np.asarray(patch_ids, dtype=np.int64)
    tubelets = np.asarray(list(tubelets), dtype=np.int64)
    return (tubelets[:, None] * grid.num_patches + patch_ids[None, :]).ravel()


def complement(num_tokens: int, token_ids) -> np.ndarray:
    """Sorted ids in range(num_tokens) that are not in token_ids."""
    return np.flatnonzero(~hidden_mask(num_tokens, token_ids))
