"""Quality metrics for renditions: VGG style and content loss, SSIM, CIEDE2000 on product pixels."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from .colour_space import srgb_to_lab
from .images import (
    estimate_product_mask,
    flatten_on,
    resize_longest,
    to_float,
)

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
CONTENT_LAYER = "relu4_1"
PRODUCT_ALPHA = 0.5  # a pixel belongs to the product when its alpha is at least this

ImageLike = Image.Image | np.ndarray


def _pixels(image: ImageLike, shape: tuple[int, int] | None = None) -> np.ndarray:
    """H x W x 3 float32 in 0..1, cut-outs flattened on white, resized to `shape` if given."""
    if isinstance(image, np.ndarray):
        pixels = image.astype(np.float32)
        if shape is not None and pixels.shape[:2] != shape:
            raise ValueError(f"array of shape {pixels.shape[:2]} where {shape} was expected")
        return pixels[..., :3]
    if shape is not None and image.size != (shape[1], shape[0]):
        image = image.resize((shape[1], shape[0]), Image.Resampling.LANCZOS)
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    return flatten_on(image)[0]


def product_coverage(content: Image.Image, shape: tuple[int, int]) -> np.ndarray:
    """H x W product coverage: the alpha of a cut-out, else estimated from a plain background."""
    if content.size != (shape[1], shape[0]):
        content = content.resize((shape[1], shape[0]), Image.Resampling.LANCZOS)
    if "A" in content.getbands():
        return to_float(content.getchannel("A"))
    return estimate_product_mask(_pixels(content))[0]


def _features(pixels: np.ndarray, layers: tuple[str, ...], device: str) -> dict[str, Any]:
    import torch

    from .vgg import load_vgg19

    model = load_vgg19(device)
    tensor = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))[None].to(device)
    with torch.inference_mode():
        return model(tensor, layers)


def style_loss(
    image: ImageLike,
    style: ImageLike,
    *,
    region: np.ndarray | None = None,
    device: str = "cpu",
) -> float:
    """Sum over relu1_1–relu4_1 of the mean squared gap in per-channel feature mean and std.

    The style image is measured at the same longest side as `image`, the scale the engines
    paint at. `region` (H x W, 0..1) restricts the image's statistics to part of it.
    """
    import torch

    from .vgg import mean_std

    pixels = _pixels(image)
    if isinstance(style, Image.Image):
        style = resize_longest(style, max(pixels.shape[:2]))
    image_features = _features(pixels, STYLE_LAYERS, device)
    style_features = _features(_pixels(style), STYLE_LAYERS, device)
    weight = None if region is None else torch.from_numpy(region.astype(np.float32))[None, None]
    total = 0.0
    for layer in STYLE_LAYERS:
        mean, std = mean_std(image_features[layer], None if weight is None else weight.to(device))
        target_mean, target_std = mean_std(style_features[layer])
        gap = (mean - target_mean).square().mean() + (std - target_std).square().mean()
        total += float(gap)
    return total


def content_loss(image: ImageLike, content: ImageLike, *, device: str = "cpu") -> float:
    """Relative change of relu4_1 features, ‖F(image) − F(content)‖² / ‖F(content)‖²."""
    pixels = _pixels(image)
    reference = _pixels(content, pixels.shape[:2])
    features = _features(pixels, (CONTENT_LAYER,), device)[CONTENT_LAYER]
    target = _features(reference, (CONTENT_LAYER,), device)[CONTENT_LAYER]
    return float((features - target).square().sum() / target.square().sum().clamp_min(1e-12))


def ssim(image: ImageLike, reference: ImageLike) -> float:
    """Mean structural similarity over the RGB channels (Gaussian window, sigma 1.5)."""
    from scipy.ndimage import gaussian_filter

    a = _pixels(image).astype(np.float64)
    b = _pixels(reference, a.shape[:2]).astype(np.float64)
    c1, c2 = 0.01**2, 0.03**2

    def blur(x: np.ndarray) -> np.ndarray:
        return gaussian_filter(x, sigma=(1.5, 1.5, 0), truncate=3.5)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    index = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
    return float(index.mean())


def delta_e2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference between Lab arrays of the same shape (..., 3)."""
    lab1 = np.asarray(lab1, dtype=np.float64)
    lab2 = np.asarray(lab2, dtype=np.float64)
    l1, a1, b1 = np.moveaxis(lab1, -1, 0)
    l2, a2, b2 = np.moveaxis(lab2, -1, 0)
    chroma_mean = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(chroma_mean**7 / (chroma_mean**7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360
    chromatic = (c1p * c2p) != 0

    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(chromatic, dh, 0.0)
    d_l = l2 - l1
    d_c = c2p - c1p
    d_h = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh) / 2)

    l_mean = (l1 + l2) / 2
    c_mean = (c1p + c2p) / 2
    h_sum = h1p + h2p
    h_mean = np.where(
        np.abs(h1p - h2p) <= 180,
        h_sum / 2,
        np.where(h_sum < 360, (h_sum + 360) / 2, (h_sum - 360) / 2),
    )
    h_mean = np.where(chromatic, h_mean, h_sum)

    t = (
        1
        - 0.17 * np.cos(np.radians(h_mean - 30))
        + 0.24 * np.cos(np.radians(2 * h_mean))
        + 0.32 * np.cos(np.radians(3 * h_mean + 6))
        - 0.20 * np.cos(np.radians(4 * h_mean - 63))
    )
    rotation = 30 * np.exp(-(((h_mean - 275) / 25) ** 2))
    r_c = 2 * np.sqrt(c_mean**7 / (c_mean**7 + 25.0**7))
    s_l = 1 + 0.015 * (l_mean - 50) ** 2 / np.sqrt(20 + (l_mean - 50) ** 2)
    s_c = 1 + 0.045 * c_mean
    s_h = 1 + 0.015 * c_mean * t
    r_t = -np.sin(np.radians(2 * rotation)) * r_c
    terms = (d_l / s_l) ** 2 + (d_c / s_c) ** 2 + (d_h / s_h) ** 2
    return np.sqrt(np.maximum(terms + r_t * (d_c / s_c) * (d_h / s_h), 0.0))


