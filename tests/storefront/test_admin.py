"""The demo shop's product admin takes web images only, as the renders do."""

from django.core.files.uploadedfile import SimpleUploadedFile

from storefront.models import Category, Product
from tests.styletransfer.engines.helpers import fits_bytes
from tests.styletransfer.helpers import product_png


def upload(client, name: str, data: bytes):
    category = Category.objects.get_or_create(name="Cups", slug="cups")[0]
    return client.post(
        "/admin/storefront/product/add/",
        {
            "name": "Cup",
            "slug": "cup",
            "description": "",
            "price": "5.00",
            "category": category.pk,
            "image": SimpleUploadedFile(name, data, content_type="image/png"),
        },
    )


def test_a_product_photo_in_a_format_no_shop_serves_is_refused(admin_client):
    response = upload(admin_client, "photo.png", fits_bytes())
    assert response.status_code == 200  # the form again, with its error
    assert "FITS" in response.content.decode()
    assert not Product.objects.exists()


def test_a_web_photo_is_taken(admin_client):
    response = upload(admin_client, "photo.png", product_png((200, 40, 40)))
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Product.objects.get().image.name.startswith("products/")
