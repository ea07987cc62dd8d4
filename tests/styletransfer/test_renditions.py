"""Styles, source images and renditions in the database, rendered in this process."""

import io
import threading
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from PIL import Image

from storefront.models import Category, Product
from styletransfer import rendering, selectors, services
from styletransfer.models import Rendition, SourceImage, Style
from tests.testshop.models import Item, ItemPhoto

from .helpers import make_style, painting_jpeg, product_png

pytestmark = pytest.mark.django_db


def make_product(slug="disc", png=None) -> Product:
    category, _ = Category.objects.get_or_create(slug="things", defaults={"name": "Things"})
    product = Product(slug=slug, name=slug.title(), price=10, category=category)
    product.image.save(f"{slug}.png", ContentFile(png or product_png()), save=True)
    return product


def test_version_changes_only_with_pixels():
    style = make_style()
    assert style.version == 1
    style.name = "Renamed"
    services.style_save(style=style)
    assert style.version == 1, "a new name changes no pixel"
    style.strength = 30
    services.style_save(style=style)
    assert style.version == 2
    style.reference_image.save("other.jpg", ContentFile(painting_jpeg(seed=3)), save=False)
    services.style_save(style=style)
    assert style.version == 3


def test_invalid_parameters_are_refused():
    from django.core.exceptions import ValidationError

    style = make_style()
    style.strength = 150
    with pytest.raises(ValidationError):
        services.style_save(style=style)


def test_saving_a_product_registers_its_image_hash(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        product = make_product()
    source = SourceImage.objects.get(object_id=str(product.pk))
    with product.image.open("rb") as fh:
        assert source.content_hash == __import__("hashlib").sha256(fh.read()).hexdigest()


def test_render_in_process_stores_the_file_once(django_capture_on_commit_callbacks):
    product = make_product()
    style = make_style()
    source = services.source_images_of([product])[product.pk]
    rendition = services.rendition_request(source=source, style=style)
    assert rendition.status == "pending"
    done = rendering.rendition_render(rendition_id=rendition.pk)
    assert done.status == "ready", done.error
    image = Image.open(default_storage.open(done.file.name))
    assert image.format == "JPEG" and max(image.size) == style.size
    assert done.device == "cpu" and done.render_seconds > 0
    assert rendering.rendition_render(rendition_id=rendition.pk) is None, "never renders twice"
    again = services.rendition_request(source=source, style=style)
    assert again.pk == rendition.pk
    assert Rendition.objects.count() == 1
    assert not list(Path(default_storage.path(done.file.name)).parent.glob("*.partial"))


def test_ready_renditions_follow_the_current_version(django_capture_on_commit_callbacks):
    product = make_product()
    style = make_style()
    source = services.source_images_of([product])[product.pk]
    old = services.rendition_request(source=source, style=style)
    rendering.rendition_render(rendition_id=old.pk)
    old.refresh_from_db()
    old_path = Path(default_storage.path(old.file.name))
    assert selectors.ready_renditions_for([source], [style])
    style.strength = 20
    with django_capture_on_commit_callbacks(execute=True):
        services.style_save(style=style)
    assert selectors.ready_renditions_for([source], [style]) == {}, "no stale pixels shown"
    assert not Rendition.objects.filter(pk=old.pk).exists()
    assert not old_path.exists(), "superseded files are deleted after commit"


def test_concurrent_requests_make_one_row(transactional_db):
    if connection.vendor != "postgresql":
        pytest.skip("needs a database with real concurrency")
    product = make_product()
    style = make_style()
    source = services.source_images_of([product])[product.pk]
    barrier = threading.Barrier(4)
    results = []

    def request():
        barrier.wait()
        results.append(services.rendition_request(source=source, style=style).pk)
        connection.close()

    threads = [threading.Thread(target=request) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1
    assert Rendition.objects.count() == 1


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b"", "empty"),
        (b"this is not an image at all", "not an image"),
        (product_png()[:200], "corrupt or truncated"),
    ],
)
def test_hostile_sources_fail_with_a_clear_error(payload, reason):
    product = make_product(png=product_png())
    # Replace the stored bytes behind the product's back, as a broken upload would.
    with open(default_storage.path(product.image.name), "wb") as fh:
        fh.write(payload)
    style = make_style()
    source = SourceImage.objects.create(
        content_type_id=selectors.ContentType.objects.get_for_model(Product).pk,
        object_id="hostile",
        name=product.image.name,
        content_hash="f" * 64,
    )
    rendition = services.rendition_request(source=source, style=style)
    done = rendering.rendition_render(rendition_id=rendition.pk)
    assert done.status == "failed"
    assert reason in done.error
    assert not done.file


def test_decompression_bomb_is_refused():
    bomb = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(bomb, "PNG")  # 100 Mpx in a few kB
    product = make_product(png=bomb.getvalue())
    style = make_style()
    source = services.source_images_of([product])[product.pk]
    done = rendering.rendition_render(
        rendition_id=services.rendition_request(source=source, style=style).pk
    )
    assert done.status == "failed"
    assert "pixels" in done.error or "bomb" in done.error


