"""The shop says what a product is: which products are live (the API, catalogue renders and
coverage never see an unpublished one), and the default API product's page and price."""

import pytest
from django.core.files.base import ContentFile
from rest_framework.test import APIClient

from styletransfer import selectors, services
from styletransfer.models import Rendition
from tests.styletransfer.helpers import make_style, product_png
from tests.testshop.models import Page, Picture

pytestmark = pytest.mark.django_db


def cms_page(slug: str, *, live: bool) -> Page:
    picture = Picture(title=slug)
    picture.file.save(f"{slug}.png", ContentFile(product_png()), save=True)
    return Page.objects.create(slug=slug, title=slug.title(), hero=picture, live=live)


@pytest.fixture
def cms_shop(settings):
    settings.STYLETRANSFER = {
        "PRODUCT_MODEL": "testshop.Page",
        "PRODUCT_IMAGE_FIELD": "hero",
        "LIVE_PRODUCTS": "tests.testshop.models.live_pages",
    }
    settings.STYLEREC = {"PRODUCT_MODEL": "testshop.Page"}
    return [cms_page("lamp", live=True), cms_page("draft-chair", live=False)]


def test_an_unpublished_product_never_leaks_through_the_api(cms_shop):
    client = APIClient()
    listed = client.get("/api/v1/products/").json()["results"]
    assert [product["id"] for product in listed] == ["lamp"]
    assert client.get("/api/v1/products/lamp/").status_code == 200
    assert client.get("/api/v1/products/draft-chair/").status_code == 404


def test_a_catalogue_render_and_its_coverage_are_of_live_products(cms_shop):
    style = make_style(active=True)
    Rendition.objects.all().delete()
    assert services.style_render_catalog(style=style) is None
    rendered = set(Rendition.objects.values_list("source_name", flat=True))
    assert rendered == {cms_shop[0].hero.file.name}
    assert selectors.style_coverage([style])[style.pk]["products"] == 1


def test_an_unimportable_live_products_path_is_named_by_the_checks(cms_shop, settings):
    from django.core import checks

    settings.STYLETRANSFER = {**settings.STYLETRANSFER, "LIVE_PRODUCTS": "shop.nowhere.live"}
    found = {m.id: m.msg for m in checks.run_checks() if m.id == "styletransfer.E008"}
    assert "cannot be imported" in found["styletransfer.E008"]


def test_the_default_api_product_carries_its_page_and_price(shop, settings):
    settings.STYLEREC = {"PRODUCT_MODEL": "storefront.Product", "PRODUCT_PRICE_FIELD": "price"}
    product = shop["products"][0]
    product.refresh_from_db()  # the price as stored (a Decimal with its places)
    listed = APIClient().get("/api/v1/products/").json()["results"]
    first = next(item for item in listed if item["id"] == str(product.pk))
    assert first["url"] == f"http://testserver{product.get_absolute_url()}"
    assert first["price"] == str(product.price)
    assert set(first) >= {"id", "name", "url", "price", "image", "personalized"}


def test_originals_are_served_through_the_shops_image_pipeline(shop, settings, client):
    settings.STYLETRANSFER = {
        **settings.STYLETRANSFER,
        "ORIGINAL_URL": "tests.testshop.models.thumbnail_url",
    }
    product = shop["products"][0]
    crawler = "Mozilla/5.0 (compatible; Googlebot/2.1)"  # sees the originals only
    page = client.get("/", HTTP_USER_AGENT=crawler).content.decode()
    assert f'src="/thumbnails/400x400/{product.image.name}"' in page
    listed = APIClient().get("/api/v1/products/").json()["results"]
    first = next(item for item in listed if str(item["id"]) == str(product.pk))
    assert first["image"] == f"http://testserver/thumbnails/400x400/{product.image.name}"
