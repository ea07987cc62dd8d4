"""Renders through the real Redis broker and a real `celery worker` process."""

import io
import signal
import time
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command

from storefront.models import Category, Product
from styletransfer import selectors, services
from styletransfer.models import Rendition, Style

from .helpers import make_style, product_png

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def wait_for(condition, timeout=120, interval=0.3, message="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {message}")


def test_activating_a_style_renders_the_whole_catalogue(celery_worker):
    call_command("seed_demo", stdout=io.StringIO())
    Style.objects.update(active=False)
    style = make_style("worker-style", engine="color")
    services.style_set_active(style=style, active=True)
    total = Product.objects.count()

    def all_ready():
        return selectors.style_coverage([style])[style.pk]["ready"] >= total

    wait_for(all_ready, timeout=300, message=f"{total} renditions\n{celery_worker.log_tail()}")
    ready = Rendition.objects.filter(style=style, status="ready")
    assert ready.count() == total
    assert all(r.attempts == 1 for r in ready), "each rendition rendered exactly once"
    assert all(default_storage.exists(r.file.name) for r in ready)
    style.refresh_from_db()
    assert style.embedding and len(style.embedding) > 10, "the worker computed the embedding"


def test_two_concurrent_requests_render_once(celery_worker):
    category = Category.objects.create(name="Things", slug="things")
    product = Product(slug="cup", name="Cup", price=5, category=category)
    product.image.save("cup.png", ContentFile(product_png()), save=True)
    style = make_style("twice", engine="color")
    source = services.source_images_of([product])[product.pk]
    first = services.rendition_request(source=source, style=style)
    second = services.rendition_request(source=source, style=style)
    assert first.pk == second.pk
    wait_for(lambda: Rendition.objects.get(pk=first.pk).status == "ready", message="render")
    time.sleep(1)  # a duplicate message, had one been sent, would be handled by now
    assert Rendition.objects.get(pk=first.pk).attempts == 1


def test_a_worker_killed_mid_render_leaves_no_partial_file(celery_worker, settings):
    category = Category.objects.create(name="Things", slug="things")
    product = Product(slug="vase", name="Vase", price=5, category=category)
    product.image.save("vase.png", ContentFile(product_png(size=256)), save=True)
    # The optimize engine takes long enough on a CPU to be caught mid-render.
    style = make_style("slow", engine="optimize", steps=60, size=128)
    source = services.source_images_of([product])[product.pk]
    rendition = services.rendition_request(source=source, style=style)
    wait_for(
        lambda: Rendition.objects.get(pk=rendition.pk).status == "rendering",
        message="the render to start",
    )
    time.sleep(1)
    celery_worker.kill(signal.SIGKILL)
    rendition.refresh_from_db()
    assert rendition.status == "rendering" and not rendition.file
    folder = Path(default_storage.path(f"renditions/{style.slug}"))
    assert not [p for p in folder.rglob("*") if p.is_file()], "no file, whole or partial"
    # The broker hands the unacknowledged message out again after its visibility timeout
    # (an hour by default); the periodic sweep is quicker: once the claim is stale, it
    # enqueues the render again and the new worker finishes it, once.
    celery_worker.start()
    settings.STYLETRANSFER = {**settings.STYLETRANSFER, "STALE_AFTER": 1}
    time.sleep(1.5)
    assert services.renditions_requeue() == 1
    wait_for(
        lambda: Rendition.objects.get(pk=rendition.pk).status == "ready",
        timeout=300,
        message=f"the render after restart\n{celery_worker.log_tail()}",
    )
    rendition.refresh_from_db()
    assert rendition.attempts == 2
    assert Rendition.objects.filter(style=style).count() == 1
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert [p.name for p in files] == [Path(rendition.file.name).name]


def test_hostile_images_fail_while_the_worker_keeps_serving(celery_worker):
    category = Category.objects.create(name="Things", slug="things")
    bomb = io.BytesIO()
    from PIL import Image

    Image.new("1", (10_000, 10_000)).save(bomb, "PNG")
    hostile = {
        "zero": b"",
        "text": b"not an image",
        "truncated": product_png()[:150],
        "bomb": bomb.getvalue(),
    }
    products = []
    for number, (slug, payload) in enumerate([*hostile.items(), ("fine", product_png())]):
        product = Product(slug=slug, name=slug, price=1, category=category)
        # Distinct content first, so each product gets its own source hash and rendition.
        distinct = product_png((30 * number, 200, 90))
        product.image.save(f"{slug}.png", ContentFile(distinct), save=True)
        with open(default_storage.path(product.image.name), "wb") as fh:
            fh.write(payload)
        products.append(product)
    style = make_style("hostile", engine="color", active=True)
    sources = services.source_images_of(products)
    for source in sources.values():
        services.rendition_request(source=source, style=style)
    renditions = Rendition.objects.filter(style=style)

    def settled():
        return not renditions.filter(status__in=["pending", "rendering"]).exists()

    wait_for(settled, message=f"all renders to settle\n{celery_worker.log_tail()}")
    by_status = {r.source_name.split("/")[-1].split(".")[0]: r for r in renditions}
    assert by_status["fine"].status == "ready"
    for slug in hostile:
        rendition = next(r for name, r in by_status.items() if name.startswith(slug))
        assert rendition.status == "failed", slug
        assert rendition.error and "\n" not in rendition.error
    assert celery_worker.process.poll() is None, "the worker is still running"


def test_render_catalog_waits_until_every_active_style_is_ready(celery_worker):
    call_command("seed_demo", stdout=io.StringIO())
    Style.objects.exclude(slug__in=["starry-night", "great-wave"]).update(active=False)
    out = io.StringIO()
    call_command("render_catalog", wait=True, timeout=600, stdout=out)
    total = Product.objects.count()
    for slug in ["starry-night", "great-wave"]:
        assert f"{slug}: {total} ready, 0 failed, {total} products" in out.getvalue()
    keys = Rendition.objects.values_list("source_hash", "style", "style_version", "params_hash")
    assert len(keys) == len(set(keys)), "no duplicates"
