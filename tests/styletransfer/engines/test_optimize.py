"""The optimize engine on real (downscaled) product photos and paintings, on the CPU."""

import numpy as np
import pytest
from PIL import Image

from styletransfer.engines import OutOfMemory, RenderParams, get_engine, metrics
from styletransfer.engines.images import open_image
from styletransfer.engines.optimize import pyramid, split_steps
from tests.helpers import DATA


@pytest.fixture(scope="module")
def engine():
    return get_engine("optimize", device="cpu")


@pytest.fixture(scope="module")
def hoodie() -> Image.Image:
    return open_image(DATA / "product-hoodie.png")


@pytest.fixture(scope="module")
def starry() -> Image.Image:
    return open_image(DATA / "style-starry-night.jpg")


def on_white(image: Image.Image, size: int) -> np.ndarray:
    rgba = np.asarray(image.resize((size, size), Image.Resampling.LANCZOS), dtype=np.float32) / 255
    return rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:])


def test_engines_are_loaded_once_per_device(engine) -> None:
    assert get_engine("optimize", device="cpu") is engine


@pytest.mark.slow
def test_whole_mode_takes_on_the_style_and_keeps_the_product(engine, hoodie, starry) -> None:
    ticks = []
    out = engine.render(
        hoodie,
        starry,
        RenderParams(size=96, steps=30),
        progress=lambda done, total: ticks.append((done, total)),
    )
    assert out.mode == "RGB" and out.size == (96, 96)
    before = metrics.style_loss(on_white(hoodie, 96), starry)
    assert metrics.style_loss(out, starry) < 0.5 * before
    assert metrics.content_loss(out, hoodie) < 0.6
    assert ticks[-1] == (30, 30)
    assert [done for done, _ in ticks] == sorted(done for done, _ in ticks)


@pytest.mark.slow
def test_product_mode_keeps_product_colours_and_paints_the_backdrop(engine, hoodie, starry) -> None:
    out = engine.render(hoodie, starry, RenderParams(mode="product", size=96, steps=25))
    assert metrics.product_delta_e(out, hoodie) < 1.0
    pixels = np.asarray(out, dtype=np.float32) / 255
    alpha = np.asarray(hoodie.resize((96, 96)).getchannel("A")) == 0
    backdrop = pixels[alpha]
    assert backdrop.mean() > 0.15, "backdrop went black"
    assert backdrop.std() > 0.05, "backdrop left blank"
    figures = metrics.evaluate(out, hoodie, starry, mode="product")
    assert figures["backdrop_style_cut"] > 0.5


@pytest.mark.slow
def test_product_mode_on_a_plain_background_photo(engine, starry) -> None:
    mug = open_image(DATA / "product-mug-on-grey.jpg")
    out = engine.render(mug, starry, RenderParams(mode="product", size=64, steps=10))
    # the bound; the estimated mask's feathered rim is a large share of a 64 px mug
    assert metrics.product_delta_e(out, mug) < 5.0
    corner = np.asarray(out, dtype=np.float32)[:6, :6] / 255
    assert np.abs(corner - 242 / 255).max() > 0.1, "the grey backdrop was not painted"


def test_same_seed_same_pixels_on_cpu(engine, hoodie, starry) -> None:
    params = RenderParams(mode="product", size=64, steps=6, seed=7)
    first = engine.render(hoodie, starry, params)
    second = engine.render(hoodie, starry, params)
    other = engine.render(hoodie, starry, RenderParams(mode="product", size=64, steps=6, seed=8))
    assert first.tobytes() == second.tobytes()
    assert first.tobytes() != other.tobytes()


def test_strength_zero_returns_the_input(engine, hoodie, starry) -> None:
    out = engine.render(hoodie, starry, RenderParams(strength=0, size=64))
    assert np.abs(np.asarray(out, dtype=np.float32) / 255 - on_white(hoodie, 64)).max() < 2 / 255


def test_preserve_colors_keeps_the_content_hues(engine, hoodie, starry) -> None:
    out = engine.render(hoodie, starry, RenderParams(size=64, steps=10, preserve_colors=True))
    pixels = np.asarray(out, dtype=np.float32) / 255
    original = on_white(hoodie, 64)
    # the hoodie is blue, the backdrop white: no Starry Night yellow may appear anywhere
    blue = original[..., 2] > original[..., 0] + 0.2
    assert (pixels[blue][:, 2] > pixels[blue][:, 0]).mean() > 0.95
    saturation = pixels.max(axis=2) - pixels.min(axis=2)
    assert saturation[~blue].mean() < 0.06


def test_sharpen_and_denoise_change_the_pixels(engine, hoodie, starry) -> None:
    plain = engine.render(hoodie, starry, RenderParams(size=64, steps=3))
    sharp = engine.render(hoodie, starry, RenderParams(size=64, steps=3, sharpen=1.0))
    smooth = engine.render(hoodie, starry, RenderParams(size=64, steps=3, denoise=1.0))
    assert plain.tobytes() != sharp.tobytes() and plain.tobytes() != smooth.tobytes()


CUDA_OOM = "CUDA out of memory. Tried to allocate 2.00 GiB"
CPU_OOM = "DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 GB"


@pytest.mark.parametrize("kind", ["cuda", "cpu"])
def test_out_of_memory_becomes_a_typed_error(engine, hoodie, starry, monkeypatch, kind) -> None:
    import torch

    def exhausted(*args, **kwargs):
        raise torch.OutOfMemoryError(CUDA_OOM) if kind == "cuda" else RuntimeError(CPU_OOM)

    monkeypatch.setattr(engine, "infer", exhausted)
    with pytest.raises(OutOfMemory, match="retry"):
        engine.render(hoodie, starry, RenderParams(size=64, steps=1))


def test_pyramid_is_coarse_to_fine_above_512_px() -> None:
    assert pyramid(96) == [96] and pyramid(512) == [512]
    assert pyramid(1024) == [512, 1024]
    assert pyramid(3000) == [375, 750, 1500, 3000]
    for steps, levels in ((120, 2), (7, 3), (1, 1)):
        counts = split_steps(steps, levels)
        assert sum(counts) == max(steps, levels) and counts == sorted(counts, reverse=True)
