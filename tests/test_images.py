"""demos.images: pictures of every format, mode and orientation, read safely and bounded.

All pictures are generated here, in temporary folders, with Pillow: nothing is downloaded.
"""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from demos import images, uploads
from demos.errors import UserError


def test_limits_are_named_constants():
    assert images.MAX_IMAGE_SIDE == 1024
    assert images.MAX_IMAGE_PIXELS >= 12000 * 12000
    assert Image.MAX_IMAGE_PIXELS is None or Image.MAX_IMAGE_PIXELS >= images.MAX_IMAGE_PIXELS


@pytest.mark.parametrize("source", [None, ""])
def test_no_image(source):
    with pytest.raises(UserError, match="No image"):
        images.load_image(source)


def test_missing_image_file(tmp_path):
    with pytest.raises(UserError, match="no longer on the server"):
        images.load_image(tmp_path / "nope.png")


def test_wrong_type():
    with pytest.raises(UserError, match="image was expected"):
        images.load_image(12)


def test_one_pixel_image(tmp_path):
    path = tmp_path / "one.png"
    Image.new("RGB", (1, 1), (10, 20, 30)).save(path)
    out = images.load_image(path)
    assert out.shape == (1, 1, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    assert out[0, 0].tolist() == [10, 20, 30]


def test_huge_jpeg_is_downscaled(tmp_path):
    path = tmp_path / "huge.jpg"
    image = Image.new("RGB", (12000, 12000), (200, 30, 30))
    image.paste((30, 30, 200), (0, 0, 6000, 12000))  # left half blue
    image.save(path, quality=70)
    del image
    out = images.load_image(str(path))
    assert out.shape == (images.MAX_IMAGE_SIDE, images.MAX_IMAGE_SIDE, 3)
    assert out[512, 100, 2] > 150 and out[512, 900, 0] > 150


def test_large_png_keeps_aspect(tmp_path):
    path = tmp_path / "wide.png"
    Image.new("RGB", (3000, 1500), (0, 128, 0)).save(path)
    out = images.load_image(path)
    assert out.shape == (512, 1024, 3)
    assert np.all(np.abs(out.astype(int) - [0, 128, 0]) <= 1)


def _png_header_only(width, height) -> bytes:
    """A PNG that claims a huge size (only the header matters to the pixel check)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [13000, 20000])  # 169 Mpx (Pillow warns) and 400 Mpx (Pillow raises)
def test_too_many_pixels(tmp_path, side):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(side, side))
    with pytest.raises(UserError, match="too many pixels"):
        images.load_image(path)


def test_grayscale(tmp_path):
    path = tmp_path / "grey.png"
    Image.new("L", (5, 4), 77).save(path)
    out = images.load_image(path)
    assert out.shape == (4, 5, 3) and np.all(out == 77)


def test_rgba_composited_on_white(tmp_path):
    pixels = np.zeros((2, 3, 4), np.uint8)
    pixels[0, 0] = [255, 0, 0, 255]  # opaque red
    pixels[0, 1] = [0, 0, 0, 0]  # transparent
    pixels[0, 2] = [0, 0, 0, 128]  # half-transparent black
    path = tmp_path / "rgba.png"
    Image.fromarray(pixels, "RGBA").save(path)
    out = images.load_image(path)
    assert out[0, 0].tolist() == [255, 0, 0]
    assert out[0, 1].tolist() == [255, 255, 255]
    assert np.all(np.abs(out[0, 2].astype(int) - 127) <= 1)


def test_la_and_palette_transparency(tmp_path):
    la = Image.fromarray(np.array([[[0, 0], [50, 255]]], np.uint8), "LA")
    assert images.load_image(la)[0].tolist() == [[255, 255, 255], [50, 50, 50]]
    palette = Image.new("P", (2, 1))
    palette.putpalette([0, 0, 255] + [0, 255, 0] + [0] * 762)
    palette.putpixel((0, 0), 0)
    palette.putpixel((1, 0), 1)
    path = tmp_path / "p.png"
    palette.save(path, transparency=0)
    assert images.load_image(path)[0].tolist() == [[255, 255, 255], [0, 255, 0]]


def test_cmyk(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path, quality=95)
    out = images.load_image(path)
    assert out.shape == (16, 16, 3)
    assert out[..., 0].mean() > 200 and out[..., 1].mean() < 60 and out[..., 2].mean() < 60


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 32768, 65535]], np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I")
    out = images.load_image(path)
    assert out[0, :, 0].tolist() == [0, 1, 128, 255]
    assert np.all(out[..., 0] == out[..., 2])


def test_modes_f_i_and_1():
    floats = Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32))
    assert floats.mode == "F"
    assert images.load_image(floats)[0, :, 0].tolist() == [0, 128, 255]
    ints = Image.fromarray(np.array([[0, 32768, 65535]], np.int32))
    assert ints.mode == "I"
    assert images.load_image(ints)[0, :, 0].tolist() == [0, 128, 255]
    bits = Image.new("1", (2, 1))
    bits.putpixel((1, 0), 1)
    assert images.load_image(bits)[0, :, 0].tolist() == [0, 255]


@pytest.mark.parametrize("array, expected", [
    (np.array([[0, 65535]], np.uint16), [0, 255]),
    (np.array([[0.0, 1.0]], np.float64), [0, 255]),
    (np.array([[0.0, 200.0]], np.float32), [0, 200]),
    (np.array([[False, True]]), [0, 255]),
    (np.array([[np.nan, 1.0]]), [0, 255]),
    (np.array([[[7], [9]]], np.uint8), [7, 9]),
])
def test_numpy_arrays(array, expected):
    out = images.load_image(array)
    assert out.shape == (1, 2, 3) and out.dtype == np.uint8
    assert out[0, :, 0].tolist() == expected


def test_numpy_rgba_and_bad_shapes():
    rgba = np.zeros((1, 1, 4), np.uint8)
    assert images.load_image(rgba)[0, 0].tolist() == [255, 255, 255]
    for bad in (np.zeros((2, 2, 5)), np.zeros((2,)), np.zeros((0, 3, 3)), np.zeros((2, 2), dtype=complex)):
        with pytest.raises(UserError):
            images.load_image(bad)


def test_big_array_is_downscaled():
    out = images.load_image(np.zeros((2048, 4096, 3), np.uint8))
    assert out.shape == (512, 1024, 3)


def test_exif_orientation_is_applied(tmp_path):
    stored = np.zeros((20, 40, 3), np.uint8)  # 40 wide, 20 tall as stored
    stored[:, :20] = [255, 0, 0]  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "phone.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    out = images.load_image(path)
    assert out.shape == (40, 20, 3)  # transposed
    assert out[:15, :, 0].mean() > 200 and out[25:, :, 0].mean() < 50  # left became top


def test_not_an_image(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("just some text, not pixels")
    with pytest.raises(UserError, match="not an image"):
        images.load_image(path)


def test_zero_byte_image(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(UserError, match="empty"):
        images.load_image(path)


def test_truncated_png(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(buffer, "PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(UserError, match="damaged or incomplete"):
        images.load_image(path)


def test_oversized_upload(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("RGB", (8, 8)).save(path)
    monkeypatch.setattr(uploads, "MAX_UPLOAD_BYTES", 10)
    with pytest.raises(UserError, match="limit"):
        images.load_image(path)


def test_a_file_read_before_is_not_decoded_again(tmp_path, monkeypatch):
    pixels = np.random.default_rng(2).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    first = images.load_image(tmp_path / "a.png")
    first[:] = 0  # the caller's own copy
    (tmp_path / "b.png").write_bytes((tmp_path / "a.png").read_bytes())  # the same picture uploaded again
    monkeypatch.setattr(images, "_decode_file", lambda path: pytest.fail("decoded again"))
    again = images.load_image(tmp_path / "b.png")
    assert np.array_equal(again, pixels) and again.flags.writeable


def test_image_digest():
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 1
    assert images.image_digest(a) == images.image_digest(a.copy())
    assert images.image_digest(a) != images.image_digest(b)
    assert images.image_digest(a) != images.image_digest(a.reshape(8, 2, 3))
    assert images.image_digest(np.asfortranarray(a)) == images.image_digest(a)


def test_center_square():
    image = np.zeros((100, 300, 3), np.uint8)
    image[:, 100:200] = 255  # the centre square is white
    out = images.center_square(image, 32)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8 and np.all(out == 255)

