"""The `color` engine: photoreal look transfer by optimal transport of colour statistics (numpy)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from .colour_space import lab_to_srgb, srgb_to_lab
from .engine import Engine, Progress
from .images import Canvas, to_float, to_image
from .params import RenderParams

# Statistics come from a fixed-stride subsample: the look of a 4 MP photo is in 16k pixels.
SAMPLE = 16_384
BINS = 1024
LUT_SIZE = 33


class ColorEngine(Engine):
    """Moves the content's colour distribution onto the style's; no network, no torch."""

    name = "color"

    def infer(self, canvas: Canvas, params: RenderParams, progress: Progress | None) -> np.ndarray:
        strength = params.strength / 100
        if params.mode == "product" and canvas.mask is not None:
            result = painted_backdrop(canvas, strength)
        else:
            result = transfer_colour(
                canvas.content, canvas.style, strength, luminance_only=params.preserve_colors
            )
        if progress:
            progress(1, 1)
        return result


def transfer_colour(
    content: np.ndarray, style: np.ndarray, strength: float, *, luminance_only: bool = False
) -> np.ndarray:
    """Content pixels re-coloured like `style`, blended by `strength` (0..1)."""
    if strength <= 0:
        return content
    lut = colour_lut(
        _sample(content.reshape(-1, 3)),
        _sample(style.reshape(-1, 3)),
        strength,
        luminance_only=luminance_only,
    )
    return to_float(to_image(content).filter(lut))


def colour_lut(
    content: np.ndarray, style: np.ndarray, strength: float, *, luminance_only: bool = False
) -> ImageFilter.Color3DLUT:
    """The transfer fitted on two pixel samples (N x 3 sRGB), as a 3-D LUT Pillow applies in C.

    The map is a smooth function of colour alone, so fitting on samples and tabulating it
    over a 33³ grid costs the same for any image size.
    """
    lab, style_lab = srgb_to_lab(content), srgb_to_lab(style)
    ramp = np.linspace(0.0, 1.0, LUT_SIZE)
    blue, green, red = np.meshgrid(ramp, ramp, ramp, indexing="ij")  # Pillow: red runs fastest
    grid = srgb_to_lab(np.stack([red, green, blue], axis=-1).reshape(-1, 3))
    if luminance_only:
        moved = grid.copy()
        moved[:, 0] = _match_marginal(grid[:, 0], style_lab[:, 0], lab[:, 0])
    else:
        # The linear optimal-transport map between the two colour clouds (as Gaussians):
        # smooth and monotone, so anti-aliased edges and shadows keep their order. Matching
        # full marginals as well was tried and gave colour fringes around cut-outs.
        moved = _gaussian_transport(grid, lab, style_lab)
    table = lab_to_srgb(grid + strength * (moved - grid))
    return ImageFilter.Color3DLUT(LUT_SIZE, table.reshape(-1), channels=3)


def _sample(values: np.ndarray) -> np.ndarray:
    stride = max(1, len(values) // SAMPLE)
    return values[::stride]


def _gaussian_transport(values: np.ndarray, sample: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The optimal-transport (Monge–Kantorovich) linear map between two Gaussians."""
    mean_s, mean_t = sample.mean(axis=0), target.mean(axis=0)
    cov_s = np.cov(sample, rowvar=False) + 1e-3 * np.eye(3)
    cov_t = np.cov(target, rowvar=False) + 1e-3 * np.eye(3)
    root_s = _sqrtm(cov_s)
    inverse_root_s = np.linalg.inv(root_s)
    transport = inverse_root_s @ _sqrtm(root_s @ cov_t @ root_s) @ inverse_root_s
    return (values - mean_s) @ transport.T + mean_t


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def _match_marginal(values: np.ndarray, target: np.ndarray, sample: np.ndarray) -> np.ndarray:
    """1-D optimal transport: map each value to the target value at the same quantile."""
    low = min(sample.min(), target.min())
    high = max(sample.max(), target.max()) + 1e-6
    edges = np.linspace(low, high, BINS + 1)
    source_cdf = np.cumsum(np.histogram(sample, edges)[0]) / len(sample)
    target_cdf = np.cumsum(np.histogram(target, edges)[0]) / len(target)
    quantiles = np.interp(values, edges[1:], source_cdf)
    return np.interp(quantiles, target_cdf, edges[1:])


def painted_backdrop(canvas: Canvas, strength: float) -> np.ndarray:
    """The painting itself, cover-cropped and softened, behind the product; plain at strength 0.

    Opacity rises fast with strength (0.9 at 70): a half-faded painting reads as a smudge.
    """
    height, width = canvas.content.shape[:2]
    painting = to_image(canvas.style)
    scale = max(width / painting.width, height / painting.height)
    cover = painting.resize(
        (max(width, round(painting.width * scale)), max(height, round(painting.height * scale))),
        Image.Resampling.LANCZOS,
    )
    left, top = (cover.width - width) // 2, (cover.height - height) // 2
    cover = cover.crop((left, top, left + width, top + height))
    # A slight blur reads as depth of field and keeps brush detail from fighting the product.
    cover = cover.filter(ImageFilter.GaussianBlur(max(width, height) / 600))
    plain = canvas.backdrop if canvas.backdrop is not None else np.ones(3, dtype=np.float32)
    opacity = strength**0.3
    return (plain + opacity * (to_float(cover) - plain)).astype(np.float32)
