"""Renders through the real Redis broker and a real `celery worker` process."""

import io
import os
import signal
import time
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.utils import timezone

from storefront.models import Category, Product
from styletransfer import selectors, services, tasks
from styletransfer.models import Rendition, Style
from tests.conftest import ROOT, WorkerProcess

from .helpers import make_style, product_png

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

# Heartbeats and recovery rounds a few seconds apart, so a dead worker is noticed in seconds.
FAST_RECOVERY = {"HEARTBEAT_INTERVAL": 0.5, "HEARTBEAT_TIMEOUT": 3, "RECOVERY_INTERVAL": 1}


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


def worker_env(tmp_path: Path, **styletransfer) -> dict:
    """Environment for a worker whose STYLETRANSFER differs: a settings module of its own."""
    (tmp_path / "worker_settings.py").write_text(
        "from tests.settings import *  # noqa: F403\n"
        f"STYLETRANSFER = {{**STYLETRANSFER, **{styletransfer!r}}}  # noqa: F405\n"
    )
    return {
        "DJANGO_SETTINGS_MODULE": "worker_settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
    }


@pytest.fixture
def start_worker(tmp_path):
    """Start real workers with their own STYLETRANSFER settings; they are stopped after the test."""
    from storefront.celery import app

    app.control.purge()
    workers = []

    def start(**styletransfer) -> WorkerProcess:
        worker = WorkerProcess(tmp_path / f"worker-{len(workers)}.log")
        worker.start(env=worker_env(tmp_path, **styletransfer))
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.kill(signal.SIGTERM)


def start_slow_render(slug: str):
    """A render long enough on a CPU to be caught mid-way, and the folder its file goes to."""
    category = Category.objects.create(name="Things", slug="things")
    product = Product(slug="vase", name="Vase", price=5, category=category)
    product.image.save("vase.png", ContentFile(product_png(size=256)), save=True)
    style = make_style(slug, engine="optimize", steps=15, size=128)
    source = services.source_images_of([product])[product.pk]
    rendition = services.rendition_request(source=source, style=style)
    wait_for(
        lambda: Rendition.objects.get(pk=rendition.pk).status == "rendering",
        message="the render to start",
    )
    time.sleep(1)
    return rendition, Path(default_storage.path(f"renditions/{style.slug}"))


def assert_rendered_once_after_a_kill(rendition, folder: Path) -> None:
    rendition.refresh_from_db()
    assert rendition.status == "ready"
    assert rendition.attempts == 2, "the dead worker's try and one more, never two at once"
    assert Rendition.objects.filter(style=rendition.style).count() == 1
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert [p.name for p in files] == [Path(rendition.file.name).name], "no .partial file"


def test_a_render_held_by_a_killed_worker_is_rendered_again_without_beat(start_worker):
    worker = start_worker(**FAST_RECOVERY)
    rendition, folder = start_slow_render("slow")
    killed = time.monotonic()
    worker.kill(signal.SIGKILL)
    rendition.refresh_from_db()
    assert rendition.status == "rendering" and rendition.heartbeat_at and not rendition.file
    assert not [p for p in folder.rglob("*") if p.is_file()], "no file, whole or partial"
    # The broker keeps the message for its visibility timeout (an hour); the new worker's
    # recovery loop sees the claim's heartbeat stop and enqueues the render again.
    worker = start_worker(**FAST_RECOVERY)
    wait_for(
        lambda: Rendition.objects.get(pk=rendition.pk).status == "ready",
        timeout=120 - (time.monotonic() - killed),
        message=f"the render within 120 s of the kill\n{worker.log_tail()}",
    )
    print(f"kill -> ready: {time.monotonic() - killed:.1f} s")
    assert_rendered_once_after_a_kill(rendition, folder)


def test_a_worker_killed_mid_render_is_rendered_again_by_the_sweep(start_worker, settings):
    # Workers with the default settings (their own recovery loop waits 45 s for a heartbeat);
    # this process judges with a short timeout, as beat's sweep would after 45 s.
    worker = start_worker()
    rendition, folder = start_slow_render("swept")
    worker.kill(signal.SIGKILL)
    worker = start_worker()
    settings.STYLETRANSFER = {**settings.STYLETRANSFER, "HEARTBEAT_TIMEOUT": 1}
    time.sleep(1.5)
    assert tasks.sweep()["requeued"] == 1
    assert tasks.sweep()["requeued"] == 0, "sent once"
    wait_for(
        lambda: Rendition.objects.get(pk=rendition.pk).status == "ready",
        timeout=120,
        message=f"the render after the sweep\n{worker.log_tail()}",
    )
    assert_rendered_once_after_a_kill(rendition, folder)


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


def test_render_catalog_wait_recovers_a_claim_that_dies_while_it_waits(start_worker, settings):
    # The worker's own recovery loop is an hour apart here: only the command can recover it.
    start_worker(RECOVERY_INTERVAL=3600)
    settings.STYLETRANSFER = {**settings.STYLETRANSFER, **FAST_RECOVERY}
    category = Category.objects.create(name="Things", slug="things")
    product = Product(slug="cup", name="Cup", price=5, category=category)
    product.image.save("cup.png", ContentFile(product_png()), save=True)
    style = make_style("ghost", engine="color")
    source = services.source_images_of([product])[product.pk]
    # Claimed by a worker that died just now: live when the command starts, dead 3 s later.
    Rendition.objects.create(
        source_hash=source.content_hash,
        style=style,
        style_version=style.version,
        params_hash=style.params_hash,
        source_name=source.name,
        status="rendering",
        task_id="ghost",
        started_at=timezone.now(),
        heartbeat_at=timezone.now(),
        enqueued_at=timezone.now(),
    )
    out = io.StringIO()
    call_command("render_catalog", style="ghost", wait=True, timeout=60, stdout=out)
    assert "ghost: 1 ready, 0 failed" in out.getvalue()
    assert Rendition.objects.get(style=style).attempts == 1
