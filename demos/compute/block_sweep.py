"""6.2-6.3's sweep: one block size at every position of V-JEPA 2's patch grid, for one picture, and where sweeps are kept.

What a sweep holds is what rebuilds the comparison of any of its blocks exactly, and no more: the picture both models
saw, its full-image targets, and per position the predictor's embeddings of the block's tokens and MAE's decoder
picture inside the block (with its loss). `mae_vs_jepa.compare` answers a covered block from it with no device call;
the page plays it back while the block is dragged. Its model work is `block_sweep_work` (one GPU call).

Sweeps are kept in `STORE` (`demos.sweeps.SweepStore`), complete ones only; a sweep still growing (on a CPU it takes
minutes) is in `GROWING`, so that a block it already covers is answered from it too, and a run stopped half-way is
taken up where it stopped.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
import torch

from demos import masks, sweeps
from demos.compute import mae

# Complete sweeps kept in memory. A 4x4 block on the 16x16 grid of ViT-L: 169 positions x 16 tokens per tubelet x 1024
# numbers of predicted embeddings (11 MB at 2 frames, 88 MB at a GPU's 16) and MAE's pixels in the block (8 MB).
STORE_ENTRIES = 4


@dataclass
class BlockSweep:
    """One block size at `positions` of one picture; `total` positions when complete (row-major over the grid)."""

    view: np.ndarray  # (S, S, 3) uint8: the square both models saw, noise included
    targets: torch.Tensor | None  # (N, D) float32: the full clip's layer-normalised encoder output (None: not yet)
    height: int  # the block, in patches
    width: int
    patch_size: int  # pixels
    num_frames: int  # V-JEPA 2's static clip
    total: int  # the positions a block of this size has on the grid
    positions: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))  # (P, 2): top, left
    predicted: torch.Tensor | None = None  # (P, M, D) float32: the predictor's embeddings of the block's tokens
    mae_pixels: np.ndarray | None = None  # (P, height*p, width*p, 3) float32 in 0..1: MAE's decoder picture there
    mae_loss: np.ndarray | None = None  # (P,) MAE's own loss on the block
    seconds: dict = field(default_factory=dict)  # the model work, by stage, summed over the device calls

    @property
    def complete(self) -> bool:
        return len(self.positions) == self.total

    @property
    def grid(self) -> masks.PatchGrid:
        return masks.PatchGrid.square(self.view.shape[0], self.patch_size)

    def index(self, top: int, left: int) -> int | None:
        """Where the block at (top, left) is in the sweep, or None."""
        found = np.flatnonzero((self.positions[:, 0] == top) & (self.positions[:, 1] == left))
        return int(found[0]) if len(found) else None

    def block_work(self, top: int, left: int) -> tuple[torch.Tensor, mae.Reconstruction] | None:
        """The model work of the block at (top, left), as one comparison computes it: the predicted embeddings and
        MAE's `Reconstruction` (the decoder's picture outside the block, never shown, is the view's); None when the
        sweep does not cover it."""
        i = self.index(top, left)
        if i is None:
            return None
        grid, p = self.grid, self.patch_size
        block = masks.Block(top, left, self.height, self.width)
        y0, x0, y1, x1 = block.pixel_box(p)
        picture = self.view.astype(np.float32) / 255
        picture[y0:y1, x0:x1] = self.mae_pixels[i]
        hidden = masks.hidden_mask(grid.num_patches, block.patch_ids(grid))
        return self.predicted[i], mae.reconstruction_of(self.view, picture, hidden, grid, self.mae_loss[i])

    def extended(self, positions: np.ndarray, predicted: torch.Tensor, mae_pixels: np.ndarray, mae_loss: np.ndarray,
                 seconds: dict) -> BlockSweep:
        """This sweep with more positions."""
        def joined(mine, more, cat):
            return more if mine is None else cat([mine, more])

        return BlockSweep(self.view, self.targets, self.height, self.width, self.patch_size, self.num_frames,
                          self.total, np.concatenate([self.positions, np.asarray(positions, np.int64).reshape(-1, 2)]),
                          joined(self.predicted, predicted, torch.cat),
                          joined(self.mae_pixels, mae_pixels, np.concatenate),
                          joined(self.mae_loss, mae_loss, np.concatenate),
                          {k: self.seconds.get(k, 0.0) + seconds.get(k, 0.0) for k in {*self.seconds, *seconds}})


def all_positions(grid: masks.PatchGrid, height: int, width: int) -> np.ndarray:
    """(P, 2): every (top, left) of a height x width block inside the grid, row-major."""
    tops, lefts = np.mgrid[0:grid.rows - height + 1, 0:grid.cols - width + 1]
    return np.stack([tops.ravel(), lefts.ravel()], axis=1).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Kept in memory, the bundled examples' also on disk (arrays and JSON, no pickle)
# ---------------------------------------------------------------------------------------------

_ARRAYS = ("view", "positions", "mae_pixels", "mae_loss")
_NUMBERS = ("height", "width", "patch_size", "num_frames", "total")


def _encode(sweep: BlockSweep) -> tuple[dict, dict]:
    arrays = {name: getattr(sweep, name) for name in _ARRAYS}
    arrays.update(targets=sweep.targets.numpy(), predicted=sweep.predicted.numpy())
    return arrays, {**{name: getattr(sweep, name) for name in _NUMBERS}, "seconds": sweep.seconds}


def _decode(arrays: dict, meta: dict) -> BlockSweep:
    return BlockSweep(targets=torch.from_numpy(arrays["targets"]), predicted=torch.from_numpy(arrays["predicted"]),
                      seconds=meta["seconds"], **{name: arrays[name] for name in _ARRAYS},
                      **{name: int(meta[name]) for name in _NUMBERS})


STORE = sweeps.SweepStore("block", STORE_ENTRIES, sweeps.Codec(_encode, _decode))
GROWING: dict = {}  # key -> the sweep still growing: the positions computed so far
_GROWING_LOCK = threading.Lock()


def key(target_key: tuple, mae_checkpoint: str, mae_model, height: int, width: int, weights: tuple[str, ...]) -> tuple:
    """A sweep's key: the picture's target key (its content, noise, V-JEPA 2 checkpoint, frames and dtype,
    `mae_vs_jepa.target_key`), MAE's checkpoint and dtype, the block's size and the weights both read
    (`checkpoints.weights_id`: the model object is not the same after a restart, the files are)."""
    dtype = str(next(mae_model.parameters()).dtype)
    return (*target_key, mae_checkpoint, dtype, int(height), int(width), *weights)


def find(sweep_key: tuple, *, on_disk: bool) -> BlockSweep | None:
    """The sweep of `sweep_key` as far as it is computed (complete, or still growing), or None; `on_disk`: also
    read the store's disk (the bundled examples)."""
    with _GROWING_LOCK:
        growing = GROWING.get(sweep_key)
    return STORE.find(sweep_key, on_disk=on_disk) or growing


def grew(sweep_key: tuple, sweep: BlockSweep) -> None:
    """Note how far a sweep has grown; a complete one moves to the store (and `keep_on_disk` by the caller)."""
    with _GROWING_LOCK:
        if sweep.complete:
            GROWING.pop(sweep_key, None)
        else:
            GROWING[sweep_key] = sweep
            while len(GROWING) > STORE_ENTRIES:  # the oldest unfinished ones are dropped
                GROWING.pop(next(iter(GROWING)))
