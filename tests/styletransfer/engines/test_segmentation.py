"""Product mode on the photos shops have: cut-outs, packshots on plain backgrounds, garments on
floors and beds (GrabCut), and photos with no product to tell apart (painted whole)."""

import numpy as np
import pytest
from PIL import Image

from styletransfer.engines import RenderParams, get_engine
from styletransfer.engines.images import (
    PRODUCT_MODES,
    open_image,
    prepare_canvas,
    resize_longest,
    to_float,
)
from styletransfer.engines.segmentation import segment_product
from styletransfer.models import Rendition
from tests.helpers import DATA

LIFESTYLE = ["photo-tee-on-carpet.jpg", "photo-shorts-on-floor.jpg", "photo-jeans-on-bed.jpg"]
NOTHING_SEPARABLE = ["photo-mountain-stream.jpg", "photo-houses.jpg"]


@pytest.fixture(scope="module")
def wave() -> Image.Image:
    return open_image(DATA / "style-wave.jpg")


def on_busy_background(placements: list[tuple[int, int]], size: int, background: str):
    """The hoodie cut-out pasted onto a real photo: the composite and the true product mask."""
    hoodie = open_image(DATA / "product-hoodie.png").resize((size, size))
    photo = open_image(DATA / background)
    truth = np.zeros((photo.height, photo.width), dtype=bool)
    for left, top in placements:
        photo.paste(hoodie, (left, top), hoodie)
        truth[top : top + size, left : left + size] |= np.asarray(hoodie)[..., 3] > 127
    return photo, truth


def iou(mask: np.ndarray, truth: np.ndarray) -> float:
    return float((mask & truth).sum() / (mask | truth).sum())


def test_the_modes_engines_record_are_the_rendition_choices() -> None:
    assert set(PRODUCT_MODES) == set(Rendition.ProductMode.values)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("product-hoodie.png", "cutout"),
        ("product-mug-on-grey.jpg", "backdrop"),
        *[(name, "segmented") for name in LIFESTYLE],
        *[(name, "whole") for name in NOTHING_SEPARABLE],
    ],
)
def test_each_kind_of_photo_records_how_its_product_was_found(name, expected, wave) -> None:
    canvas = prepare_canvas(open_image(DATA / name), wave, size=160, mode="product")
    assert canvas.product_mode == expected
    assert (canvas.mask is None) == (expected == "whole")
    assert prepare_canvas(open_image(DATA / name), wave, size=160, mode="whole").product_mode == ""


@pytest.mark.parametrize("name", LIFESTYLE)
def test_a_garment_on_a_floor_or_bed_is_outlined_inside_the_frame(name) -> None:
    photo = to_float(resize_longest(open_image(DATA / name), 192))
    found = segment_product(photo)
    assert found.reason == "" and found.mask is not None
    assert 0.2 < (found.mask > 0.5).mean() < 0.7
    rows, columns = np.nonzero(found.mask == 1.0)
    height, width = found.mask.shape
    assert abs(rows.mean() / height - 0.5) < 0.17 and abs(columns.mean() / width - 0.5) < 0.17
    border = np.concatenate([found.mask[0], found.mask[-1], found.mask[:, 0], found.mask[:, -1]])
    assert border.max() == 0.0, "the floor at the edges is not product"
    edge = (found.mask > 0) & (found.mask < 1)
    assert edge.any(), "a feathered edge, not a jagged one"


@pytest.mark.parametrize(
    ("placements", "size", "background"),
    [
        ([(20, 20)], 130, "photo-mountain-stream.jpg"),
        ([(20, 20)], 130, "photo-houses.jpg"),
        ([(25, 35), (135, 40)], 95, "photo-mountain-stream.jpg"),  # a pair: both are kept
        ([(25, 35), (135, 40)], 95, "photo-houses.jpg"),
    ],
)
def test_a_product_on_a_busy_photo_is_found_within_an_iou_of_093(
    placements, size, background
) -> None:
    photo, truth = on_busy_background(placements, size, background)
    found = segment_product(to_float(photo))
    assert found.mask is not None, found.reason
    assert iou(found.mask > 0.5, truth) >= 0.93
    assert found.parts == len(placements)


@pytest.mark.parametrize("name", NOTHING_SEPARABLE)
def test_a_landscape_is_refused_with_the_reason(name) -> None:
    found = segment_product(to_float(open_image(DATA / name)))
    assert found.mask is None
    assert "GrabCut" in found.reason or "colours" in found.reason


