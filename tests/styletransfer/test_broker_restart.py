"""A Redis broker that restarts empty (no persistence) loses its queued renders: the render
workers send them again by themselves, with the worker running through the outage or started
after it."""

import shutil
import socket
import subprocess
import time

import pytest
from django.core.files.base import ContentFile

from storefront.models import Category, Product
from styletransfer import broker, services, tasks
from styletransfer.models import Rendition

from .helpers import make_style, product_png
from .test_render_worker import FAST_RECOVERY, wait_for, worker_env

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Redis:
    """A redis-server of the test's own, without persistence: a restart starts it empty."""

    def __init__(self, directory) -> None:
        self.port = free_port()
        self.directory = directory
        self.process = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1"]
            + ["--save", "", "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
        )
        wait_for(self.answers, timeout=20, message="redis-server to start")

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(7) == b"+PONG\r\n"
        except OSError:
            return False

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


@pytest.fixture
def own_broker(tmp_path, monkeypatch):
    """The Celery app of this process and its workers on a Redis the test may kill."""
    app = tasks.render_rendition.app

    def drop_pools() -> None:
        # Drop (not close: other objects still hold them) the pools bound to the old URL.
        app._pool = None
        app.amqp._producer_pool = None

    redis = Redis(tmp_path)
    redis.start()
    # Celery reads CELERY_BROKER_URL from the environment before its own settings.
    monkeypatch.setenv("CELERY_BROKER_URL", redis.url)
    drop_pools()
    assert app.conf.broker_url == redis.url
    yield redis
    monkeypatch.undo()
    drop_pools()
    broker.reset()  # this process's sends failed while it was down
    if redis.process.poll() is None:
        redis.kill()


def requested_renditions(style, count: int, first: int = 0) -> list[int]:
    category, _ = Category.objects.get_or_create(slug="things", defaults={"name": "Things"})
    ids = []
    for n in range(first, first + count):
        product = Product(slug=f"cup-{n}", name=f"Cup {n}", price=5, category=category)
        product.image.save(f"cup-{n}.png", ContentFile(product_png((n * 20, 90, 90))), save=True)
        source = services.source_images_of([product])[product.pk]
        ids.append(services.rendition_request(source=source, style=style).pk)
    return ids


def test_renders_lost_or_unsent_in_a_broker_restart_are_rendered_without_help(own_broker, tmp_path):
    from tests.conftest import WorkerProcess

    style = make_style("restart", engine="color")
    recovery = {**FAST_RECOVERY, "REQUEUE_AFTER": 2}
    env = {**worker_env(tmp_path, **recovery), "CELERY_BROKER_URL": own_broker.url}

    # Sent while no worker runs, then the broker restarts empty: the messages are gone.
    lost = requested_renditions(style, 3)
    assert not Rendition.objects.filter(pk__in=lost, enqueued_at=None).exists(), "all sent"
    own_broker.kill()
    own_broker.start()
    worker = WorkerProcess(tmp_path / "worker.log")
    worker.start(env=env)
    try:
        wait_for(
            lambda: Rendition.objects.filter(pk__in=lost, status="ready").count() == 3,
            timeout=90,
            message=f"the lost renders\n{worker.log_tail()}",
        )
        # The broker goes away under a running worker; renders requested meanwhile are not sent.
        own_broker.kill()
        unsent = requested_renditions(style, 2, first=3)
        assert Rendition.objects.filter(pk__in=unsent, enqueued_at=None).count() == 2
        time.sleep(2)
        own_broker.start()
        wait_for(
            lambda: Rendition.objects.filter(pk__in=unsent, status="ready").count() == 2,
            timeout=120,
            message=f"the renders requested during the outage\n{worker.log_tail()}",
        )
        assert worker.process.poll() is None, "the worker lived through the outage"
    finally:
        worker.kill()
    assert Rendition.objects.filter(style=style).count() == 5, "one row per product"
    assert all(r.attempts == 1 for r in Rendition.objects.filter(style=style))
