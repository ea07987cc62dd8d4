"""IMAGE_FORMATS at every entry: staff uploads (API, admin), product images, style references."""

import pytest
from django.core import checks
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from storefront.models import Category, Product
from styletransfer import rendering, services
from styletransfer.engines import InputImageError
from styletransfer.models import Rendition, Style
from tests.styletransfer.engines.helpers import (
    FOREIGN,
    ODD,
    fits_bytes,
    refusal_is_clear,
    spy_on_other_plugins,
)

from .helpers import make_style, painting_jpeg

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore:IM image format is deprecated:DeprecationWarning"),
]
STYLES = "/api/v1/staff/styles/"
WITH_TIFF = ["JPEG", "PNG", "WEBP", "GIF", "TIFF"]


@pytest.fixture
def staff_api(django_user_model) -> APIClient:
    user = django_user_model.objects.create_superuser("boss", password="pw-1234567")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def staff_admin(client, django_user_model):
    django_user_model.objects.create_superuser("boss", "b@example.com", "pw-123456789")
    client.login(username="boss", password="pw-123456789")
    return client


@pytest.fixture
def other_plugins_reached(monkeypatch) -> list[str]:
    return spy_on_other_plugins(monkeypatch)


@pytest.fixture
def tiff_allowed(settings):
    settings.STYLETRANSFER = {**settings.STYLETRANSFER, "IMAGE_FORMATS": WITH_TIFF}


def api_upload(client: APIClient, name: str, data: bytes, slug: str = "fresh"):
    upload = SimpleUploadedFile(name, data, content_type="image/png")
    body = {"name": "Fresh", "slug": slug, "reference_image": upload, "engine": "color"}
    return client.post(STYLES, body, format="multipart")


def admin_upload(client, name: str, data: bytes):
    body = {
        "name": "Fresh",
        "slug": "fresh",
        "description": "",
        "reference_image": SimpleUploadedFile(name, data, content_type="image/png"),
        "engine": "color",
        "mode": "whole",
        "strength": 70,
        "size": 96,
        "sharpen": 0,
    }
    return client.post("/admin/styletransfer/style/add/", body)


def product_with_image(name: str, data: bytes, slug: str = "disc") -> Product:
    category, _ = Category.objects.get_or_create(slug="things", defaults={"name": "Things"})
    product = Product(slug=slug, name=slug.title(), price=10, category=category)
    product.image.save(name, ContentFile(data), save=True)
    return product


def render_product(product: Product, style: Style) -> Rendition:
    source = services.source_images_of([product])[product.pk]
    rendition = services.rendition_request(source=source, style=style)
    return rendering.rendition_render(rendition_id=rendition.pk)


@pytest.mark.parametrize("fmt", sorted(FOREIGN))
def test_the_staff_api_refuses_each_with_a_field_error(fmt, staff_api, other_plugins_reached):
    response = api_upload(staff_api, *FOREIGN[fmt])
    assert response.status_code == 400
    [message] = response.json()["reference_image"]
    assert refusal_is_clear(message, fmt), message
    assert other_plugins_reached == []
    assert not Style.objects.exists()


@pytest.mark.parametrize("name", sorted(ODD))
def test_the_staff_api_takes_odd_web_files(name, staff_api):
    response = api_upload(staff_api, *ODD[name])
    assert response.status_code == 201, response.json()
    assert Style.objects.get().reference_hash


def test_the_staff_api_takes_an_opted_in_format(staff_api, tiff_allowed):
    assert api_upload(staff_api, *FOREIGN["TIFF"]).status_code == 201


@pytest.mark.parametrize("fmt", sorted(FOREIGN))
def test_the_admin_form_refuses_each(fmt, staff_admin, other_plugins_reached):
    response = admin_upload(staff_admin, *FOREIGN[fmt])
    assert response.status_code == 200  # the form again, with its error
    [message] = response.context["adminform"].form.errors["reference_image"]
    assert refusal_is_clear(message, fmt), message
    assert other_plugins_reached == []
    assert not Style.objects.exists()


def test_the_admin_form_takes_a_web_image_and_an_opted_in_format(staff_admin, settings):
    assert admin_upload(staff_admin, "painting.jpg", painting_jpeg()).status_code == 302
    Style.objects.all().delete()
    assert admin_upload(staff_admin, *FOREIGN["TIFF"]).status_code == 200
    settings.STYLETRANSFER = {**settings.STYLETRANSFER, "IMAGE_FORMATS": WITH_TIFF}
    assert admin_upload(staff_admin, *FOREIGN["TIFF"]).status_code == 302
    assert Style.objects.get().reference_image.name.startswith("styles/photo")


@pytest.mark.parametrize("fmt", sorted(FOREIGN))
def test_a_foreign_product_image_fails_its_rendition_with_the_reason(fmt, other_plugins_reached):
    product = product_with_image(*FOREIGN[fmt])
    done = render_product(product, make_style(mode="whole"))
    assert done.status == "failed" and not done.file
    assert refusal_is_clear(done.error, fmt), done.error
    assert other_plugins_reached == []


@pytest.mark.parametrize("name", sorted(ODD))
def test_odd_web_product_images_render(name):
    product = product_with_image(*ODD[name])
    done = render_product(product, make_style(mode="whole"))
    assert done.status == "ready", done.error
    if name == "EXIF-rotated JPEG":
        assert done.height > done.width  # 40 x 20 shot, shown upright


def test_an_opted_in_product_format_renders(tiff_allowed):
    product = product_with_image(*FOREIGN["TIFF"])
    assert render_product(product, make_style(mode="whole")).status == "ready"


def test_a_foreign_reference_stored_behind_the_forms_is_never_decoded(other_plugins_reached):
    style = make_style(mode="whole")
    style.reference_image.save("painting.jpg", ContentFile(fits_bytes()), save=False)
    services.style_save(style=style)
    product = product_with_image(*ODD["CMYK JPEG"])
    done = render_product(product, style)
    assert done.status == "failed" and "FITS format" in done.error
    with pytest.raises(InputImageError, match="FITS format"):
        rendering.style_compute_embedding(style=style)
    assert other_plugins_reached == []


@pytest.mark.parametrize(
    "formats", [["JPEG", "NOPE"], "JPEG", [], ["PNG", 5]], ids=["unknown", "str", "empty", "int"]
)
def test_an_unknown_image_format_setting_fails_the_checks(settings, formats):
    settings.STYLETRANSFER = {**settings.STYLETRANSFER, "IMAGE_FORMATS": formats}
    assert "styletransfer.E005" in {message.id for message in checks.run_checks()}


def test_the_default_and_an_opted_in_setting_pass_the_checks(settings):
    assert "styletransfer.E005" not in {message.id for message in checks.run_checks()}
    settings.STYLETRANSFER = {**settings.STYLETRANSFER, "IMAGE_FORMATS": ["jpeg", "TIFF"]}
    assert "styletransfer.E005" not in {message.id for message in checks.run_checks()}
