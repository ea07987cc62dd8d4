"""The styles API: what shoppers see, and style management for staff only."""

import io

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import cache
from PIL import Image
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from storefront.models import Category, Product
from styletransfer import rendering, services
from styletransfer.api.base import ScopedRateThrottle
from styletransfer.models import Rendition, Style

from .helpers import make_style, painting_jpeg, product_png

pytestmark = pytest.mark.django_db
STYLES = "/api/v1/staff/styles/"


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()  # throttle counters live in the cache
    yield
    cache.clear()


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def admin(django_user_model):
    return client_for(django_user_model.objects.create_superuser("boss", password="pw-1234567"))


@pytest.fixture
def catalogue():
    category = Category.objects.create(name="Things", slug="things")
    made = []
    for number in range(3):
        product = Product(slug=f"disc-{number}", name=f"Disc {number}", price=3, category=category)
        product.image.save(
            f"disc{number}.png", io.BytesIO(product_png((60 * number, 90, 30))), save=False
        )
        product.save()
        made.append(product)
    return made


def upload(name="painting.jpg", data=None):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data or painting_jpeg(seed=2), content_type="image/jpeg")


def test_shoppers_see_active_styles_only():
    make_style("shown", active=True)
    make_style("hidden", active=False)
    response = APIClient().get("/api/v1/styles/")
    assert response.status_code == 200
    body = response.json()
    assert [s["slug"] for s in body] == ["shown"]
    assert body[0]["reference_image"].startswith("http://testserver/media/styles/")


@pytest.mark.parametrize("method, path", [("get", STYLES), ("post", STYLES)])
def test_staff_endpoints_refuse_everyone_else(django_user_model, method, path):
    make_style("any")
    assert getattr(APIClient(), method)(path).status_code == 401
    shopper = client_for(django_user_model.objects.create_user("sam", password="pw-1234567"))
    response = getattr(shopper, method)(path)
    assert response.status_code == 403 and set(response.json()) == {"detail"}
    anonymous_shopper = APIClient()
    anonymous_shopper.credentials(HTTP_AUTHORIZATION="Shopper some-token")
    assert getattr(anonymous_shopper, method)(path).status_code == 401


def test_staff_need_the_admins_permissions_to_change_styles(django_user_model):
    style = make_style("kept")
    clerk = django_user_model.objects.create_user("clerk", password="pw-1234567", is_staff=True)
    client = client_for(clerk)
    assert client.get(STYLES).status_code == 200, "staff may look"
    assert client.post(f"{STYLES}{style.pk}/activate/").status_code == 403
    assert client.patch(f"{STYLES}{style.pk}/", {"strength": 10}).status_code == 403
    assert client.post(STYLES, {"name": "X", "slug": "x"}).status_code == 403
    clerk.user_permissions.add(Permission.objects.get(codename="change_style"))
    assert client.post(f"{STYLES}{style.pk}/activate/").status_code == 200
    assert client.post(STYLES, {"name": "X", "slug": "x"}).status_code == 403, "adding is apart"


def test_create_a_style_with_an_image_upload(admin, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = admin.post(
            STYLES,
            {
                "name": "Night",
                "slug": "night",
                "reference_image": upload(),
                "engine": "color",
                "strength": 40,
            },
            format="multipart",
        )
    assert response.status_code == 201, response.content
    body = response.json()
    style = Style.objects.get(slug="night")
    assert body["id"] == style.pk and body["version"] == 1 and body["active"] is False
    assert style.reference_hash and style.reference_image.name.startswith("styles/")
    assert body["embedding_ready"] is False and callbacks, "the embedding is requested"
    assert body["coverage"] == {"products": 0, "ready": 0, "pending": 0, "failed": 0}


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"reference_image": "not-a-file"}, "reference_image"),
        ({"engine": "nope"}, "engine"),
        ({"strength": 101}, "strength"),
        ({"size": 10}, "size"),
        ({"sharpen": "nan"}, "sharpen"),
        ({"slug": "taken"}, "slug"),
        ({"slug": "not a slug"}, "slug"),
    ],
)
def test_invalid_styles_get_field_errors(admin, fields, field):
    make_style("taken")
    data = {"name": "N", "slug": "fresh", "reference_image": upload(), **fields}
    if data["reference_image"] == "not-a-file":
        data["reference_image"] = upload("x.jpg", b"not an image at all")
    response = admin.post(STYLES, data, format="multipart")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not Style.objects.filter(slug="fresh").exists()


def test_edits_that_change_pixels_make_a_new_version(admin):
    style = make_style("edited")
    response = admin.patch(f"{STYLES}{style.pk}/", {"name": "Renamed"}, format="json")
    assert response.status_code == 200 and response.json()["version"] == 1
    response = admin.patch(f"{STYLES}{style.pk}/", {"strength": 20}, format="json")
    assert response.json()["version"] == 2
    response = admin.patch(
        f"{STYLES}{style.pk}/", {"reference_image": upload("new.jpg")}, format="multipart"
    )
    assert response.json()["version"] == 3
    assert admin.put(f"{STYLES}{style.pk}/", {}, format="json").status_code == 405


