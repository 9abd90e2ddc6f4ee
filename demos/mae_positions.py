"""ViT-MAE's position tables for any patch grid: the checkpoint's own 2-D sin-cos formula, not a stretched table.

ViT-MAE adds fixed (never trained) 2-D sin-cos tables to its encoder's and its decoder's tokens, made for
the checkpoint's grid (224 px in 16-px patches: 14 x 14). On another grid (the 6.2-6.3 comparison runs it
on V-JEPA 2's 256 px, 16 x 16) the right table is the same formula evaluated on that grid, so MAE behaves
as MAE built for that size. transformers interpolates instead: its encoder's 2-D bicubic interpolation
only approximates the formula, and its decoder's (`ViTMAEDecoder.interpolate_pos_encoding`, 5.23)
stretches the flattened table along one axis, which moves most positions to another row and column.

Two layouts of the formula are in circulation, and `stored_layout` says which one reproduces a stored
table: `ROW_FIRST`, transformers' `build_2d_sinusoidal_position_embedding` (`[sin_h|cos_h|sin_w|cos_w]`),
and `COLUMN_FIRST`, MAE's `get_2d_sincos_pos_embed` (its first half encodes the column; what the MAE code
trained with). A table that matches neither is interpolated in 2-D (`INTERPOLATED`), and the caller says
so in the log. Tensors in, tensors out; no gradio.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers.models.vit_mae.modeling_vit_mae import build_2d_sinusoidal_position_embedding

ROW_FIRST = "row_first"  # transformers' build_2d_sinusoidal_position_embedding: [sin_h|cos_h|sin_w|cos_w]
COLUMN_FIRST = "column_first"  # MAE's get_2d_sincos_pos_embed: [sin_w|cos_w|sin_h|cos_h]
INTERPOLATED = "interpolated"  # the stored table follows neither: other grids get a 2-D bicubic interpolation
# A stored table is a float32 (or bf16, fp16) copy of the float64 formula: allow that rounding, nothing more.
MATCH_TOLERANCE = 1e-4


def sincos_table(rows: int, cols: int, dim: int, layout: str) -> torch.Tensor:
    """(rows * cols, dim) float64: the 2-D sin-cos positions of a row-major patch grid, in `layout`."""
    table = build_2d_sinusoidal_position_embedding(rows, cols, dim, dtype=torch.float64)
    if layout == COLUMN_FIRST:
        half = dim // 2
        table = torch.cat([table[:, half:], table[:, :half]], dim=1)
    elif layout != ROW_FIRST:
        raise ValueError(f"No sin-cos formula for layout {layout!r}")
    return table


def stored_layout(table: torch.Tensor) -> str:
    """Which formula reproduces a stored `(1, 1 + N, D)` table (class token first, then a square grid)."""
    patches = table.detach()[0, 1:].cpu()
    side = math.isqrt(patches.shape[0])
    if side * side != patches.shape[0] or patches.shape[1] % 4:
        return INTERPOLATED
    tolerance = MATCH_TOLERANCE + (torch.finfo(patches.dtype).eps if patches.dtype.is_floating_point else 0)
    for layout in (COLUMN_FIRST, ROW_FIRST):
        formula = sincos_table(side, side, patches.shape[1], layout).to(patches.dtype)
        if torch.allclose(patches.double(), formula.double(), rtol=0, atol=tolerance):
            return layout
    return INTERPOLATED


def interpolate(table: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """A stored `(1, 1 + N, D)` square-grid table resized to `rows x cols` in 2-D (bicubic), class token kept."""
    patches = table[:, 1:]
    side, dim = math.isqrt(patches.shape[1]), patches.shape[2]
    grid = patches.reshape(1, side, side, dim).permute(0, 3, 1, 2).float()
    resized = F.interpolate(grid, size=(rows, cols), mode="bicubic", align_corners=False)
    resized = resized.permute(0, 2, 3, 1).reshape(1, rows * cols, dim).to(table.dtype)
    return torch.cat([table[:, :1], resized], dim=1)


def for_grid(table: torch.Tensor, layout: str, rows: int, cols: int) -> torch.Tensor:
    """The `(1, 1 + rows * cols, D)` table for a `rows x cols` grid, on the stored table's device and dtype.

    The stored grid gets the stored table itself; another grid gets the formula the stored table follows
    (its class-token row kept: MAE's is zero), or a 2-D interpolation when it follows neither.
    """
    if rows == cols == math.isqrt(table.shape[1] - 1):
        return table
    if layout == INTERPOLATED:
        return interpolate(table, rows, cols)
    patches = sincos_table(rows, cols, table.shape[-1], layout).to(table.device, table.dtype)
    return torch.cat([table[:, :1], patches[None]], dim=1)


@dataclass(frozen=True)
class Layouts:
    """Which formula each of a ViT-MAE's two stored tables follows (checked once, at load)."""

    encoder: str
    decoder: str

    @classmethod
    def of(cls, model) -> Layouts:
        """Compare `model`'s stored tables (a `ViTMAEForPreTraining`) with both formulas."""
        return cls(stored_layout(model.vit.embeddings.position_embeddings),
                   stored_layout(model.decoder.decoder_pos_embed))

    def tables(self, model, rows: int, cols: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(encoder table, decoder table) of `model` for a `rows x cols` grid, each `(1, 1 + rows * cols, D)`."""
        return (for_grid(model.vit.embeddings.position_embeddings, self.encoder, rows, cols),
                for_grid(model.decoder.decoder_pos_embed, self.decoder, rows, cols))