def test_a_differently_shaped_shop(settings, django_capture_on_commit_callbacks):
    """String primary keys and photos in a related table, named through PRODUCT_IMAGES."""
    settings.STYLETRANSFER = {
        "PRODUCT_MODEL": "testshop.Item",
        "PRODUCT_IMAGES": "tests.testshop.models.item_photos",
    }
    item = Item.objects.create(sku="SKU-1", title="Lamp")
    for rank, color in enumerate([(30, 90, 200), (10, 160, 60)]):
        photo = ItemPhoto(item=item, rank=rank)
        photo.picture.save(f"lamp{rank}.png", ContentFile(product_png(color)), save=True)
    style = make_style(active=True)
    sources = services.source_images_sync(product=item)
    assert [s.position for s in sources] == [0, 1]
    assert sources[0].object_id == "SKU-1"
    primary = services.source_images_of([item])[item.pk]
    rendition = services.rendition_request(source=primary, style=style)
    assert rendering.rendition_render(rendition_id=rendition.pk).status == "ready"
    assert selectors.catalog_size() == 1


def test_style_coverage_counts_current_renditions():
    products = [make_product(f"p{i}", product_png((40 * i, 90, 90))) for i in range(3)]
    style = make_style(active=True)
    sources = services.source_images_of(products)
    first = services.rendition_request(source=sources[products[0].pk], style=style)
    rendering.rendition_render(rendition_id=first.pk)
    coverage = selectors.style_coverage([style])[style.pk]
    assert coverage["ready"] == 1 and coverage["products"] == 3


def test_style_admin_for_staff_only(client, django_user_model):
    style = make_style()
    make_product()
    urls = [
        "/admin/styletransfer/style/",
        f"/admin/styletransfer/style/{style.pk}/change/",
        f"/admin/styletransfer/style/{style.pk}/preview/",
        "/admin/styletransfer/rendition/",
        "/admin/styletransfer/rendition/?status__exact=failed",
    ]
    django_user_model.objects.create_user("shopper", password="pw-123456789")
    client.login(username="shopper", password="pw-123456789")
    for url in urls:
        assert client.get(url).status_code == 302, url
    django_user_model.objects.create_superuser("boss", "b@example.com", "pw-123456789")
    client.login(username="boss", password="pw-123456789")
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
    listing = client.get(urls[0]).content.decode()
    assert "0/1 ready (0%)" in listing
    preview = client.get(urls[2]).content.decode()
    assert "Preview of" in preview and Rendition.objects.filter(style=style).count() == 1


def test_admin_actions_activate_and_retry(
    client, django_user_model, django_capture_on_commit_callbacks
):
    style = make_style()
    django_user_model.objects.create_superuser("boss", "b@example.com", "pw-123456789")
    client.login(username="boss", password="pw-123456789")
    response = client.post(
        "/admin/styletransfer/style/",
        {"action": "activate", "_selected_action": [style.pk]},
    )
    assert response.status_code == 302
    assert Style.objects.get(pk=style.pk).active
    product = make_product()
    source = services.source_images_of([product])[product.pk]
    rendition = services.rendition_request(source=source, style=style)
    Rendition.objects.filter(pk=rendition.pk).update(status="failed", error="boom")
    client.post(
        "/admin/styletransfer/rendition/",
        {"action": "retry", "_selected_action": [rendition.pk]},
    )
    rendition.refresh_from_db()
    assert rendition.status == "pending" and rendition.error == ""


def test_a_changed_product_photo_is_rendered_again(django_capture_on_commit_callbacks):
    style = make_style(active=True)
    with django_capture_on_commit_callbacks(execute=True):
        product = make_product(png=product_png((10, 200, 10)))
    first = SourceImage.objects.get(object_id=str(product.pk)).content_hash
    assert Rendition.objects.filter(style=style, source_hash=first).exists()
    with django_capture_on_commit_callbacks(execute=True):
        product.image.save("new.png", ContentFile(product_png((250, 250, 0))), save=True)
    second = SourceImage.objects.get(object_id=str(product.pk)).content_hash
    assert second != first
    assert Rendition.objects.filter(style=style, source_hash=second).exists()


def test_a_new_decoder_gives_feedforward_styles_new_rendition_keys(monkeypatch):
    from styletransfer.engines import params

    style = make_style(engine="feedforward")
    monkeypatch.setattr(params, "DECODER_SHA256", "0" * 64)
    services.style_save(style=style)
    assert style.version == 2, "renditions of the old decoder are superseded"


def test_a_per_process_cache_is_flagged_by_the_system_checks(settings):
    from django.core import checks

    def warnings() -> list[str]:
        return [m.id for m in checks.run_checks() if m.id == "styletransfer.W001"]

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert warnings() == ["styletransfer.W001"]
    settings.CACHES = {"default": {"BACKEND": "storefront.redis_cache.SharedClientRedisCache"}}
    assert warnings() == []
