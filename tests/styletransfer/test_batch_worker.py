"""Batched catalogue renders through the real Redis broker and a real `celery worker`."""

import signal
import time
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from storefront.models import Category, Product
from styletransfer import services
from styletransfer.models import Rendition

from . import test_render_worker
from .helpers import make_style, product_png
from .test_render_worker import FAST_RECOVERY, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
start_worker = test_render_worker.start_worker  # real workers with settings of their own


def catalogue(count: int, size: int = 96) -> list[Product]:
    category = Category.objects.create(name="Things", slug="things")
    made = []
    for number in range(count):
        product = Product(slug=f"p{number}", name=f"P{number}", price=1, category=category)
        colour = (40 + 37 * number % 200, 200 - 23 * number % 180, 90 + 11 * number % 150)
        product.image.save(f"p{number}.png", ContentFile(product_png(colour, size)), save=True)
        made.append(product)
    return made


def settled(style, count: int) -> bool:
    renditions = Rendition.objects.filter(style=style)
    return (
        renditions.count() == count
        and not renditions.filter(status__in=["pending", "rendering"]).exists()
    )


def files_under(style) -> list[Path]:
    folder = Path(default_storage.path(f"renditions/{style.slug}"))
    return [path for path in folder.rglob("*") if path.is_file()]


def test_activation_renders_in_batches_the_bytes_single_tasks_render(start_worker):
    worker = start_worker()
    products = catalogue(6)
    fields = {"engine": "feedforward", "size": 96}
    batched = make_style("batched", **fields)
    services.style_set_active(style=batched, active=True)  # the catalogue, in batches
    single = make_style("single", **fields)
    sources = services.source_images_of(products)
    for product in products:  # what a shopper's page asks for: one task per rendition
        services.rendition_request(source=sources[product.pk], style=single)
    wait_for(
        lambda: settled(batched, 6) and settled(single, 6),
        message=f"both styles\n{worker.log_tail()}",
    )
    log = worker.log_path.read_text()
    assert "styletransfer.render_batch" in log and "styletransfer.render_rendition" in log
    for product in products:
        key = {"source_hash": sources[product.pk].content_hash, "status": "ready"}
        many = Rendition.objects.get(style=batched, **key)
        one = Rendition.objects.get(style=single, **key)
        assert many.attempts == 1 and many.device == one.device == "cpu"
        with many.file.open("rb") as a, one.file.open("rb") as b:
            assert a.read() == b.read(), "a batch stores what a single render stores"


def test_a_corrupt_image_in_a_batch_fails_alone(start_worker):
    worker = start_worker()
    products = catalogue(5)
    with open(default_storage.path(products[2].image.name), "wb") as fh:
        fh.write(b"not an image")
    style = make_style("mixed", engine="feedforward", size=64)
    services.style_set_active(style=style, active=True)
    wait_for(lambda: settled(style, 5), message=f"the batch\n{worker.log_tail()}")
    failed = Rendition.objects.get(style=style, status="failed")
    assert failed.source_name == products[2].image.name
    assert "not an image" in failed.error
    assert Rendition.objects.filter(style=style, status="ready").count() == 4
    assert worker.process.poll() is None


def test_a_worker_killed_mid_batch_loses_nothing(start_worker):
    worker = start_worker(**FAST_RECOVERY, RENDER_BATCH_SIZE=8)
    catalogue(8, size=256)
    style = make_style("killed", engine="feedforward", size=512)
    services.style_set_active(style=style, active=True)
    renditions = Rendition.objects.filter(style=style)

    def part_done():
        return renditions.filter(status="ready").exists()

    wait_for(part_done, message=f"the first renders\n{worker.log_tail()}")
    worker.kill(signal.SIGKILL)
    killed = time.monotonic()
    held = list(renditions.filter(status="rendering").values_list("pk", flat=True))
    ready = set(renditions.filter(status="ready").values_list("pk", flat=True))
    assert held, "the batch was still rendering when its worker died"
    files = {p.name for p in files_under(style)}
    assert files >= {Path(r.file.name).name for r in renditions.filter(pk__in=ready)}
    # A file is written aside and renamed into place, and the row says ready a moment later:
    # a held rendition may have its file (or .partial) already; rendered again, it rewrites
    # those very names, so the catalogue below ends with one whole file per rendition.
    worker = start_worker(**FAST_RECOVERY, RENDER_BATCH_SIZE=8)
    wait_for(lambda: settled(style, 8), message=f"recovery\n{worker.log_tail()}")
    print(f"kill -> catalogue whole: {time.monotonic() - killed:.1f} s, {len(held)} held")
    assert renditions.count() == 8 and renditions.filter(status="ready").count() == 8
    for rendition in renditions:
        # The batch claimed all eight; the held ones were rendered once more, one task each.
        assert rendition.attempts == (1 if rendition.pk in ready else 2)
    names = sorted(p.name for p in files_under(style))
    assert names == sorted(Path(r.file.name).name for r in renditions), "one file each, whole"
