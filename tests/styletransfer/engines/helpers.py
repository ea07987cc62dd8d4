"""Image files a shop never serves, named like web images, and odd files a shop does serve:
the corpus the format allowlist is tested with (engines, API, admin, renders)."""

import io
import warnings

import pytest
from PIL import Image, features

from styletransfer.engines.images import WEB_FORMATS


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def sample(mode: str = "RGB", size: tuple[int, int] = (24, 16)) -> Image.Image:
    """A small picture with some structure, in `mode`."""
    image = Image.new("L", size)
    image.putdata([(x * 9 + y * 5) % 256 for y in range(size[1]) for x in range(size[0])])
    return image.convert(mode)


def encode_deprecated_im(image: Image.Image) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # still read by Pillow 13
        return encode(image, "IM")


def fits_bytes(width: int = 8, height: int = 8) -> bytes:
    """A minimal valid FITS file: one 2880-byte header of 80-character cards, then 8-bit data."""
    cards = [
        f"{'SIMPLE':<8}= {'T':>20}",
        f"{'BITPIX':<8}= {8:>20}",
        f"{'NAXIS':<8}= {2:>20}",
        f"{'NAXIS1':<8}= {width:>20}",
        f"{'NAXIS2':<8}= {height:>20}",
        "END",
    ]
    header = "".join(card.ljust(80) for card in cards).ljust(2880).encode("ascii")
    data = bytes((x * 16) % 256 for x in range(width * height))
    return header + data.ljust(2880, b"\0")


def eps_bytes() -> bytes:
    return (
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\n%%EndComments\n"
        b"newpath 0 0 moveto 16 16 lineto stroke\nshowpage\n%%EOF\n"
    )


def foreign_corpus() -> dict[str, tuple[str, bytes]]:
    """Pillow format name -> (a web image's file name, bytes Pillow would decode as that format).

    Formats a shop never serves; each is named like a web image, as an attacker would.
    """
    corpus = {
        "FITS": ("photo.png", fits_bytes()),
        "EPS": ("photo.jpg", eps_bytes()),
        "PCX": ("photo.png", encode(sample(), "PCX")),
        "SGI": ("photo.jpg", encode(sample(), "SGI")),
        "TGA": ("photo.webp", encode(sample(), "TGA")),
        "BMP": ("photo.gif", encode(sample(), "BMP")),
        "TIFF": ("photo.png", encode(sample(), "TIFF")),
        "ICO": ("photo.png", encode(sample(size=(16, 16)), "ICO")),
        "PPM": ("photo.jpg", encode(sample(), "PPM")),
        "IM": ("photo.png", encode_deprecated_im(sample())),
        "DDS": ("photo.png", encode(sample("RGBA", (16, 16)), "DDS")),
        "QOI": ("photo.webp", encode(sample(), "QOI")),
        "XBM": ("photo.gif", encode(sample("1"), "XBM")),
        "MSP": ("photo.png", encode(sample("1"), "MSP")),
        "SPIDER": ("photo.jpg", encode(sample("L").convert("F"), "SPIDER")),
    }
    if features.check("jpg_2000"):
        corpus["JPEG2000"] = ("photo.jpg", encode(sample(), "JPEG2000"))
    if features.check("avif"):
        corpus["AVIF"] = ("photo.webp", encode(sample(), "AVIF"))  # a web format, not opted in
    return corpus


def odd_web_corpus() -> dict[str, tuple[str, bytes]]:
    """Allowlisted files that stress the decoders: each still renders."""
    cmyk = encode(Image.new("CMYK", (24, 16), (0, 200, 200, 0)), "JPEG")
    deep = Image.new("I;16", (24, 16))
    deep.putdata([x * 2700 for y in range(16) for x in range(24)])
    palette = Image.new("P", (24, 16), 1)
    palette.putpalette([0, 0, 0, 220, 30, 30] + [0] * 762)
    palette.paste(0, (0, 0, 8, 16))
    rotated = Image.new("RGB", (40, 20), (30, 30, 200))
    exif = rotated.getexif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to view
    frames = [Image.new("RGB", (24, 16), colour) for colour in ((220, 30, 30), (30, 30, 220))]
    gif = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    webp = encode(
        frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100, lossless=True
    )
    return {
        "CMYK JPEG": ("cmyk.jpg", cmyk),
        "16-bit PNG": ("deep.png", encode(deep, "PNG")),
        "palette PNG with transparency": ("palette.png", encode(palette, "PNG", transparency=0)),
        "EXIF-rotated JPEG": ("rotated.jpg", encode(rotated, "JPEG", exif=exif)),
        "animated GIF": ("animated.gif", gif),
        "animated WebP": ("animated.webp", webp),
    }


FOREIGN = foreign_corpus()
ODD = odd_web_corpus()
SNIFFED = {"FITS", "EPS", "PCX", "SGI", "TGA", "BMP", "TIFF", "ICO", "PPM", "IM", "DDS", "QOI"}
SNIFFED |= {"JPEG2000", "AVIF"}


def refusal_is_clear(message: str, fmt: str) -> bool:
    """One line that names the format, or says the file is in no allowed format."""
    named = f"in {fmt} format; only JPEG, PNG, WEBP, GIF images are allowed" in message
    generic = "not an image in an allowed format (JPEG, PNG, WEBP, GIF)" in message
    return "\n" not in message and (named if fmt in SNIFFED else generic)


def spy_on_other_plugins(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every plugin outside the web formats replaced by a spy; the list of those touched."""
    Image.init()
    reached: list[str] = []
    for name in [name for name in Image.OPEN if name not in WEB_FORMATS]:

        def accept(prefix: bytes, name: str = name) -> bool:
            reached.append(name)
            return True

        def factory(fp, filename=None, name: str = name):
            reached.append(name)
            raise AssertionError(f"the {name} plugin parsed the file")

        monkeypatch.setitem(Image.OPEN, name, (factory, accept))
    return reached
