"""Product mode across a catalogue of real photos: every rendition ends ready, records how its
product was found (single and batched renders alike), and the admin shows it."""

import pytest
from django.core.files.base import ContentFile
from django.utils.html import strip_tags

from storefront.models import Category, Product
from styletransfer import batching, rendering, services
from styletransfer.models import Rendition
from tests.helpers import DATA

from .helpers import make_style

pytestmark = pytest.mark.django_db

# Each photo of the catalogue, and how product mode should tell its product apart.
CATALOGUE = {
    "product-hoodie.png": "cutout",
    "product-mug-on-grey.jpg": "backdrop",
    "photo-tee-on-carpet.jpg": "segmented",
    "photo-shorts-on-floor.jpg": "segmented",
    "photo-mountain-stream.jpg": "whole",
}


@pytest.fixture
def catalogue() -> list[Product]:
    category = Category.objects.create(slug="clothes", name="Clothes")
    products = []
    for number, name in enumerate(CATALOGUE):
        product = Product(slug=f"p{number}", name=name, price=10, category=category)
        product.image.save(name, ContentFile((DATA / name).read_bytes()), save=True)
        products.append(product)
    return products


def requested(style, products) -> list[Rendition]:
    sources = services.source_images_of(products)
    return [services.rendition_request(source=sources[p.pk], style=style) for p in products]


def recorded(renditions: list[Rendition]) -> dict[str, tuple[str, str]]:
    """Each photo's rendition (requested in CATALOGUE's order) as (status, product mode)."""
    rows = Rendition.objects.in_bulk([r.pk for r in renditions])
    return {
        name: (rows[r.pk].status, rows[r.pk].product_mode)
        for name, r in zip(CATALOGUE, renditions, strict=True)
    }


def expected(status: str = "ready", mode: str | None = None) -> dict[str, tuple[str, str]]:
    return {name: (status, mode if mode is not None else kind) for name, kind in CATALOGUE.items()}


def test_every_photo_ends_ready_with_how_its_product_was_found(catalogue):
    renditions = requested(make_style("look", engine="color", size=96), catalogue)
    for rendition in renditions:
        rendering.rendition_render(rendition_id=rendition.pk)
    assert recorded(renditions) == expected()


def test_a_whole_mode_style_records_no_product_mode(catalogue):
    renditions = requested(make_style("whole", engine="color", mode="whole"), catalogue)
    for rendition in renditions:
        rendering.rendition_render(rendition_id=rendition.pk)
    assert recorded(renditions) == expected(mode="")


def test_a_batch_records_the_same_modes_as_single_renders(catalogue):
    renditions = requested(make_style("fast", engine="feedforward", size=64), catalogue)
    outcome = batching.renditions_render_batch(rendition_ids=[r.pk for r in renditions])
    assert sorted(outcome.ready) == sorted(r.pk for r in renditions)
    assert recorded(renditions) == expected()


def test_the_admin_shows_which_photos_fell_back_to_the_whole_image(
    catalogue, client, django_user_model
):
    style = make_style("look", engine="color", size=96)
    for rendition in requested(style, catalogue):
        rendering.rendition_render(rendition_id=rendition.pk)
    django_user_model.objects.create_superuser("merchandiser", "m@example.com", "pw-123456789")
    client.login(username="merchandiser", password="pw-123456789")

    page = client.get(f"/admin/styletransfer/style/{style.pk}/change/").content.decode()
    text = strip_tags(page)
    assert "whole image: 1 of 5 — no product could be told apart" in text
    assert "segmented from its surroundings: 2 of 5" in text
    assert "cut-out (transparent background): 1 of 5" in text
    assert f"style__id__exact={style.pk}&amp;product_mode__exact=whole" in page

    listing = client.get("/admin/styletransfer/rendition/")
    assert listing.status_code == 200
    assert "Product mode" in listing.content.decode()  # the column and the filter
    fallen_back = client.get("/admin/styletransfer/rendition/?product_mode__exact=whole")
    assert fallen_back.context["cl"].result_count == 1
    (row,) = fallen_back.context["cl"].result_list
    assert "photo-mountain-stream" in row.source_name
    assert "whole image" in fallen_back.content.decode()


def test_a_whole_mode_style_says_so_on_its_page(client, django_user_model):
    style = make_style("whole", engine="color", mode="whole")
    django_user_model.objects.create_superuser("merchandiser", "m@example.com", "pw-123456789")
    client.login(username="merchandiser", password="pw-123456789")
    page = client.get(f"/admin/styletransfer/style/{style.pk}/change/").content.decode()
    assert "whole-image style: every photo is painted whole" in page
