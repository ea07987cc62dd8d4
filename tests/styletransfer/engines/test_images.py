"""Input handling: hostile files give InputImageError, odd modes come out as RGB or RGBA."""

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from styletransfer.engines import InputImageError
from styletransfer.engines.colour_space import lab_to_srgb, srgb_to_lab
from styletransfer.engines.images import (
    estimate_product_mask,
    fit_within,
    open_image,
    prepare_canvas,
)
from tests.helpers import DATA


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a huge size but carries almost no data: a decompression bomb's shape."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IDAT", zlib.compress(b"\0" * 16))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + body + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty"),
        (b"this is a text file, not a picture\n" * 10, "not an image"),
        (encode(Image.new("RGB", (64, 64), "red"))[:120], "corrupt"),
        (png_header_only(60_000, 60_000), "pixels"),
    ],
)
def test_hostile_bytes_raise_one_line_input_error(payload: bytes, reason: str) -> None:
    with pytest.raises(InputImageError) as caught:
        open_image(payload)
    message = str(caught.value)
    assert reason in message
    assert "\n" not in message


def test_pixel_budget_is_enforced() -> None:
    with pytest.raises(InputImageError, match="over the limit"):
        open_image(encode(Image.new("RGB", (200, 200))), max_pixels=10_000)


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputImageError, match="cannot read"):
        open_image(tmp_path / "nope.png")


def test_path_bytes_and_stream_sources_agree() -> None:
    path = DATA / "style-wave.jpg"
    from_path = open_image(path)
    from_str = open_image(str(path))
    from_bytes = open_image(path.read_bytes())
    from_stream = open_image(io.BytesIO(path.read_bytes()))
    for image in (from_str, from_bytes, from_stream):
        assert image.tobytes() == from_path.tobytes()


def test_exif_orientation_is_applied() -> None:
    image = Image.new("RGB", (40, 20), "blue")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    upright = open_image(encode(image, "JPEG", exif=exif.tobytes()))
    assert upright.size == (20, 40)


def test_cut_out_keeps_alpha_and_opaque_rgba_drops_it() -> None:
    assert open_image(DATA / "product-hoodie.png").mode == "RGBA"
    opaque = Image.new("RGBA", (8, 8), (10, 20, 30, 255))
    assert open_image(encode(opaque)).mode == "RGB"


def test_palette_with_transparency_becomes_rgba() -> None:
    palette = Image.new("P", (8, 8), 0)
    palette.putpalette([255, 0, 0, 0, 255, 0])
    palette.putpixel((0, 0), 1)
    assert open_image(encode(palette, transparency=0)).mode == "RGBA"
    assert open_image(encode(palette)).mode == "RGB"


@pytest.mark.parametrize(
    ("image", "fmt", "mode"),
    [
        (Image.new("L", (8, 8), 128), "PNG", "RGB"),
        (Image.new("LA", (8, 8), (128, 100)), "PNG", "RGBA"),
        (Image.new("1", (8, 8), 1), "PNG", "RGB"),
        (Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG", "RGB"),
    ],
)
def test_odd_modes_come_out_rgb_or_rgba(image: Image.Image, fmt: str, mode: str) -> None:
    assert open_image(encode(image, fmt)).mode == mode


def test_sixteen_bit_grey_is_scaled_not_clipped() -> None:
    grey = np.full((8, 8), 32768, dtype=np.uint16)
    image = open_image(encode(Image.fromarray(grey)))
    assert image.mode == "RGB"
    assert abs(int(np.asarray(image)[0, 0, 0]) - 128) <= 1


def test_cmyk_red_stays_red() -> None:
    red = open_image(encode(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG"))
    r, g, b = np.asarray(red)[4, 4].astype(int)
    assert r > 200 and g < 60 and b < 60


def test_fit_within_never_upscales() -> None:
    small = Image.new("RGB", (30, 20))
    assert fit_within(small, 100).size == (30, 20)
    assert fit_within(Image.new("RGB", (300, 200)), 100).size == (100, 67)


def test_product_mask_is_estimated_from_a_plain_background() -> None:
    photo = np.asarray(open_image(DATA / "product-mug-on-grey.jpg"), dtype=np.float32) / 255
    mask, backdrop = estimate_product_mask(photo)
    assert np.allclose(backdrop, [242 / 255, 242 / 255, 240 / 255], atol=0.02)
    assert mask[0, 0] == 0 and mask[-1, -1] == 0
    coverage = (mask > 0.5).mean()
    assert 0.1 < coverage < 0.8
    # the mug's dark body sits in the middle of the frame and must be product
    assert mask[mask.shape[0] // 2, mask.shape[1] // 2] == 1


def test_product_mode_on_a_busy_photo_paints_the_whole_image(caplog) -> None:
    painting = open_image(DATA / "style-starry-night.jpg")
    with pytest.raises(InputImageError, match="plain background"):
        estimate_product_mask(np.asarray(painting, dtype=np.float32) / 255)
    with caplog.at_level("INFO", logger="styletransfer.engines.images"):
        canvas = prepare_canvas(painting, painting, size=64, mode="product")
    assert canvas.mask is None, "no product told apart: whole-image mode for this photo"
    assert "rendering the whole image instead" in caplog.text


def test_canvas_flattens_cut_out_on_white_and_takes_alpha_as_mask() -> None:
    cut_out = open_image(DATA / "product-hoodie.png")
    style = open_image(DATA / "style-wave.jpg")
    canvas = prepare_canvas(cut_out, style, size=96, mode="product")
    assert canvas.content.shape == (96, 96, 3)
    assert max(canvas.style.shape[:2]) == 96
    transparent = canvas.mask < 0.01
    assert transparent.any()
    assert np.allclose(canvas.content[transparent], 1.0, atol=0.02)


def test_lab_round_trip() -> None:
    rgb = np.random.default_rng(0).random((50, 3))
    assert np.allclose(lab_to_srgb(srgb_to_lab(rgb)), rgb, atol=1e-6)
    assert np.allclose(srgb_to_lab(np.ones(3)), [100, 0, 0], atol=0.01)


def test_a_transparent_style_reference_is_read_on_white_not_black() -> None:
    style = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    canvas = prepare_canvas(Image.new("RGB", (32, 32), "red"), style, size=32, mode="whole")
    assert np.allclose(canvas.style, 1.0)


def test_oversized_files_are_refused_without_reading_them_whole(monkeypatch) -> None:
    from styletransfer.engines import images

    monkeypatch.setattr(images, "MAX_FILE_BYTES", 1000)
    with pytest.raises(InputImageError, match="over"):
        open_image(io.BytesIO(b"\0" * 5000))