def test_a_multipart_body_without_fields_is_refused(admin):
    style = make_style("kept")
    response = admin.generic(
        "PATCH",
        f"{STYLES}{style.pk}/",
        b"--b\r\n[]--b--\r\n",
        content_type="multipart/form-data; boundary=b",
    )
    assert response.status_code == 400 and set(response.json()) == {"detail"}
    assert admin.patch(f"{STYLES}{style.pk}/", {}, format="json").status_code == 200


def test_activate_renders_the_catalogue_and_deactivate_stops(
    admin, catalogue, django_capture_on_commit_callbacks
):
    from storefront.celery import app

    app.control.purge()
    style = make_style("go")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin.post(f"{STYLES}{style.pk}/activate/")
    assert response.status_code == 200 and response.json()["active"] is True
    health = admin.get("/api/v1/staff/rendering/").json()
    assert health["queues"]["default"] >= 1, "the catalogue render was sent to the broker"
    assert health["catalog_size"] == 3
    response = admin.post(f"{STYLES}{style.pk}/deactivate/")
    assert response.json()["active"] is False
    assert not Style.objects.get(pk=style.pk).active
    app.control.purge()


def test_failures_are_listed_with_their_errors_and_can_be_retried(admin, catalogue):
    style = make_style("flaky", active=True)
    sources = services.source_images_of(catalogue)
    renditions = [services.rendition_request(source=s, style=style) for s in sources.values()]
    rendering.rendition_fail(rendition_id=renditions[0].pk, error="CUDA out of memory")
    rendering.rendition_render(rendition_id=renditions[1].pk)

    failed = admin.get("/api/v1/staff/renditions/", {"status": "failed"}).json()
    assert failed["count"] == 1
    assert failed["results"][0]["error"] == "CUDA out of memory"
    assert failed["results"][0]["style"] == "flaky"
    listed = admin.get(STYLES).json()["results"][0]
    assert listed["coverage"] == {"products": 3, "ready": 1, "pending": 1, "failed": 1}

    response = admin.post(f"/api/v1/staff/renditions/{renditions[0].pk}/retry/")
    assert response.status_code == 202 and response.json()["status"] == "pending"
    ready = admin.post(f"/api/v1/staff/renditions/{renditions[1].pk}/retry/")
    assert ready.status_code == 409 and set(ready.json()) == {"detail"}

    rendering.rendition_fail(rendition_id=renditions[2].pk, error="bad source")
    response = admin.post(f"{STYLES}{style.pk}/retry-failed/")
    assert response.status_code == 202 and response.json() == {"queued": 1}
    assert not Rendition.objects.filter(status="failed").exists()
    assert admin.get("/api/v1/staff/renditions/", {"status": "exploded"}).status_code == 400
    assert admin.get("/api/v1/staff/renditions/", {"style": "x"}).status_code == 400


def test_catch_up_requests_what_active_styles_miss(admin, catalogue):
    make_style("behind", active=True)
    response = admin.post(f"{STYLES}catch-up/")
    assert response.status_code == 202 and response.json() == {"styles_behind": 1}


@pytest.mark.parametrize("path", [f"{STYLES}abc/", f"{STYLES}999999/", f"{STYLES}9/activate/"])
def test_missing_styles_are_404(admin, path):
    method = admin.post if path.endswith("activate/") else admin.get
    response = method(path)
    assert response.status_code == 404 and set(response.json()) == {"detail"}


def test_staff_scope_is_throttled(admin, monkeypatch):
    monkeypatch.setattr(
        ScopedRateThrottle,
        "THROTTLE_RATES",
        {**ScopedRateThrottle.THROTTLE_RATES, "staff": "3/min"},
    )
    codes = [admin.get(STYLES).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]


def test_uploads_that_are_too_large_are_refused(admin, settings):
    big = Image.effect_noise((2200, 2200), 90).convert("RGB")
    buffer = io.BytesIO()
    big.save(buffer, "PNG")
    assert buffer.tell() > 4 * 1024 * 1024
    from styletransfer.api import serializers as api_serializers

    limit = api_serializers.MAX_REFERENCE_BYTES
    api_serializers.MAX_REFERENCE_BYTES = 1024 * 1024
    try:
        response = admin.post(
            STYLES,
            {"name": "Big", "slug": "big", "reference_image": upload("big.png", buffer.getvalue())},
            format="multipart",
        )
    finally:
        api_serializers.MAX_REFERENCE_BYTES = limit
    assert response.status_code == 400 and "reference_image" in response.json()
