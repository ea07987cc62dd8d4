"""The feed-forward engine with the shipped decoder: stylises, keeps products true, loads safely."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from styletransfer.engines import OutOfMemory, RenderParams, WeightsError, cli, get_engine, metrics
from styletransfer.engines.colour_space import srgb_to_lab
from styletransfer.engines.decoder import SHIPPED_FILE, SHIPPED_SHA256, load_decoder
from styletransfer.engines.feedforward import FeedForwardEngine, stop_position
from styletransfer.engines.images import open_image, resize_longest, to_float
from styletransfer.engines.params import content_budget
from tests.helpers import DATA, ROOT


@pytest.fixture(scope="module")
def engine() -> FeedForwardEngine:
    engine = FeedForwardEngine("cpu")
    engine.load()
    return engine


@pytest.fixture(scope="module")
def starry():
    return open_image(DATA / "style-starry-night.jpg")


@pytest.fixture(scope="module")
def mug():
    return open_image(DATA / "product-mug-on-grey.jpg")


@pytest.fixture(scope="module")
def hoodie():
    return open_image(DATA / "product-hoodie.png")


def params(**changes) -> RenderParams:
    return RenderParams(**({"engine": "feedforward", "size": 128} | changes))


def test_the_shipped_decoder_matches_its_pinned_checksum() -> None:
    assert SHIPPED_SHA256, "styletransfer/weights/decoder.pt ships with its sha256 pinned"
    _, meta = load_decoder(SHIPPED_FILE)
    assert meta["sha256"] == SHIPPED_SHA256
    assert SHIPPED_FILE.stat().st_size <= 15 * 1024 * 1024


@pytest.mark.slow
def test_it_stylises_the_whole_image(engine, mug, hoodie, starry) -> None:
    out = engine.render(mug, starry, params(strength=100))
    assert out.size == (128, 128) and out.mode == "RGB"
    before = metrics.style_loss(resize_longest(mug, 128), starry)
    assert metrics.style_loss(out, starry) < 0.5 * before
    # still the same picture, not a texture swatch: nearer the mug than another product
    styled = engine.render(mug, starry, params())
    assert metrics.ssim(styled, mug) > 1.2 * metrics.ssim(styled, hoodie)


@pytest.mark.slow
def test_compensating_the_decoder_lowers_the_style_loss(mug, starry, monkeypatch) -> None:
    engine = FeedForwardEngine("cpu")
    engine.load()
    compensated = engine.render(mug, starry, params(size=192))
    monkeypatch.setattr(engine, "_compensate", lambda target, *_: target)
    plain = engine.render(mug, starry, params(size=192))
    assert metrics.style_loss(compensated, starry) < 0.9 * metrics.style_loss(plain, starry)


@pytest.mark.slow
def test_a_render_changes_the_photo_no_more_than_the_content_budget(
    mug, hoodie, starry, monkeypatch
) -> None:
    """A cut-out's white backdrop painted in whole mode changes the product's relu4_1 features
    by 1.1-1.8 (recognisable up to 0.6); asked to keep it recognisable, the render stops where
    the budget is reached, single and batched alike."""
    engine = FeedForwardEngine("cpu")
    engine.load()
    budget = content_budget(70)
    kept = params(size=160, recognisable=True)
    singles = [engine.render(image, starry, kept) for image in (hoodie, mug)]
    batched = engine.render_batch([hoodie, mug], starry, kept)
    for image, single, in_batch in zip((hoodie, mug), singles, batched, strict=True):
        assert metrics.content_loss(single, image) <= budget + 0.06
        gap = np.abs(np.asarray(single, dtype=np.int16) - np.asarray(in_batch, dtype=np.int16))
        assert gap.mean() < 1.0  # a batch's convolutions round a little differently
    free = engine.render(hoodie, starry, params(size=160))  # the default: style first
    assert metrics.content_loss(free, hoodie) > budget + 0.2
    assert kept.canonical() != params(size=160).canonical()  # a rendition of its own


def test_the_compensation_stops_where_the_measured_change_meets_the_budget() -> None:
    import torch

    assert float(stop_position(torch.tensor([0.3, 0.4, 0.5]), 0.6)) == 2  # all of it
    assert float(stop_position(torch.tensor([0.3, 0.5, 0.7]), 0.6)) == pytest.approx(1.5)
    assert float(stop_position(torch.tensor([0.3, 0.5, 0.7]), 0.4)) == pytest.approx(0.5)
    assert float(stop_position(torch.tensor([0.8, 0.9, 1.0]), 0.6)) == 0  # towards the photo


@pytest.mark.slow
def test_strength_zero_is_the_input_and_strength_grows_the_style(engine, mug, starry) -> None:
    unchanged = engine.render(mug, starry, params(strength=0))
    expected = np.asarray(resize_longest(mug, 128), dtype=np.int16)
    assert np.abs(np.asarray(unchanged, dtype=np.int16) - expected).max() <= 1
    losses = [
        metrics.style_loss(engine.render(mug, starry, params(strength=s)), starry)
        for s in (20, 60, 100)
    ]
    assert losses[0] > losses[1] > losses[2]


def test_product_mode_keeps_the_product_and_paints_the_backdrop(engine, hoodie, starry) -> None:
    out = engine.render(hoodie, starry, params(mode="product"))
    assert metrics.product_delta_e(out, hoodie) < 2
    alpha = to_float(hoodie.getchannel("A"))
    backdrop = np.asarray(out, dtype=np.float32)[alpha == 0] / 255
    # painted, not left white and not blackened
    assert 0.1 < backdrop.mean() < 0.9
    assert backdrop.std() > 0.05


def test_product_mode_finds_a_product_on_a_plain_backdrop(engine, mug, starry) -> None:
    out = engine.render(mug, starry, params(mode="product", strength=100))
    assert metrics.product_delta_e(out, mug) < 5


def test_preserve_colors_keeps_the_content_chroma(engine, mug, starry) -> None:
    plain = engine.render(mug, starry, params(strength=100))
    kept = engine.render(mug, starry, params(strength=100, preserve_colors=True))
    reference = srgb_to_lab(to_float(resize_longest(mug, 128)))[..., 1:]

    def chroma_gap(image) -> float:
        return float(np.abs(srgb_to_lab(to_float(image))[..., 1:] - reference).mean())

    assert chroma_gap(kept) < 0.5 * chroma_gap(plain)


@pytest.mark.slow
def test_a_batch_renders_like_single_images(engine, mug, hoodie, starry) -> None:
    batch = engine.render_batch([mug, hoodie, mug], starry, params())
    assert [image.size for image in batch] == [(128, 128)] * 3
    single = np.asarray(engine.render(mug, starry, params()), dtype=np.int16)
    for image in (batch[0], batch[2]):
        assert np.abs(np.asarray(image, dtype=np.int16) - single).mean() < 1.0


def test_a_batch_that_runs_out_of_memory_is_a_typed_error(mug, starry, monkeypatch) -> None:
    import torch

    engine = FeedForwardEngine("cpu")
    engine.load()

    def exhausted(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(engine, "stylise", exhausted)
    with pytest.raises(OutOfMemory, match="retry"):  # the render task retries it on cpu
        engine.render_batch([mug, mug], starry, params())


def test_missing_weights_name_the_command_to_run(tmp_path) -> None:
    with pytest.raises(WeightsError, match="not found.*train-decoder"):
        FeedForwardEngine(weights=tmp_path / "decoder.pt").load()


def test_altered_weights_are_refused(tmp_path, monkeypatch) -> None:
    copy = tmp_path / "decoder.pt"
    shutil.copy(SHIPPED_FILE, copy)
    (tmp_path / "decoder.pt.sha256").write_text(f"{SHIPPED_SHA256}  decoder.pt\n")
    FeedForwardEngine(weights=copy).load()  # an intact copy loads
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    monkeypatch.setenv("STYLETRANSFER_DECODER_WEIGHTS", str(copy))
    with pytest.raises(WeightsError, match="altered.*train-decoder"):
        FeedForwardEngine().load()


def test_weights_without_a_checksum_are_refused(tmp_path) -> None:
    copy = tmp_path / "decoder.pt"
    shutil.copy(SHIPPED_FILE, copy)
    with pytest.raises(WeightsError, match="no checksum"):
        FeedForwardEngine(weights=copy).load()


def test_get_engine_serves_one_loaded_feedforward_engine() -> None:
    engine = get_engine("feedforward", "cpu")
    assert isinstance(engine, FeedForwardEngine) and engine.loaded
    assert get_engine("feedforward", "cpu") is engine
    assert len(engine.version) == 16


def test_the_cli_renders_with_engine_feedforward(tmp_path) -> None:
    out = tmp_path / "out.png"
    argv = ["render", "--engine", "feedforward", "--mode", "product", "--size", "96"]
    argv += ["--content", str(DATA / "product-hoodie.png"), "--style"]
    argv += [str(DATA / "style-wave.jpg"), "--out", str(out), "--quiet"]
    assert cli.main(argv) == 0
    assert Image.open(out).size == (96, 96)


@pytest.mark.slow
def test_the_cli_says_what_to_run_when_the_decoder_is_missing(tmp_path) -> None:
    env = dict(os.environ, STYLETRANSFER_DECODER_WEIGHTS=str(tmp_path / "gone.pt"))
    argv = [sys.executable, "-m", "styletransfer", "render", "--engine", "feedforward"]
    argv += ["--content", str(DATA / "product-hoodie.png"), "--style"]
    argv += [str(DATA / "style-wave.jpg"), "--out", str(tmp_path / "out.png")]
    result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == cli.EXIT_WEIGHTS
    assert "train-decoder" in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_product_page_rendition_at_1000_px_is_one_pass_within_the_budget(
    engine, starry, monkeypatch
) -> None:
    """No tiles, so no seams: every decode sees the whole 1000 px canvas (bench/product_page.py
    measures its time and detail)."""
    photo = open_image(DATA / "photo-houses.jpg")
    decoded = []
    decode = engine._decode

    def recording(features, decoder):
        out = decode(features, decoder)
        decoded.append(tuple(out.shape[-2:]))
        return out

    monkeypatch.setattr(engine, "_decode", recording)
    big = engine.render(photo, starry, params(size=1000, recognisable=True))
    assert big.size == (1000, 668)
    assert decoded and all(shape == (672, 1000) for shape in decoded)  # padded to 8
    assert metrics.content_loss(big, photo) <= content_budget(70) + 0.06
