"""Batched renders in this process: the same files and rows as single renders, failures alone."""

import io

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command

from storefront.models import Category, Product
from styletransfer import batching, rendering, services
from styletransfer.engines import feedforward
from styletransfer.models import Rendition

from .helpers import make_style, product_png

pytestmark = pytest.mark.django_db

COLOURS = [(200, 40, 40), (30, 160, 90), (40, 60, 200), (220, 190, 30), (120, 40, 160)]


def products(count: int, size: int = 96) -> list[Product]:
    category, _ = Category.objects.get_or_create(slug="things", defaults={"name": "Things"})
    made = []
    for number in range(count):
        product = Product(slug=f"p{number}", name=f"P{number}", price=1, category=category)
        product.image.save(f"p{number}.png", ContentFile(product_png(COLOURS[number], size)))
        made.append(product)
    return made


def requested(style, catalogue) -> list[Rendition]:
    sources = services.source_images_of(catalogue)
    return [services.rendition_request(source=sources[p.pk], style=style) for p in catalogue]


def stored_bytes(rendition: Rendition) -> bytes:
    rendition.refresh_from_db()
    with default_storage.open(rendition.file.name, "rb") as fh:
        return fh.read()


@pytest.mark.parametrize("images_per_pass", [1, 3])
def test_a_batch_stores_the_bytes_single_renders_store(monkeypatch, images_per_pass):
    monkeypatch.setattr(feedforward, "CPU_PASS", images_per_pass)
    catalogue = products(5)
    fields = {"engine": "feedforward", "size": 64, "strength": 60}
    batched = requested(make_style("batched", **fields), catalogue)
    single = requested(make_style("single", **fields), catalogue)
    outcome = batching.renditions_render_batch(
        rendition_ids=[r.pk for r in batched], task_id="batch"
    )
    assert sorted(outcome.ready) == sorted(r.pk for r in batched)
    for rendition in single:
        rendering.rendition_render(rendition_id=rendition.pk, task_id=f"one-{rendition.pk}")
    for one, many in zip(single, batched, strict=True):
        assert stored_bytes(one) == stored_bytes(many), "byte for byte what one render stores"
        assert (many.status, many.attempts, many.device) == ("ready", 1, "cpu")
        assert (many.width, many.height) == (one.width, one.height)
        assert many.render_seconds > 0 and not many.error
        assert many.file.name.replace("batched", "single") == one.file.name


def test_a_corrupt_image_fails_alone_and_the_rest_of_its_batch_is_ready():
    catalogue = products(4)
    style = make_style("mixed", engine="feedforward", size=64)
    renditions = requested(style, catalogue)
    with open(default_storage.path(catalogue[1].image.name), "wb") as fh:
        fh.write(product_png()[:150])  # truncated after its hash was taken
    outcome = batching.renditions_render_batch(rendition_ids=[r.pk for r in renditions])
    assert outcome.failed == [renditions[1].pk]
    assert sorted(outcome.ready) == sorted(r.pk for i, r in enumerate(renditions) if i != 1)
    bad = Rendition.objects.get(pk=renditions[1].pk)
    assert bad.status == "failed" and "corrupt or truncated" in bad.error and not bad.file


def test_a_batch_skips_what_is_done_or_held_and_fails_what_is_superseded():
    catalogue = products(3)
    style = make_style("skips", engine="color")
    done, held, old = requested(style, catalogue)
    batching.renditions_render_batch(rendition_ids=[done.pk])
    assert rendering._claim(held.pk, "another-worker", None) is not None
    Rendition.objects.filter(pk=old.pk).update(style_version=0)
    outcome = batching.renditions_render_batch(rendition_ids=[done.pk, held.pk, old.pk, done.pk])
    assert outcome.skipped == [done.pk, held.pk]
    assert outcome.failed == [old.pk]
    assert Rendition.objects.get(pk=old.pk).error == "superseded by a newer style"
    assert Rendition.objects.get(pk=done.pk).attempts == 1


def test_an_image_too_big_for_the_device_even_alone_leaves_the_batch_for_the_cpu(monkeypatch):
    import torch

    catalogue = products(3, size=96)
    catalogue[2].image.save("big.png", ContentFile(product_png(COLOURS[4], 160)))
    style = make_style("memory", engine="feedforward", size=64)
    renditions = requested(style, catalogue)
    engine = feedforward.FeedForwardEngine("cpu")
    engine.load()
    real = engine.stylise

    big = np.array(COLOURS[4]) / 255

    def stylise(contents, style_pixels, params):
        # The one large photo exhausts the device, in any pass it is part of.
        centres = [content[content.shape[0] // 2, content.shape[1] // 2] for content in contents]
        if any(np.abs(centre - big).max() < 0.02 for centre in centres):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(contents, style_pixels, params)

    monkeypatch.setattr(feedforward, "CPU_PASS", 3)
    monkeypatch.setattr(engine, "stylise", stylise)
    monkeypatch.setattr(batching, "get_engine", lambda name, device=None: engine)
    outcome = batching.renditions_render_batch(rendition_ids=[r.pk for r in renditions])
    assert outcome.out_of_memory == [renditions[2].pk]
    assert sorted(outcome.ready) == sorted([renditions[0].pk, renditions[1].pk])
    assert engine.max_pass == 1, "the pass was halved, and stays smaller"
    assert Rendition.objects.get(pk=renditions[2].pk).status == "pending"


def test_render_catalog_renders_in_batches_here_without_a_broker(settings):
    settings.CELERY_BROKER_URL = "filesystem://"  # the embedded default: no render worker
    settings.STYLETRANSFER = {**settings.STYLETRANSFER, "RENDER_BATCH_SIZE": 2}
    products(5)
    make_style("here", engine="feedforward", size=64)
    out = io.StringIO()
    call_command("render_catalog", style="here", wait=True, timeout=300, stdout=out)
    assert "here: 5 ready, 0 failed, 5 products" in out.getvalue()
    assert set(Rendition.objects.values_list("attempts", flat=True)) == {1}
