"""Image input and output for the engines: safe decoding, resizing, product masks, colour spaces."""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageCms, ImageFilter, ImageOps, UnidentifiedImageError

from .errors import InputImageError

logger = logging.getLogger(__name__)

WHITE = np.ones(3, dtype=np.float32)
MAX_FILE_BYTES = 256 * 2**20  # no real product photo or painting is bigger
# The formats shops serve; any other is decoded only where a shop opts in (its Pillow
# plugin is a parser the shop never needed: CVE-2026-40192 was one in FITS).
WEB_FORMATS = ("JPEG", "PNG", "WEBP", "GIF")

# Magic bytes, so a refusal can name a file's format without any Pillow plugin
# reading it: (offset, signature, format).
_SIGNATURES = (
    (0, b"\xff\xd8\xff", "JPEG"),
    (0, b"\x89PNG\r\n\x1a\n", "PNG"),
    (0, b"GIF87a", "GIF"),
    (0, b"GIF89a", "GIF"),
    (8, b"WEBP", "WEBP"),
    (0, b"SIMPLE  =", "FITS"),
    (0, b"%!PS", "EPS"),
    (0, b"\xc5\xd0\xd3\xc6", "EPS"),
    (0, b"%PDF", "PDF"),
    (0, b"II*\x00", "TIFF"),
    (0, b"MM\x00*", "TIFF"),
    (0, b"BM", "BMP"),
    (0, b"\x00\x00\x01\x00", "ICO"),
    (0, b"DDS ", "DDS"),
    (0, b"\x01\xda", "SGI"),
    (0, b"8BPS", "PSD"),
    (0, b"Image type", "IM"),
    (0, b"icns", "ICNS"),
    (0, b"qoif", "QOI"),
    (0, b"gimp xcf", "XCF"),
    (0, b"\xff\x4f\xff\x51", "JPEG2000"),
    (0, b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG2000"),
    (0, b"\xff\x0a", "JPEG XL"),
    (0, b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
    (4, b"ftypavi", "AVIF"),
    (4, b"ftyphei", "HEIF"),
    (4, b"ftypmif1", "HEIF"),
    (0, b"BLP", "BLP"),
    (0, b"\x76\x2f\x31\x01", "OpenEXR"),
    (0, b"<svg", "SVG"),
)
_NETPBM = re.compile(rb"P[1-7fF]\s")
_TGA_FOOTER = b"TRUEVISION-XFILE.\x00"
_PCX_VERSIONS = (0, 2, 3, 4, 5)


# How product mode told the product apart, recorded on each rendition: the cut-out's alpha,
# the plain background it was shot on, GrabCut's outline, or nothing (the whole photo painted).
PRODUCT_MODES = ("cutout", "backdrop", "segmented", "whole")


@dataclass
class Canvas:
    """Preprocessed inputs shared by every engine (float32 arrays in 0..1)."""

    content: np.ndarray  # H x W x 3, composited on white when the input had alpha
    style: np.ndarray  # h x w x 3
    mask: np.ndarray | None = None  # H x W product coverage in product mode
    backdrop: np.ndarray | None = None  # the plain colour the product was shot on (RGB)
    alpha: np.ndarray | None = None  # H x W alpha of a cut-out, in either mode
    product_mode: str = ""  # how the product was told apart (PRODUCT_MODES); "" in whole mode


def open_image(
    source: str | Path | bytes | BinaryIO,
    *,
    max_pixels: int = 40_000_000,
    formats: Sequence[str] = WEB_FORMATS,
) -> Image.Image:
    """Decode `source` into an upright RGB or RGBA image, or raise InputImageError.

    Only the plugins of `formats` (Pillow's names) ever see the bytes; the first frame
    of an animation is the image.
    """
    allowed = allowed_formats(formats)
    data = _read_source(source)
    with _decoding_errors():
        image = _identify(data, allowed, max_pixels)
        image.seek(0)  # first frame of animations
        image.load()
    # Broken EXIF may cost the picture its rotation, never the picture.
    with contextlib.suppress(Exception):
        image = ImageOps.exif_transpose(image) or image
    try:
        return _normalise_mode(image)
    except (OSError, ValueError) as exc:
        raise InputImageError(f"unsupported image mode {image.mode}: {exc}") from exc


def check_image(
    source: str | Path | bytes | BinaryIO,
    *,
    max_pixels: int = 40_000_000,
    formats: Sequence[str] = WEB_FORMATS,
) -> str:
    """The format of `source` once its header, size and structure pass (no pixels decoded).

    What an upload form needs: the same refusals as open_image, at a fraction of the cost.
    """
    allowed = allowed_formats(formats)
    data = _read_source(source)
    with _decoding_errors():
        image = _identify(data, allowed, max_pixels)
        image_format = image.format or ""
        image.verify()  # PNG: chunk checksums; a cheap check, like Django's ImageField
    return image_format


def readable_formats() -> frozenset[str]:
    """Every format name Pillow can open (registering its plugins parses no file)."""
    Image.init()
    return frozenset(Image.OPEN)


def allowed_formats(formats: Sequence[str]) -> tuple[str, ...]:
    """`formats` as Pillow's upper-case names; ValueError for a name Pillow does not know."""
    if not isinstance(formats, list | tuple) or not formats:
        raise ValueError(f"formats must be a non-empty list of format names, not {formats!r}")
    allowed = tuple(str(name).upper() for name in formats)
    unknown = sorted(set(allowed) - readable_formats())
    if unknown:
        raise ValueError(f"unknown image format(s) {', '.join(unknown)}")
    return allowed


def _identify(data: bytes, allowed: tuple[str, ...], max_pixels: int) -> Image.Image:
    """Open `data` with the plugins of `allowed` only, refusing empty and oversized images."""
    if not data:
        raise InputImageError("the image file is empty (0 bytes)")
    try:
        image = Image.open(io.BytesIO(data), formats=allowed)
    except UnidentifiedImageError as exc:
        raise InputImageError(_refusal(data, allowed)) from exc
    width, height = image.size
    if width < 1 or height < 1:
        raise InputImageError("the image has no pixels")
    if width * height > max_pixels:
        raise InputImageError(
            f"the image is {width}x{height} px, over the limit of {max_pixels:,} pixels"
        )
    return image


def _refusal(data: bytes, allowed: tuple[str, ...]) -> str:
    """Why no allowed plugin took the file, naming its real format when the bytes tell."""
    named = sniff_format(data)
    if named is None:
        return f"the file is not an image in an allowed format ({', '.join(allowed)})"
    if named in allowed:
        return f"the file starts like a {named} image but is corrupt or truncated"
    return f"the file is in {named} format; only {', '.join(allowed)} images are allowed"


def sniff_format(data: bytes) -> str | None:
    """The format `data`'s magic bytes name, found without any Pillow plugin; None if unknown."""
    for offset, signature, name in _SIGNATURES:
        if data[offset : offset + len(signature)] == signature:
            return name
    if _NETPBM.match(data[:3]):
        return "PPM"
    if data.endswith(_TGA_FOOTER):
        return "TGA"
    if len(data) > 2 and data[0] == 0x0A and data[1] in _PCX_VERSIONS and data[2] == 1:
        return "PCX"
    return None


@contextlib.contextmanager
def _decoding_errors() -> Iterator[None]:
    """Whatever a decoder raises becomes one InputImageError with the reason."""
    try:
        with warnings.catch_warnings():
            # Pillow warns before it refuses; a warning-sized image is already a bomb to us.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except InputImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputImageError(f"refused a decompression bomb: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise InputImageError("the file is not an image Pillow can read") from exc
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
        raise InputImageError(f"the image is corrupt or truncated: {exc}") from exc


def _read_source(source: str | Path | bytes | BinaryIO) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    elif isinstance(source, str | Path):
        try:
            with Path(source).open("rb") as stream:
                data = stream.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise InputImageError(f"cannot read {source}: {exc.strerror or exc}") from exc
    else:
        try:
            data = source.read(MAX_FILE_BYTES + 1)
        except (OSError, ValueError) as exc:
            raise InputImageError(f"cannot read the image stream: {exc}") from exc
    if len(data) > MAX_FILE_BYTES:
        raise InputImageError(f"the file is over {MAX_FILE_BYTES // 2**20} MB")
    return data


def _normalise_mode(image: Image.Image) -> Image.Image:
    """Everything becomes RGB, or RGBA when some pixel is actually transparent."""
    icc = image.info.get("icc_profile")
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        image = _to_8bit_grey(image)
    elif mode == "CMYK" and icc:
        image = _icc_to_srgb(image, icc, "RGB") or image.convert("RGB")
        icc = None
    elif mode in ("P", "PA", "LA", "La", "RGBa"):
        image = image.convert("RGBA")
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGB")
    if icc and image.mode == "RGB":
        image = _icc_to_srgb(image, icc, "RGB") or image
    if image.mode == "RGBA":
        if image.getchannel("A").getextrema()[0] == 255:
            image = image.convert("RGB")
        elif icc:
            rgb = _icc_to_srgb(image.convert("RGB"), icc, "RGB")
            if rgb is not None:
                rgb.putalpha(image.getchannel("A"))
                image = rgb
    image.info.pop("icc_profile", None)
    return image


def _to_8bit_grey(image: Image.Image) -> Image.Image:
    values = np.asarray(image, dtype=np.float64)
    top = values.max(initial=0.0)
    scale = 1.0 if top <= 1.0 and image.mode == "F" else (255.0 if top <= 255 else 65535.0)
    grey = np.clip(np.rint(values / scale * 255.0), 0, 255).astype(np.uint8)
    return Image.fromarray(grey).convert("RGB")


def _icc_to_srgb(image: Image.Image, icc: bytes, mode: str) -> Image.Image | None:
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        srgb = ImageCms.createProfile("sRGB")
        return ImageCms.profileToProfile(image, source, srgb, outputMode=mode)
    except Exception:  # a broken profile means "assume sRGB", not "reject the photo"
        return None


def fit_within(image: Image.Image, size: int) -> Image.Image:
    """Downscale so the longest side is at most `size` px (never upscales)."""
    if max(image.size) <= size:
        return image
    return resize_longest(image, size)


def resize_longest(image: Image.Image, size: int) -> Image.Image:
    """Scale (up or down) so the longest side is exactly `size` px, keeping the aspect ratio."""
    width, height = image.size
    scale = size / max(width, height)
    target = (max(1, round(width * scale)), max(1, round(height * scale)))
    if target == image.size:
        return image
    return image.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)


def to_float(image: Image.Image) -> np.ndarray:
    """uint8 image -> float32 array in 0..1."""
    return np.asarray(image, dtype=np.float32) / 255.0


def to_image(pixels: np.ndarray) -> Image.Image:
    """float array in 0..1 (H x W x 3) -> RGB image, rounded."""
    return Image.fromarray(np.clip(np.rint(pixels * 255.0), 0, 255).astype(np.uint8))


def flatten_on(image: Image.Image, background: np.ndarray = WHITE) -> tuple[np.ndarray, np.ndarray]:
    """RGB float pixels composited on `background`, and the alpha (ones when opaque)."""
    pixels = to_float(image)
    if image.mode != "RGBA":
        return pixels[..., :3], np.ones(pixels.shape[:2], dtype=np.float32)
    alpha = pixels[..., 3]
    rgb = pixels[..., :3] * alpha[..., None] + background * (1.0 - alpha[..., None])
    return rgb.astype(np.float32), alpha


def prepare_canvas(content: Image.Image, style: Image.Image, *, size: int, mode: str) -> Canvas:
    """Resize both images to the output size and find the product mask in product mode."""
    if content.mode not in ("RGB", "RGBA"):
        content = _normalise_mode(content)
    if style.mode not in ("RGB", "RGBA"):
        style = _normalise_mode(style)
    content = resize_longest(content, size)
    style_pixels = flatten_on(resize_longest(style, size))[0]  # a transparent style: on white
    pixels, alpha = flatten_on(content)
    canvas = Canvas(content=pixels, style=style_pixels)
    if content.mode == "RGBA":
        canvas.alpha = alpha
    if mode == "product":
        find_product(canvas, cut_out=content.mode == "RGBA")
    return canvas


def find_product(canvas: Canvas, *, cut_out: bool) -> None:
    """Set the canvas's product mask, backdrop and product_mode, by the first way that works:
    the cut-out's alpha, the plain background, GrabCut's outline, else none (whole photo)."""
    if cut_out:
        canvas.mask, canvas.backdrop, canvas.product_mode = canvas.alpha, WHITE.copy(), "cutout"
        return
    try:
        canvas.mask, canvas.backdrop = estimate_product_mask(canvas.content)
        canvas.product_mode = "backdrop"
        return
    except InputImageError as exc:
        not_plain = str(exc)
    found = _segment(canvas.content)
    if found is None or found.mask is None:
        # No product can be told apart from its surroundings: the whole photo is painted
        # rather than the catalogue's render failing, and the rendition records it.
        reason = found.reason if found is not None else "OpenCV is not installed"
        logger.info("%s; %s: rendering the whole image instead", not_plain, reason)
        canvas.product_mode = "whole"
        return
    # The outlined product becomes a cut-out on white, so every engine and finish() treat
    # it as one: its pixels where the mask is 1 are the photo's own.
    coverage = found.mask[..., None]
    canvas.content = (coverage * canvas.content + (1.0 - coverage) * WHITE).astype(np.float32)
    canvas.mask, canvas.backdrop, canvas.product_mode = found.mask, WHITE.copy(), "segmented"


def _segment(pixels: np.ndarray):
    try:
        from .segmentation import segment_product
    except ImportError:  # a worker installed without the render extra's OpenCV
        logger.warning("opencv-python-headless is missing: product mode cannot segment photos")
        return None
    return segment_product(pixels)


def estimate_product_mask(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Product coverage (H x W, 0..1) of a photo shot on a plain background, and that colour.

    The background is the border's dominant colour; a pixel is background when it is close
    to it *and* connected to the border, so white print on a white shirt stays product.
    """
    from scipy import ndimage

    height, width = pixels.shape[:2]
    ring = max(1, round(0.02 * min(height, width)))
    border = np.concatenate(
        [
            pixels[:ring].reshape(-1, 3),
            pixels[-ring:].reshape(-1, 3),
            pixels[:, :ring].reshape(-1, 3),
            pixels[:, -ring:].reshape(-1, 3),
        ]
    )
    backdrop = np.median(border, axis=0).astype(np.float32)
    border_distance = np.abs(border - backdrop).max(axis=1)
    if np.mean(border_distance < 0.08) < 0.6:
        raise InputImageError(
            "product mode needs a transparent or plain background; this image has neither"
        )
    # The threshold adapts to the background's own noise (JPEG, gradients, paper texture).
    threshold = float(np.clip(3.0 * np.quantile(border_distance, 0.9), 0.04, 0.15))
    near = np.abs(pixels - backdrop).max(axis=2) < threshold
    labels, _ = ndimage.label(near)
    edge_labels = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    background = np.isin(labels, edge_labels[edge_labels > 0])
    product = ~background
    # Drop specks (dust, JPEG noise) far smaller than any product.
    product = ndimage.binary_opening(product, iterations=1)
    labels, count = ndimage.label(product)
    if count:
        areas = ndimage.sum_labels(product, labels, index=np.arange(1, count + 1))
        keep = np.flatnonzero(areas >= 0.002 * height * width) + 1
        product = np.isin(labels, keep)
    coverage = product.mean()
    if coverage < 0.005 or coverage > 0.98:
        raise InputImageError("no product stands out from the background in product mode")
    # A one-pixel feather gives the cut-out an anti-aliased edge without eating the product.
    mask = ndimage.gaussian_filter(product.astype(np.float32), sigma=0.7)
    mask = np.where(ndimage.binary_erosion(product, iterations=2), 1.0, mask)
    return mask.astype(np.float32), backdrop


def finish(
    stylised: np.ndarray,
    canvas: Canvas,
    *,
    sharpen: float = 0.0,
    denoise: float = 0.0,
    mode: str = "whole",
) -> Image.Image:
    """Light post-processing, then the product's own pixels back on top in product mode."""
    image = to_image(stylised)
    if denoise > 0:
        smooth = image.filter(ImageFilter.MedianFilter(3)).filter(ImageFilter.GaussianBlur(0.6))
        image = Image.blend(image, smooth, float(denoise))
    if sharpen > 0:
        image = image.filter(
            ImageFilter.UnsharpMask(radius=1.5, percent=round(200 * sharpen), threshold=2)
        )
    if mode == "product" and canvas.mask is not None:
        backdrop = to_float(image)
        coverage = canvas.mask[..., None]
        # content = coverage * product + (1 - coverage) * plain backdrop, so swapping the plain
        # backdrop for the painted one keeps the product's premultiplied colour exactly.
        image = to_image(canvas.content + (1.0 - coverage) * (backdrop - canvas.backdrop))
    # Engines return an image, so how the product was found rides along in its info.
    image.info["product_mode"] = canvas.product_mode
    return image
