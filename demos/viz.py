"""Turn tensors into pictures: patch masks, heat maps, PCA colours of embeddings, outlines.

Everything here takes and returns numpy arrays (images are HxWx3 uint8), so it is easy to test and
has no UI or model code in it.
"""

from __future__ import annotations

import numpy as np

# Anchor colours of matplotlib's "inferno" map (dark = low, bright yellow = high), interpolated below.
_INFERNO = np.array([
    [0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21],
    [250, 193, 39], [252, 255, 164],
], dtype=np.float32)
# A diverging map for signed values such as cosine similarity: blue (-1), white (0), red (+1).
_COOL_WARM = np.array([[59, 76, 192], [221, 221, 221], [180, 4, 38]], dtype=np.float32)

HIDDEN_GREY = 128  # hidden patches are shown mid-grey, as in the MAE paper's figures


def colormap(values: np.ndarray, vmin: float, vmax: float, anchors: np.ndarray = _INFERNO) -> np.ndarray:
    """Map values (any shape) to uint8 RGB (shape + (3,)) with a piecewise-linear colour map."""
    span = max(vmax - vmin, 1e-12)
    t = np.clip((np.asarray(values, dtype=np.float32) - vmin) / span, 0, 1) * (len(anchors) - 1)
    low = np.floor(t).astype(int).clip(0, len(anchors) - 2)
    frac = (t - low)[..., None]
    return (anchors[low] * (1 - frac) + anchors[low + 1] * frac).round().astype(np.uint8)


def cosine_colors(values: np.ndarray) -> np.ndarray:
    """Cosine similarity in [-1, 1] as blue-white-red."""
    return colormap(values, -1.0, 1.0, _COOL_WARM)


def upsample_patches(patch_values: np.ndarray, patch_size: int) -> np.ndarray:
    """(rows, cols[, C]) per-patch values -> (rows*p, cols*p[, C]) image with one flat square per patch."""
    return np.repeat(np.repeat(patch_values, patch_size, axis=0), patch_size, axis=1)


def patch_mask_image(mask_2d: np.ndarray, patch_size: int) -> np.ndarray:
    """(rows, cols) bool -> (H, W) bool pixel mask."""
    return upsample_patches(mask_2d.astype(bool), patch_size)


def grey_out(image: np.ndarray, pixel_mask: np.ndarray, grey: int = HIDDEN_GREY) -> np.ndarray:
    """The image with the masked pixels replaced by flat grey."""
    out = image.copy()
    out[pixel_mask] = grey
    return out


def blend(base: np.ndarray, overlay: np.ndarray, alpha: float, where: np.ndarray | None = None) -> np.ndarray:
    """Alpha-blend overlay onto base, optionally only where a pixel mask is True."""
    mixed = (base.astype(np.float32) * (1 - alpha) + overlay.astype(np.float32) * alpha).round().astype(np.uint8)
    if where is None:
        return mixed
    out = base.copy()
    out[where] = mixed[where]
    return out


def draw_rectangle(image: np.ndarray, top: int, left: int, bottom: int, right: int,
                   color=(255, 220, 0), thickness: int = 2) -> np.ndarray:
    """Outline the pixel rectangle [top, bottom) x [left, right) (clipped to the image)."""
    out = image.copy()
    h, w = out.shape[:2]
    top, left = max(top, 0), max(left, 0)
    bottom, right = min(bottom, h), min(right, w)
    t = max(1, thickness)
    out[top:min(top + t, bottom), left:right] = color
    out[max(bottom - t, top):bottom, left:right] = color
    out[top:bottom, left:min(left + t, right)] = color
    out[top:bottom, max(right - t, left):right] = color
    return out


def draw_grid(image: np.ndarray, patch_size: int, color=(255, 255, 255), alpha: float = 0.25) -> np.ndarray:
    """Faint patch grid lines, so a learner sees what a 'patch' is."""
    lines = np.zeros(image.shape[:2], dtype=bool)
    lines[::patch_size, :] = True
    lines[:, ::patch_size] = True
    return blend(image, np.broadcast_to(np.array(color, np.uint8), image.shape), alpha, where=lines)


def pca_basis(features: np.ndarray, components: int = 3):
    """Mean and top principal directions of (N, D) features, plus the per-component range of the data.

    Fit once on one image's (or clip's) actual features; project predicted features with the same
    basis and range, so colours are comparable between actual and predicted.
    """
    features = np.asarray(features, dtype=np.float64)
    mean = features.mean(axis=0)
    centred = features - mean
    if len(centred) > centred.shape[1]:
        # More tokens than dimensions (a clip: 2048 x 1024): the D x D covariance's eigenvectors are
        # the same directions as the SVD's, about 5x faster.
        eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred)
        directions = eigenvectors[:, ::-1][:, :components].T
    else:
        # SVD of the (N, D) matrix: rows of vt are the principal directions.
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        directions = vt[:components]
    # Fix each direction's sign so colours do not flip between runs on the same data.
    signs = np.sign(directions[np.arange(len(directions)), np.abs(directions).argmax(axis=1)])
    directions = directions * signs[:, None]
    projected = centred @ directions.T
    low, high = np.percentile(projected, 1, axis=0), np.percentile(projected, 99, axis=0)
    return mean, directions, low, high


def pca_colors(features: np.ndarray, basis) -> np.ndarray:
    """(N, D) features -> (N, 3) uint8 colours under a basis from `pca_basis`."""
    mean, directions, low, high = basis
    projected = (np.asarray(features, dtype=np.float64) - mean) @ directions.T
    scaled = (projected - low) / np.maximum(high - low, 1e-12)
    rgb = np.zeros((len(scaled), 3))
    rgb[:, : scaled.shape[1]] = scaled
    return (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)
