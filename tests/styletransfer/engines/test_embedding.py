"""Style embeddings from the real VGG19 on the demo's real paintings."""

import numpy as np
from PIL import Image

from styletransfer.engines.embedding import STYLE_EMBEDDING_DIM, style_embedding
from tests.helpers import ROOT

STYLES = ROOT / "storefront" / "demo" / "styles"


def painting(name: str) -> Image.Image:
    return Image.open(STYLES / name)


def test_embedding_is_fixed_length_and_deterministic():
    first = style_embedding(painting("starry_night.jpg"), device="cpu")
    again = style_embedding(painting("starry_night.jpg"), device="cpu")
    assert first.shape == (STYLE_EMBEDDING_DIM,) and first.dtype == np.float32
    assert np.isfinite(first).all()
    np.testing.assert_array_equal(first, again)


def test_different_paintings_are_further_apart_than_one_painting_resized():
    starry = style_embedding(painting("starry_night.jpg"), device="cpu")
    small = painting("starry_night.jpg")
    small = small.resize((small.width // 2, small.height // 2))
    starry_small = style_embedding(small, device="cpu")
    scream = style_embedding(painting("the_scream.jpg"), device="cpu")
    udnie = style_embedding(painting("udnie.jpg"), device="cpu")

    def distance(a, b):
        return 1 - a @ b / np.linalg.norm(a) / np.linalg.norm(b)

    same = distance(starry, starry_small)
    assert distance(starry, scream) > 3 * same
    assert distance(starry, udnie) > 3 * same
