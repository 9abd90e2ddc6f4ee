"""6.0 Patches and tokens: a square image cut into patches, each one token for a ViT."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import PIL.Image

from demos import viz

SIZE = 224


@dataclass
class Patches:
    grid_image: np.ndarray  # (SIZE, SIZE, 3) uint8 with the patch grid drawn
    patch_size: int

    def numbers(self) -> dict:
        side = SIZE // self.patch_size
        return {"patch_size": self.patch_size, "grid": [side, side], "tokens": side * side}


def cut(image: np.ndarray, patch_size: int) -> Patches:
    side = min(image.shape[:2])
    top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
    square = PIL.Image.fromarray(image[top:top + side, left:left + side]).resize((SIZE, SIZE))
    return Patches(viz.draw_grid(np.asarray(square), patch_size, alpha=0.8), patch_size)
