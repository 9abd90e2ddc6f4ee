"""Reading images safely: any format, mode and orientation as an upright, bounded RGB array.

Every uploaded, webcam or example picture passes through `load_image` before any model sees it. It returns an
HxWx3 uint8 RGB array and raises `UserError` with a sentence a learner can act on for anything they can fix
(wrong file, a file or picture that is too big).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from demos import uploads
from demos.cache import LRUCache
from demos.errors import UserError, brief
from demos.results import file_digest

MAX_IMAGE_PIXELS = 150_000_000  # a 12000x12000 photo must still load; beyond this it is a decompression bomb
MAX_IMAGE_SIDE = 1024  # images are downscaled so their long side is at most this, before any model

# Pillow refuses images over 2x its limit (DecompressionBombError) and warns over 1x. Raise its
# default (89 Mpx) to ours so gradio's own decoding of an upload agrees with us; we check ourselves too.
if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < MAX_IMAGE_PIXELS:
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS

_IMAGE_HINT = "Try a PNG, JPEG or WebP image."


def load_image(source) -> np.ndarray:
    """Any supported image (path, PIL image or numpy array) as an HxWx3 uint8 RGB array.

    EXIF orientation is applied, every Pillow mode is converted (alpha is composited on white,
    16-bit values are scaled, not clipped) and the long side is brought down to MAX_IMAGE_SIDE.
    A file whose content was read recently is not decoded again.
    """
    if source is None or (isinstance(source, str) and source == ""):
        raise UserError("No image given: upload an image, take a photo with the webcam, or pick an example.")
    if isinstance(source, np.ndarray):
        rgb = array_to_rgb(source)
    elif isinstance(source, Image.Image):
        with _pillow_errors():
            rgb = _pil_to_rgb(source)
    elif isinstance(source, (str, os.PathLike)):
        return _read_image_file(Path(source))
    else:
        raise UserError(f"An image was expected, but got a {type(source).__name__}. {_IMAGE_HINT}")
    return np.ascontiguousarray(_fit_long_side(rgb, MAX_IMAGE_SIDE))


def image_digest(image: np.ndarray) -> str:
    """A content hash of an array (shape, dtype and bytes): the key of every per-image cache."""
    array = np.ascontiguousarray(image)
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{array.shape}|{array.dtype.str}|".encode())
    digest.update(array.data)
    return digest.hexdigest()


def center_square(image: np.ndarray, size: int) -> np.ndarray:
    """The largest centred square of an HxWx3 image, resized to size x size (uint8 RGB).

    All models here see a square; cropping before resizing keeps the picture's proportions.
    """
    rgb = array_to_rgb(np.asarray(image))
    height, width = rgb.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    crop = rgb[top:top + side, left:left + side]
    if side != size:
        crop = np.asarray(Image.fromarray(crop).resize((int(size), int(size)), Image.Resampling.BICUBIC))
    return np.ascontiguousarray(crop)



# A learner runs a demo on the same picture many times (a new mask, a moved block): its pixels, decoded and brought
# down to MAX_IMAGE_SIDE, are kept by the file's content, so a run decodes no upload it has seen before.
DECODED_IMAGES = 8
_decoded = LRUCache(DECODED_IMAGES)


def _read_image_file(path: Path) -> np.ndarray:
    uploads.check_file(path, "image", _IMAGE_HINT)
    key = file_digest(path)
    rgb = _decoded.get(key)
    if rgb is None:
        rgb = np.ascontiguousarray(_fit_long_side(_decode_file(path), MAX_IMAGE_SIDE))
        rgb.flags.writeable = False
        _decoded.put(key, rgb)
    return rgb.copy()  # the caller's own pixels


def _decode_file(path: Path) -> np.ndarray:
    with _pillow_errors(), Image.open(path) as image:
        _check_pixels(image)
        if image.format == "JPEG":
            # Decode JPEGs at a reduced scale (1/2 to 1/8) right away: a 12000 px photo never
            # needs its full resolution in memory.
            image.draft(image.mode, (MAX_IMAGE_SIDE, MAX_IMAGE_SIDE))
        image.load()
        return _pil_to_rgb(image)


@contextlib.contextmanager
def _pillow_errors():
    """Turn Pillow's exceptions (unknown format, truncated data, pixel bombs) into sentences."""
    try:
        with warnings.catch_warnings():
            # Pillow warns (not raises) between 1x and 2x its pixel limit; we refuse from 1x.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except UserError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UserError(_too_many_pixels_message()) from None
    except UnidentifiedImageError:
        raise UserError(f"This file is not an image that can be read. {_IMAGE_HINT}") from None
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        # Pillow reports truncated and corrupt data as OSError ("image file is truncated"), and
        # some plugins as ValueError / SyntaxError.
        raise UserError(f"This image file is damaged or incomplete ({brief(error)}). {_IMAGE_HINT}") from None


