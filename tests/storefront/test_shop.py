"""The demo shop: seeding, pages, admin, and the catalogue as a browser shows it."""

import io

import pytest
from django.core.management import call_command
from django.urls import reverse
from PIL import Image

from storefront.models import Category, Product

pytestmark = pytest.mark.django_db


def test_seed_creates_products_with_readable_images(seeded):
    assert Product.objects.count() >= 40
    for product in Product.objects.all():
        with product.image.open("rb") as fh:
            image = Image.open(io.BytesIO(fh.read()))
            image.load()
        assert max(image.size) <= 800
        assert image.mode == "RGBA", "cut-outs keep their transparency"


def test_seed_is_idempotent(seeded):
    before = {p.slug: p.image.name for p in Product.objects.all()}
    call_command("seed_demo", stdout=io.StringIO())
    after = {p.slug: p.image.name for p in Product.objects.all()}
    assert before == after
    assert Category.objects.count() == len(set(Product.objects.values_list("category", flat=True)))


def test_catalogue_paginates_and_shows_images(client, seeded):
    first = client.get("/")
    assert first.status_code == 200
    assert first.context["page"].paginator.count == Product.objects.count()
    html = first.content.decode()
    assert html.count("<img") >= 24
    second = client.get("/?page=2")
    assert second.status_code == 200
    assert second.context["page"].number == 2
    shown = {p.pk for p in first.context["page"]} | {p.pk for p in second.context["page"]}
    assert len(shown) == Product.objects.count()


def test_category_and_product_pages(client, seeded):
    category = Category.objects.get(slug="shoes")
    response = client.get(category.get_absolute_url())
    assert response.status_code == 200
    assert {p.category_id for p in response.context["page"]} == {category.pk}
    product = category.products.first()
    response = client.get(product.get_absolute_url())
    assert response.status_code == 200
    assert product.name in response.content.decode()
    assert product.image.url in response.content.decode()
    assert client.get(product.image.url).status_code == 200


def test_unknown_pages_answer_404(client, seeded):
    assert client.get("/p/no-such-product/").status_code == 404
    assert client.get("/c/no-such-category/").status_code == 404
    assert client.get("/?page=999").status_code == 200, "out-of-range pages show the last page"


def test_admin_login_and_product_admin(client, seeded, django_user_model):
    django_user_model.objects.create_superuser("boss", "boss@example.com", "a-long-password-1")
    response = client.post(
        reverse("admin:login"),
        {"username": "boss", "password": "a-long-password-1", "next": "/admin/"},
    )
    assert response.status_code == 302
    listing = client.get(reverse("admin:storefront_product_changelist"))
    assert listing.status_code == 200
    assert listing.content.decode().count('<img src="/media/products/') >= 40


def test_admin_refuses_anonymous_and_non_staff(client, seeded, django_user_model):
    url = reverse("admin:storefront_product_changelist")
    assert client.get(url).status_code == 302
    django_user_model.objects.create_user("shopper", password="a-long-password-1")
    client.login(username="shopper", password="a-long-password-1")
    assert client.get(url).status_code == 302


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_catalogue_in_a_real_browser(live_server, page):
    call_command("seed_demo", stdout=io.StringIO())
    page.goto(live_server.url + "/")
    images = page.locator(".grid img")
    assert images.count() >= 20
    # Lazy images load as they scroll into view: scroll through the page first.
    for index in range(images.count()):
        images.nth(index).scroll_into_view_if_needed()
    page.wait_for_function(
        "[...document.querySelectorAll('.grid img')].every(i => i.complete && i.naturalWidth > 0)",
        timeout=20_000,
    )
    loaded = page.evaluate(
        "[...document.querySelectorAll('.grid img')].filter(i => i.naturalWidth > 0).length"
    )
    assert loaded >= 20
    assert page.console_errors == []
