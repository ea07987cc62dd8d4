"""Where a shop keeps its product photos: a file field, a ForeignKey to an image model, a
related table; each works, or `manage.py check` refuses it in one line before any render."""

import io

import pytest
from celery import Celery, current_app
from django.core import checks
from django.core.files.base import ContentFile
from PIL import Image

from styletransfer import rendering, services
from styletransfer.conf import conf
from tests.testshop.models import Page, Picture

from .helpers import make_style, product_png

pytestmark = pytest.mark.django_db


def messages(prefix: str) -> dict[str, str]:
    return {m.id: m.msg for m in checks.run_checks() if m.id and m.id.startswith(prefix)}


def cms_page(slug="lamp", color=(30, 90, 200)) -> Page:
    picture = Picture(title=slug)
    picture.file.save(f"{slug}.png", ContentFile(product_png(color)), save=True)
    return Page.objects.create(slug=slug, title=slug.title(), hero=picture)


@pytest.fixture
def cms_shop(settings):
    settings.STYLETRANSFER = {"PRODUCT_MODEL": "testshop.Page", "PRODUCT_IMAGE_FIELD": "hero"}
    settings.STYLEREC = {"PRODUCT_MODEL": "testshop.Page"}


def test_a_foreign_key_to_an_image_model_is_followed_to_its_file(cms_shop):
    assert messages("styletransfer.E") == {}
    page = cms_page()
    assert conf.product_images(page) == [page.hero.file]
    source = services.source_images_of([page])[page.pk]
    rendition = services.rendition_request(source=source, style=make_style(active=True))
    assert rendering.rendition_render(rendition_id=rendition.pk).status == "ready"


def test_a_page_without_its_picture_has_no_image(cms_shop):
    page = Page.objects.create(slug="draft", title="Draft")
    assert conf.product_images(page) == []
    assert services.source_images_of([page]) == {}


def test_a_foreign_key_to_a_model_without_an_image_is_refused(settings):
    settings.STYLETRANSFER = {
        "PRODUCT_MODEL": "storefront.Product",
        "PRODUCT_IMAGE_FIELD": "category",
    }
    (message,) = messages("styletransfer.E").values()
    assert "Product.category is a ForeignKey to Category, which has 0 file fields" in message
    assert "\n" not in message


def test_a_field_that_is_no_image_is_refused(settings):
    settings.STYLETRANSFER = {"PRODUCT_MODEL": "storefront.Product", "PRODUCT_IMAGE_FIELD": "name"}
    assert "Product.name is a CharField" in messages("styletransfer.E006")["styletransfer.E006"]


def test_a_missing_field_is_refused(settings):
    settings.STYLETRANSFER = {"PRODUCT_MODEL": "storefront.Product", "PRODUCT_IMAGE_FIELD": "photo"}
    assert messages("styletransfer.E002") == {"styletransfer.E002": "Product has no field 'photo'"}


@pytest.fixture
def no_broker(monkeypatch):
    """A shop whose Celery app was never configured: a bare app is the current one."""
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)  # Celery reads it before its conf
    shop_app = current_app._get_current_object()
    bare = Celery("bare", set_as_current=True)
    yield bare
    shop_app.set_current()


def test_a_missing_broker_is_named_in_one_line(no_broker):
    message = messages("styletransfer.W003")["styletransfer.W003"]
    assert message.startswith("No Celery broker") and "\n" not in message


def test_the_shops_broker_passes(settings):
    assert messages("styletransfer.W003") == {}


def test_eager_tasks_need_no_broker(no_broker):
    no_broker.conf.task_always_eager = True
    assert messages("styletransfer.W003") == {}


def lifestyle_jpeg(size=96) -> bytes:
    """An ordinary photo: no transparency, no plain background anywhere near its border."""
    buffer = io.BytesIO()
    Image.effect_noise((size, size), 80).convert("RGB").save(buffer, "JPEG")
    return buffer.getvalue()


def test_product_mode_renders_an_ordinary_photo_whole(cms_shop):
    picture = Picture(title="street")
    picture.file.save("street.jpg", ContentFile(lifestyle_jpeg()), save=True)
    page = Page.objects.create(slug="street", title="Street", hero=picture)
    style = make_style(active=True)
    assert style.mode == "product"
    source = services.source_images_of([page])[page.pk]
    rendition = services.rendition_request(source=source, style=style)
    done = rendering.rendition_render(rendition_id=rendition.pk)
    assert (done.status, done.error) == ("ready", "")


def test_the_admins_new_style_starts_on_the_catalogue_engine(admin_client):
    page = admin_client.get("/admin/styletransfer/style/add/").content.decode()
    assert '<option value="feedforward" selected>' in page