def _too_many_pixels_message() -> str:
    return (f"This image has too many pixels (the limit is {MAX_IMAGE_PIXELS / 1e6:.0f} million). "
            f"Please use a smaller image.")


def _check_pixels(image: Image.Image) -> None:
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        raise UserError(_too_many_pixels_message())
    if width < 1 or height < 1:
        raise UserError(f"This image has no pixels. {_IMAGE_HINT}")


def _pil_to_rgb(image: Image.Image) -> np.ndarray:
    """A PIL image of any mode as HxWx3 uint8 RGB, upright, with its long side bounded."""
    _check_pixels(image)
    try:
        image = ImageOps.exif_transpose(image)  # phone photos are stored sideways with a tag
    except Exception:  # a broken EXIF block should not cost the learner the picture
        pass
    image = _reduce(image)
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return array_to_rgb(np.asarray(image))  # scaled by value range, not clipped
    if (mode == "P" and "transparency" in image.info) or mode in ("PA", "LA", "La", "RGBa", "RGBA"):
        return _on_white(np.asarray(image.convert("RGBA")))
    if mode != "RGB":
        image = image.convert("RGB")  # 1, L, P, CMYK, YCbCr, LAB, HSV
    return np.asarray(image)


def _reduce(image: Image.Image) -> Image.Image:
    """Shrink by a whole factor while still at least twice the target: cheap and bounds memory."""
    factor = max(image.size) // (2 * MAX_IMAGE_SIDE)
    if factor < 2:
        return image
    try:
        return image.reduce(factor)
    except (ValueError, NotImplementedError):  # modes reduce() lacks (P, 1, CMYK, I;16...): keep as is
        return image


def _on_white(rgba: np.ndarray) -> np.ndarray:
    """Composite an RGBA uint8 array on white: transparent logos should not turn black."""
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    rgb = rgba[..., :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """Scale any numeric array to uint8 by what its range most likely means."""
    if values.dtype == np.uint8:
        return values
    if values.dtype == np.bool_:
        return values.astype(np.uint8) * 255
    if values.dtype == np.uint16:
        return ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)  # 65535 -> 255, 32768 -> 128
    if not (np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.floating)):
        raise UserError(f"Image values of type {values.dtype} cannot be shown. {_IMAGE_HINT}")
    floats = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = (float(floats.min()), float(floats.max())) if floats.size else (0.0, 0.0)
    if np.issubdtype(values.dtype, np.floating) and low >= 0.0 and high <= 1.0:
        scaled = floats * 255.0  # float images in [0, 1]
    elif low >= 0.0 and high <= 255.0:
        scaled = floats  # already 8-bit values
    elif low >= 0.0 and high <= 65535.0 and np.issubdtype(values.dtype, np.integer):
        scaled = floats / 257.0  # 16-bit values stored in a wider integer (Pillow mode "I")
    else:
        scaled = (floats - low) * (255.0 / (high - low)) if high > low else np.zeros_like(floats)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def array_to_rgb(array: np.ndarray) -> np.ndarray:
    """An HxW or HxWxC (C = 1, 2, 3, 4) array of any numeric dtype as HxWx3 uint8 RGB."""
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (2, 3, 4)):
        raise UserError(f"An image array must be HxW or HxWxC with 1 to 4 channels, not {array.shape}.")
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise UserError(f"This image has no pixels (shape {array.shape}). {_IMAGE_HINT}")
    if array.shape[0] * array.shape[1] > MAX_IMAGE_PIXELS:
        raise UserError(_too_many_pixels_message())
    pixels = _to_uint8(array)
    if pixels.ndim == 2:
        return np.repeat(pixels[..., None], 3, axis=2)
    if pixels.shape[2] == 2:  # grey + alpha
        pixels = np.concatenate([np.repeat(pixels[..., :1], 3, axis=2), pixels[..., 1:]], axis=2)
    if pixels.shape[2] == 4:
        return _on_white(pixels)
    return pixels


def _fit_long_side(rgb: np.ndarray, limit: int) -> np.ndarray:
    height, width = rgb.shape[:2]
    if max(height, width) <= limit:
        return rgb
    scale = limit / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    image = Image.fromarray(rgb)
    # reducing_gap: a fast whole-factor reduce first, then an antialiased LANCZOS resize.
    return np.asarray(image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0))

