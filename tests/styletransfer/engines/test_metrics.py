"""Metrics: CIEDE2000 against Sharma's published pairs, SSIM and the VGG losses on real images."""

import numpy as np
import pytest
from PIL import Image

from styletransfer.engines import metrics
from styletransfer.engines.images import open_image
from tests.helpers import DATA

# Sharma, Wu & Dalal (2005), "The CIEDE2000 color-difference formula": test pairs 1, 2, 3,
# 7, 13, 17, 25 and 34 of their table (including the hue wrap-around and near-black cases).
SHARMA = [
    ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
    ((50.0, 3.1571, -77.2803), (50.0, 0.0, -82.7485), 2.8615),
    ((50.0, 2.8361, -74.0200), (50.0, 0.0, -82.7485), 3.4412),
    ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
    ((50.0, 2.49, -0.001), (50.0, -2.49, 0.0009), 7.1792),
    ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ((2.0776, 0.0795, -1.135), (0.9033, -0.0636, -0.5514), 0.9082),
]


def test_ciede2000_matches_sharma_reference_pairs() -> None:
    first = np.array([pair[0] for pair in SHARMA])
    second = np.array([pair[1] for pair in SHARMA])
    expected = np.array([pair[2] for pair in SHARMA])
    assert np.allclose(metrics.delta_e2000(first, second), expected, atol=1e-4)
    assert np.allclose(metrics.delta_e2000(second, first), expected, atol=1e-4)


def test_ssim_is_one_for_identical_and_drops_with_noise() -> None:
    image = open_image(DATA / "style-wave.jpg")
    assert metrics.ssim(image, image) == pytest.approx(1.0)
    noisy = np.asarray(image, dtype=np.float32) / 255
    noisy = np.clip(noisy + np.random.default_rng(0).normal(0, 0.1, noisy.shape), 0, 1)
    assert metrics.ssim(noisy, image) < 0.8


def test_product_delta_e_ignores_the_backdrop_and_sees_a_recolour() -> None:
    cut_out = open_image(DATA / "product-hoodie.png")
    pixels = np.asarray(cut_out.convert("RGBA"), dtype=np.float32) / 255
    alpha = pixels[..., 3:]
    on_white = pixels[..., :3] * alpha + (1 - alpha)
    on_red = pixels[..., :3] * alpha + (1 - alpha) * np.array([1.0, 0, 0])
    assert metrics.product_delta_e(on_white, cut_out) < 0.01
    # a new backdrop only touches the anti-aliased rim, so the mean stays small
    assert metrics.product_delta_e(on_red, cut_out) < 5
    shifted = np.clip(on_white * np.array([1.0, 0.8, 0.6]), 0, 1)
    assert metrics.product_delta_e(shifted, cut_out) > 5


def test_style_loss_is_zero_for_the_style_itself_and_orders_paintings() -> None:
    starry = open_image(DATA / "style-starry-night.jpg")
    wave = open_image(DATA / "style-wave.jpg")
    flat = Image.new("RGB", starry.size, "white")
    assert metrics.style_loss(starry, starry) == pytest.approx(0.0, abs=1e-3)
    assert metrics.style_loss(flat, starry) > metrics.style_loss(wave, starry) > 0


def test_content_loss_is_relative_relu4_1_change() -> None:
    hoodie = open_image(DATA / "product-hoodie.png")
    assert metrics.content_loss(hoodie, hoodie) == pytest.approx(0.0, abs=1e-6)
    flat = Image.new("RGB", hoodie.size, "white")
    assert metrics.content_loss(flat, hoodie) > 0.5


def test_evaluate_reports_the_issue_figures_for_product_mode() -> None:
    hoodie = open_image(DATA / "product-hoodie.png")
    starry = open_image(DATA / "style-starry-night.jpg")
    figures = metrics.evaluate(hoodie.convert("RGB"), hoodie, starry, mode="product")
    assert {"style_cut", "content_change", "ssim", "product_delta_e", "backdrop_style_cut"} <= set(
        figures
    )
    # an RGBA -> RGB conversion blackens the backdrop: nothing gained, product edges damaged
    assert figures["backdrop_style_cut"] < 0.5


def test_fine_detail_is_what_a_small_render_scaled_up_lacks() -> None:
    photo = open_image(DATA / "photo-houses.jpg").resize((512, 384))
    scaled_up = photo.resize((256, 192)).resize((512, 384), Image.Resampling.LANCZOS)
    assert metrics.fine_detail(photo) > 1.5 * metrics.fine_detail(scaled_up)
