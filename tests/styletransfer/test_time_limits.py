"""RENDER_TIME_LIMIT holds where Celery's pool does not enforce it (solo pool, in-process)."""

import signal
import threading
import time

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.core.files.base import ContentFile

from storefront.models import Category, Product
from styletransfer import rendering, services
from styletransfer.time_limits import soft_time_limit

from .helpers import make_style, product_png

pytestmark = pytest.mark.django_db


def requested(style):
    category, _ = Category.objects.get_or_create(slug="things", defaults={"name": "Things"})
    product = Product(slug=style.slug, name="Vase", price=5, category=category)
    product.image.save(f"{style.slug}.png", ContentFile(product_png(size=256)), save=True)
    source = services.source_images_of([product])[product.pk]
    return services.rendition_request(source=source, style=style)


def test_a_render_past_the_time_limit_fails_with_the_reason_and_frees_the_worker(settings):
    settings.STYLETRANSFER = {**settings.STYLETRANSFER, "RENDER_TIME_LIMIT": 1}
    # 2,000 optimisation steps at 512 px: minutes on this CPU, were it not stopped.
    slow = requested(make_style("slow", engine="optimize", steps=2000, size=512))
    started = time.monotonic()
    done = rendering.rendition_render(rendition_id=slow.pk)
    assert time.monotonic() - started < 60
    assert done.status == "failed"
    assert done.error == "took longer than 1 s; use a smaller size or fewer steps"
    assert not done.file
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0, "no timer left behind"
    assert signal.getsignal(signal.SIGALRM) is signal.SIG_DFL

    settings.STYLETRANSFER = {**settings.STYLETRANSFER, "RENDER_TIME_LIMIT": 900}
    quick = requested(make_style("quick"))
    assert rendering.rendition_render(rendition_id=quick.pk).status == "ready", "worker still fine"


def test_the_limit_interrupts_only_the_main_thread_and_only_past_its_time():
    with soft_time_limit(5):
        time.sleep(0.05)  # well inside: nothing raised
    with pytest.raises(SoftTimeLimitExceeded), soft_time_limit(0.05):
        time.sleep(2)
    outcome = []

    def elsewhere():
        with soft_time_limit(0.05):  # no signals off the main thread: left to the pool
            time.sleep(0.2)
        outcome.append("finished")

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert outcome == ["finished"]