@pytest.mark.parametrize(
    "pixels",
    [
        np.full((48, 48, 3), 0.5, dtype=np.float32),  # nothing at all to tell apart
        np.random.default_rng(0).random((40, 2, 3), dtype=np.float32),  # a sliver
        np.random.default_rng(1).random((64, 64, 3), dtype=np.float32),  # noise
    ],
)
def test_what_grabcut_cannot_work_on_is_a_refusal_not_an_error(pixels) -> None:
    found = segment_product(pixels)
    assert found.mask is None and found.reason


def test_the_same_photo_gives_the_same_outline_whatever_came_before() -> None:
    photo = to_float(open_image(DATA / LIFESTYLE[0]))
    first = segment_product(photo).mask
    segment_product(to_float(open_image(DATA / LIFESTYLE[1])))
    assert np.array_equal(segment_product(photo).mask, first)


@pytest.mark.parametrize("engine_name", ["color", "feedforward", "optimize"])
def test_every_engine_keeps_a_segmented_products_pixels_and_says_so(engine_name, wave) -> None:
    photo = open_image(DATA / "photo-tee-on-carpet.jpg")
    params = RenderParams(engine=engine_name, mode="product", size=96, strength=80, steps=4)
    out = get_engine(engine_name, "cpu").render(photo, wave, params)
    assert out.info["product_mode"] == "segmented"
    canvas = prepare_canvas(photo, wave, size=96, mode="product")
    inside = canvas.mask == 1.0
    assert inside.mean() > 0.2
    source = np.asarray(resize_longest(photo, 96), dtype=np.int16)
    rendered = np.asarray(out, dtype=np.int16)
    assert np.abs(rendered[inside] - source[inside]).max() <= 1, "the product's own pixels"
    outside = canvas.mask == 0.0
    assert np.abs(rendered[outside] - source[outside]).mean() > 20, "the carpet is painted"


@pytest.mark.parametrize("engine_name", ["color", "feedforward"])
def test_with_no_product_to_tell_apart_the_photo_itself_is_painted(engine_name, wave) -> None:
    photo = open_image(DATA / "photo-mountain-stream.jpg")
    params = RenderParams(engine=engine_name, mode="product", size=96, strength=60)
    out = get_engine(engine_name, "cpu").render(photo, wave, params)
    assert out.info["product_mode"] == "whole"
    # Still the stream's picture, restyled: its light and dark places stay where they were
    # (the painting alone, which the colour engine used to return, correlates about 0).
    source = np.asarray(resize_longest(photo, 96).convert("L"), dtype=np.float64)
    rendered = np.asarray(out.convert("L"), dtype=np.float64)
    assert np.corrcoef(source.ravel(), rendered.ravel())[0, 1] > 0.3


def test_the_fast_engine_paints_a_photo_with_no_product_as_whole_mode_does(wave) -> None:
    photo = open_image(DATA / "photo-mountain-stream.jpg")
    engine = get_engine("feedforward", "cpu")
    product = RenderParams(engine="feedforward", mode="product", size=96, preserve_colors=True)
    whole = RenderParams(engine="feedforward", mode="whole", size=96)
    fallen_back = engine.render(photo, wave, product)
    assert fallen_back.info["product_mode"] == "whole"
    # The same pixels as whole mode, its compensation included (it used to be skipped, and the
    # style came out weaker); its colours are not kept, as the product-mode key ignores that.
    assert fallen_back.tobytes() == engine.render(photo, wave, whole).tobytes()
    (batched,) = engine.render_batch([photo], wave, product)
    assert batched.tobytes() == fallen_back.tobytes()


def test_whole_mode_records_no_product_mode(wave) -> None:
    photo = open_image(DATA / "photo-tee-on-carpet.jpg")
    out = get_engine("color", "cpu").render(photo, wave, RenderParams(engine="color", size=64))
    assert out.info["product_mode"] == ""


def test_a_worker_without_opencv_paints_the_whole_photo_and_warns(monkeypatch, caplog, wave):
    import sys

    monkeypatch.setitem(sys.modules, "cv2", None)  # what `import cv2` sees when it is missing
    monkeypatch.delitem(sys.modules, "styletransfer.engines.segmentation", raising=False)
    photo = open_image(DATA / "photo-tee-on-carpet.jpg")
    with caplog.at_level("WARNING", logger="styletransfer.engines.images"):
        canvas = prepare_canvas(photo, wave, size=96, mode="product")
    assert (canvas.product_mode, canvas.mask) == ("whole", None)
    assert "opencv-python-headless is missing" in caplog.text