def product_delta_e(
    image: ImageLike, content: Image.Image, *, threshold: float = PRODUCT_ALPHA
) -> float:
    """Mean CIEDE2000 on product pixels, against the content composited on white.

    Product pixels are those whose coverage (alpha, or the mask estimated from a plain
    background) is at least `threshold`.
    """
    pixels = _pixels(image)
    shape = pixels.shape[:2]
    reference = _pixels(content, shape)
    product = product_coverage(content, shape) >= threshold
    if not product.any():
        raise ValueError("the content has no product pixels")
    return float(delta_e2000(srgb_to_lab(pixels[product]), srgb_to_lab(reference[product])).mean())


def evaluate(
    output: Image.Image,
    content: Image.Image,
    style: Image.Image,
    *,
    mode: str = "whole",
    device: str = "cpu",
) -> dict[str, float]:
    """The issue's quality figures for one rendition (see bench/engines.py for the targets)."""
    shape = (output.size[1], output.size[0])
    unstyled = _pixels(content, shape)
    figures = {
        "style_loss_in": style_loss(unstyled, style, device=device),
        "style_loss_out": style_loss(output, style, device=device),
        "content_change": content_loss(output, unstyled, device=device),
        "ssim": ssim(output, unstyled),
    }
    figures["style_cut"] = 1 - figures["style_loss_out"] / figures["style_loss_in"]
    if mode == "product":
        backdrop = 1 - product_coverage(content, shape)
        before = style_loss(unstyled, style, region=backdrop, device=device)
        after = style_loss(output, style, region=backdrop, device=device)
        figures["backdrop_style_cut"] = 1 - after / before
        figures["product_delta_e"] = product_delta_e(output, content)
    return figures


def _luminance(image: ImageLike) -> np.ndarray:
    pixels = _pixels(image).astype(np.float64)
    return pixels @ np.array([0.299, 0.587, 0.114])


def border_frame(image: ImageLike, *, band: int = 3, inner: int = 12) -> float:
    """How far the outermost `band` pixels stand out from the `inner` pixels just inside them.

    A decoder with zero padding paints a light or dark frame: its border band's mean luminance
    differs from the neighbouring interior. The figure is that difference per side (top,
    bottom, left, right), averaged in absolute value, in units of the interior's standard
    deviation (so a busy painting's natural edges count less than a flat backdrop's).
    """
    luma = _luminance(image)
    sides = [luma, luma[::-1], luma.T, luma.T[::-1]]
    gaps = []
    for side in sides:
        edge = side[:band]
        interior = side[band : band + inner]
        gaps.append(abs(edge.mean() - interior.mean()) / (interior.std() + 1e-3))
    return float(np.mean(gaps))


def grid_energy(image: ImageLike, periods: tuple[int, ...] = (2, 4, 8)) -> float:
    """Share of the high-frequency energy locked to the pixel grid at the decoder's periods.

    Nearest-neighbour upsampling by 2, three times, can leave a checkerboard of period 2, 4
    or 8 px aligned with the image's top-left corner. The high-passed luminance is averaged
    per phase (y mod p, x mod p); a grid pattern makes these p x p means differ, while
    content not tied to the grid averages out. Returns the largest variance of the phase
    means over the periods, over the variance of the high-passed image.
    """
    from scipy.ndimage import uniform_filter

    luma = _luminance(image)
    detail = luma - uniform_filter(luma, size=9, mode="reflect")
    total = detail.var() + 1e-12
    shares = []
    for period in periods:
        height, width = (side - side % period for side in detail.shape)
        tiles = detail[:height, :width].reshape(height // period, period, width // period, period)
        phase_means = tiles.mean(axis=(0, 2))
        shares.append(phase_means.var() / total)
    return float(max(shares))


def fine_detail(image: ImageLike, *, sigma: float = 1.0) -> float:
    """Share of the luminance variance finer than a Gaussian of `sigma` px: what a render at
    half the size, scaled up, cannot carry."""
    from scipy.ndimage import gaussian_filter

    luma = _luminance(image)
    fine = luma - gaussian_filter(luma, sigma=sigma, mode="reflect")
    return float(fine.var() / (luma.var() + 1e-12))
