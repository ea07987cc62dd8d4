"""Where a shop keeps its product photos: a file field, a ForeignKey to an image model, a
related table; each works, or `manage.py check` refuses it in one line before any render."""

import io

import pytest
from celery import Celery, current_app
from django.core import checks
from django.core.files.base import ContentFile
from PIL import Image

from styletransfer import rendering, selectors, services
from styletransfer.conf import conf
from styletransfer.models import Rendition, SourceImage
from styletransfer.shown import product_images
from tests.testshop.models import Item, ItemPhoto, Page, Picture

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


@pytest.fixture
def related_table_shop(settings):
    settings.STYLETRANSFER = {
        "PRODUCT_MODEL": "testshop.Item",
        "PRODUCT_IMAGES": "tests.testshop.models.item_photos",
        "PRODUCT_IMAGE_MODEL": "testshop.ItemPhoto",
    }
    settings.STYLEREC = {"PRODUCT_MODEL": "testshop.Item"}


def add_photo(item, rank: int, color) -> ItemPhoto:
    photo = ItemPhoto(item=item, rank=rank)
    photo.picture.save(f"{item.sku}-{rank}.png", ContentFile(product_png(color)), save=True)
    return photo


def test_a_changed_photo_in_the_related_table_is_rendered_again(
    related_table_shop, django_capture_on_commit_callbacks
):
    assert messages("styletransfer.E") == {}
    style = make_style(active=True)
    item = Item.objects.create(sku="LAMP", title="Lamp")
    with django_capture_on_commit_callbacks(execute=True):
        photo = add_photo(item, 0, (30, 90, 200))
    old = SourceImage.objects.get(object_id="LAMP", position=0).content_hash
    old_rendition = Rendition.objects.get(style=style, source_hash=old)
    rendering.rendition_render(rendition_id=old_rendition.pk)

    with django_capture_on_commit_callbacks(execute=True):
        photo.picture.save("lamp-new.png", ContentFile(product_png((250, 200, 0))), save=True)
    new = SourceImage.objects.get(object_id="LAMP", position=0).content_hash
    assert new != old
    assert Rendition.objects.filter(style=style, source_hash=new).exists(), "rendered anew"
    shown = product_images([item], [style])[item.pk]
    assert shown.source_hash == new and style.pk not in shown.ready, "never the old photo's"
    assert selectors.style_coverage([style])[style.pk]["ready"] == 0

    with django_capture_on_commit_callbacks(execute=True):
        photo.delete()
    assert not SourceImage.objects.filter(object_id="LAMP").exists()


def test_coverage_counts_each_products_current_photo_once(related_table_shop):
    style = make_style(active=True)
    for sku, color in (("A", (200, 0, 0)), ("B", (0, 200, 0))):
        item = Item.objects.create(sku=sku, title=sku)
        add_photo(item, 0, color)
        add_photo(item, 1, tuple(c // 2 for c in color))
        for source in services.source_images_sync(product=item):
            rendition = services.rendition_request(source=source, style=style)
            rendering.rendition_render(rendition_id=rendition.pk)
    assert Rendition.objects.filter(status="ready").count() == 4, "every photo is rendered"
    coverage = selectors.style_coverage([style])[style.pk]
    assert (coverage["ready"], coverage["products"]) == (2, 2)


def test_an_image_model_without_a_link_to_the_product_is_refused(related_table_shop, settings):
    settings.STYLETRANSFER = {**settings.STYLETRANSFER, "PRODUCT_IMAGE_MODEL": "testshop.Picture"}
    message = messages("styletransfer.E007")["styletransfer.E007"]
    assert "'testshop.Picture' is not a model with a ForeignKey to Item" in message
