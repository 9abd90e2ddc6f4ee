"""Noise a learner can add to the picture both models see: film grain (a level) or JPEG compression (a quality).

The chapter: "Force a model to predict every pixel and it burns capacity on textures, noise, even JPEG
artifacts ... JEPA predicts the gist." A `Noise` is applied to the model's square view (after cropping and
resizing, so one grain is one pixel the models see), deterministically: the same image and level give the
same pixels, so their features can be cached, and a grain pattern only grows with its level.
No gradio; a bad level raises `UserError`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from demos.errors import UserError, number, whole_number

NONE, GRAIN, JPEG = "none", "grain", "jpeg"
KINDS = (NONE, GRAIN, JPEG)
MAX_GRAIN_LEVEL = 64  # the grain's standard deviation in 8-bit levels: at 64 the picture is barely legible
MIN_JPEG_QUALITY, MAX_JPEG_QUALITY = 1, 100  # Pillow's scale
DEFAULT_GRAIN_LEVEL = 24
DEFAULT_JPEG_QUALITY = 10
GRAIN_SEED = 0  # one fixed grain pattern, scaled by the level


@dataclass(frozen=True)
class Noise:
    """`kind` with its `level`: the grain's standard deviation in 8-bit levels, or the JPEG quality."""

    kind: str = NONE
    level: float = 0.0

    @classmethod
    def of(cls, kind, grain_level=DEFAULT_GRAIN_LEVEL, jpeg_quality=DEFAULT_JPEG_QUALITY) -> Noise:
        """The noise a learner (or a script) asked for, validated: both levels must be sensible whichever is used."""
        if kind not in KINDS:
            raise UserError(f"The noise must be one of {', '.join(repr(k) for k in KINDS)}; got {kind!r}.")
        grain = number("The film grain level", grain_level, minimum=0, maximum=MAX_GRAIN_LEVEL)
        quality = whole_number("The JPEG quality", jpeg_quality, minimum=MIN_JPEG_QUALITY, maximum=MAX_JPEG_QUALITY)
        if kind == GRAIN and grain > 0:
            return cls(GRAIN, grain)
        if kind == JPEG:
            return cls(JPEG, quality)
        return cls()

    @property
    def is_clean(self) -> bool:
        return self.kind == NONE

    @property
    def label(self) -> str:
        if self.kind == GRAIN:
            return f"grain {self.level:g}"
        return f"JPEG q{self.level:g}" if self.kind == JPEG else "clean"

    def apply(self, view: np.ndarray) -> np.ndarray:
        """The (S, S, 3) uint8 view with this noise added (the view itself when clean)."""
        if self.kind == GRAIN:
            # Luminance grain: one value per pixel, added to all three channels, as film grain looks.
            grain = np.random.default_rng(GRAIN_SEED).standard_normal(view.shape[:2], dtype=np.float32)
            noisy = view.astype(np.float32) + self.level * grain[..., None]
            return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
        if self.kind == JPEG:
            buffer = io.BytesIO()
            Image.fromarray(view).save(buffer, format="JPEG", quality=int(self.level))
            return np.array(Image.open(buffer).convert("RGB"))
        return view

    def levels(self, count: int) -> list[Noise]:
        """`count` levels from the clean picture to this one, evenly spaced in strength (grain level, or
        100 - quality): grain 24 in 3 levels is clean, 12, 24; JPEG quality 10 is clean, q55, q10."""
        if self.is_clean:
            raise UserError("Pick film grain (a level above 0) or JPEG compression first: a clean picture has no "
                            "noise levels to compare.")
        steps = np.linspace(0, 1, count)[1:]
        if self.kind == GRAIN:
            return [Noise(), *(Noise(GRAIN, round(float(self.level * s), 1)) for s in steps)]
        return [Noise(), *(Noise(JPEG, round(MAX_JPEG_QUALITY - float(MAX_JPEG_QUALITY - self.level) * s))
                           for s in steps)]


def added_noise_mse(clean: np.ndarray, noisy: np.ndarray, pixel_mask: np.ndarray) -> float:
    """Mean squared difference (pixels in 0..1) between two uint8 views where `pixel_mask` is True: the noise itself."""
    difference = (noisy[pixel_mask].astype(np.float64) - clean[pixel_mask].astype(np.float64)) / 255
    return float((difference ** 2).mean())
