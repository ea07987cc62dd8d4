"""Photos changed where no signal is sent (a bulk update, a file replaced in storage) are seen
by the sweep, which hashes a batch of live products' photos again on every run."""

import pytest
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from storefront.models import Product
from styletransfer import selectors, services, tasks
from styletransfer.models import Rendition, SourceImage
from tests.stylerec import helpers

from .helpers import product_png

fresh_cache = helpers.fresh_cache
pytestmark = pytest.mark.django_db


def hashes() -> dict[str, str]:
    return dict(SourceImage.objects.values_list("object_id", "content_hash"))


def test_a_bulk_update_and_a_replaced_file_are_rendered_again(settings):
    settings.STYLETRANSFER = {**settings.STYLETRANSFER, "PHOTO_SWEEP_BATCH": 4}
    shop = helpers.make_shop()
    first, second = shop["products"][:2]
    before = hashes()
    # A bulk update of the image field: no save, no signal.
    name = default_storage.save("bulk/new.png", ContentFile(product_png((10, 200, 10))))
    Product.objects.filter(pk=first.pk).update(image=name)
    # The second product's file overwritten in place: the same name, other pixels.
    with default_storage.open(second.image.name, "wb") as fh:
        fh.write(product_png((250, 250, 0)))
    assert hashes() == before, "nothing noticed yet"

    assert services.photos_sweep() == 2, "the first four products: two changed"
    after = hashes()
    assert after[str(first.pk)] != before[str(first.pk)]
    assert after[str(second.pk)] != before[str(second.pk)]
    assert {k: v for k, v in after.items() if k not in {str(first.pk), str(second.pk)}} == {
        k: v for k, v in before.items() if k not in {str(first.pk), str(second.pk)}
    }
    pending = Rendition.objects.filter(source_hash=after[str(first.pk)], status="pending")
    assert pending.count() == 3, "every active style renders the new photo"
    coverage = selectors.style_coverage(shop["styles"])[shop["styles"][0].pk]
    assert coverage["ready"] == 4 and coverage["pending"] == 2, "current photos only"
    assert coverage["products"] == 6


def test_the_sweep_goes_round_the_catalogue_and_starts_again(settings):
    settings.STYLETRANSFER = {**settings.STYLETRANSFER, "PHOTO_SWEEP_BATCH": 4}
    products = helpers.make_shop()["products"]
    last = products[-1]
    with default_storage.open(last.image.name, "wb") as fh:
        fh.write(product_png((0, 0, 250)))
    assert services.photos_sweep() == 0, "products 1-4 unchanged"
    assert cache.get(services.PHOTO_SWEEP_KEY) == products[3].pk
    assert tasks.sweep()["photos_changed"] == 1, "products 5-6: the last one changed"
    assert cache.get(services.PHOTO_SWEEP_KEY) is None, "round again from the start"
    cache.clear()  # a cache that lost the position starts from the beginning too
    assert services.photos_sweep() == 0


def test_no_sweep_batch_reads_no_photo(settings, django_assert_num_queries):
    settings.STYLETRANSFER = {**settings.STYLETRANSFER, "PHOTO_SWEEP_BATCH": 0}
    with django_assert_num_queries(0):
        assert services.photos_sweep() == 0
