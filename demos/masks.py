"""Patch grids, random masks, blocks and tubes, as token ids.

Conventions (they match the models):
- A patch grid is `rows x cols`; patch ids are row-major: `id = row * cols + col`.
- V-JEPA 2 token ids are time-major: `id = t * (rows * cols) + row * cols + col`, `t` over tubelets.
- ViT-MAE hides `L - int(L * (1 - ratio))` patches at a ratio (`num_hidden`).
- A block is a rectangle of patches (`Block`); `fit_block` keeps one inside the grid and
  `block_at_pixel` centres one on a click: one rule for every tab.
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


@dataclass(frozen=True)
class Block:
    """A `height x width` rectangle of patches whose top-left patch is (top, left)."""

    top: int
    left: int
    height: int
    width: int

    def patch_ids(self, grid: PatchGrid) -> np.ndarray:
        return block_ids(grid, self.top, self.left, self.height, self.width)

    def pixel_box(self, patch_size: int) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) in pixels of the model view, bottom/right exclusive."""
        return (self.top * patch_size, self.left * patch_size,
                (self.top + self.height) * patch_size, (self.left + self.width) * patch_size)


def fit_block(grid: PatchGrid, top: int, left: int, height: int, width: int) -> Block:
    """The block shrunk to the grid if it is larger, then moved inside it if it reaches past an edge."""
    height, width = min(max(int(height), 1), grid.rows), min(max(int(width), 1), grid.cols)
    return Block(min(max(int(top), 0), grid.rows - height), min(max(int(left), 0), grid.cols - width), height, width)


def block_at_pixel(grid: PatchGrid, x, y, height, width) -> Block:
    """The block of this size centred as near a click at pixel (x, y) of the model view as the grid allows."""
    x, y = float(x), float(y)
    if not (np.isfinite(x) and np.isfinite(y)):
        raise UserError("That click did not land on the image; click on the picture to place the block.")
    height = whole_number("The block's height", height)
    width = whole_number("The block's width", width)
    # The click is the block's centre: its top edge lies height/2 patches above the click.
    top = round(y / grid.patch_size - height / 2)
    left = round(x / grid.patch_size - width / 2)
    return fit_block(grid, top, left, height, width)


def spatiotemporal_ids(grid: PatchGrid, patch_ids, tubelets) -> np.ndarray:
    """V-JEPA 2 token ids (time-major) of the given spatial patches in each of the given tubelets."""
    patch_ids = np.asarray(patch_ids, dtype=np.int64)
    tubelets = np.asarray(list(tubelets), dtype=np.int64)
    return (tubelets[:, None] * grid.num_patches + patch_ids[None, :]).ravel()


def complement(num_tokens: int, token_ids) -> np.ndarray:
    """Sorted ids in range(num_tokens) that are not in token_ids."""
    return np.flatnonzero(~hidden_mask(num_tokens, token_ids))
