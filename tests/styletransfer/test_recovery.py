"""Telling live claims from dead ones: heartbeats, takeover, recovery loops, the broker check."""

import threading
import time
from types import SimpleNamespace

import pytest
from django.core import checks
from django.core.files.base import ContentFile
from django.utils import timezone
from PIL import Image

from storefront.models import Category, Product
from styletransfer import recovery, rendering, services, tasks
from styletransfer.conf import conf
from styletransfer.models import Rendition

from .helpers import make_style, product_png


def claimed_rendition(slug="disc", **claim) -> Rendition:
    """A rendition of a fresh product, claimed by someone else as `claim` says."""
    category, _ = Category.objects.get_or_create(slug="things", defaults={"name": "Things"})
    product = Product(slug=slug, name=slug.title(), price=10, category=category)
    product.image.save(f"{slug}.png", ContentFile(product_png()), save=True)
    style = make_style(f"{slug}-style")
    source = services.source_images_of([product])[product.pk]
    rendition = services.rendition_request(source=source, style=style)
    if claim:
        claim = {"status": "rendering", "task_id": "theirs", **claim}
        Rendition.objects.filter(pk=rendition.pk).update(**claim)
    return rendition


def ago(seconds: float):
    return timezone.now() - timezone.timedelta(seconds=seconds)


@pytest.mark.django_db
def test_a_live_claim_is_left_to_its_worker_and_a_dead_one_is_taken_over(settings):
    settings.STYLETRANSFER = {**settings.STYLETRANSFER, "HEARTBEAT_TIMEOUT": 45}
    # Started 14 minutes ago, heartbeat 5 s ago: a long healthy render is never cut short.
    rendition = claimed_rendition(started_at=ago(840), heartbeat_at=ago(5))
    assert rendering._claim(rendition.pk, "mine", None) is None
    claim = Rendition.objects.get(pk=rendition.pk).started_at.isoformat()
    assert rendering._claim(rendition.pk, "mine", claim) is None, "a live heartbeat wins"
    Rendition.objects.filter(pk=rendition.pk).update(heartbeat_at=ago(46))
    taken = rendering._claim(rendition.pk, "mine", None)
    assert taken is not None and taken.task_id == "mine" and taken.attempts == 1
    taken.refresh_from_db()
    assert taken.heartbeat_at > ago(5), "the new claim starts with a fresh heartbeat"
    assert rendering._claim(rendition.pk, "theirs", None) is None, "and is live for others"


@pytest.mark.django_db
def test_claims_without_heartbeat_keep_the_stale_after_rules(settings):
    settings.STYLETRANSFER = {**settings.STYLETRANSFER, "STALE_AFTER": 1200}
    rendition = claimed_rendition(started_at=ago(600), heartbeat_at=None)
    assert rendering._claim(rendition.pk, "mine", None) is None
    assert rendering._claim(rendition.pk, "theirs", None) is not None, "a redelivery takes over"
    Rendition.objects.filter(pk=rendition.pk).update(task_id="theirs", heartbeat_at=None)
    named = Rendition.objects.get(pk=rendition.pk).started_at.isoformat()
    assert rendering._claim(rendition.pk, "mine", named) is not None, "the claim a sweep named"
    Rendition.objects.filter(pk=rendition.pk).update(
        task_id="theirs", heartbeat_at=None, started_at=ago(1300)
    )
    assert rendering._claim(rendition.pk, "mine", None) is not None, "older than STALE_AFTER"


@pytest.mark.django_db
def test_requeue_releases_a_dead_claim_once_and_leaves_live_ones(
    settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.STYLETRANSFER = {**settings.STYLETRANSFER, "HEARTBEAT_TIMEOUT": 45}
    sent = []
    monkeypatch.setattr(
        tasks.render_rendition, "apply_async", lambda args, **kwargs: sent.append(args[0])
    )
    live = claimed_rendition("live", started_at=ago(840), heartbeat_at=ago(5))
    dead = claimed_rendition("dead", started_at=ago(60), heartbeat_at=ago(50))
    legacy = claimed_rendition("legacy", started_at=ago(600), heartbeat_at=None)
    Rendition.objects.update(enqueued_at=timezone.now())  # all sent once already
    with django_capture_on_commit_callbacks(execute=True):
        assert services.renditions_requeue() == 1
    assert sent == [dead.pk]
    assert Rendition.objects.get(pk=dead.pk).status == "pending"
    assert Rendition.objects.get(pk=live.pk).status == "rendering"
    assert Rendition.objects.get(pk=legacy.pk).status == "rendering"
    with django_capture_on_commit_callbacks(execute=True):
        assert services.renditions_requeue() == 0, "a released claim is not sent twice"
    assert tasks.sweep()["requeued"] == 0


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_beats_during_a_long_render_and_stops_after_it(settings, monkeypatch):
    settings.STYLETRANSFER = {
        **settings.STYLETRANSFER,
        "HEARTBEAT_INTERVAL": 0.1,
        "HEARTBEAT_TIMEOUT": 0.5,
    }
    rendition = claimed_rendition()
    seen, refused = [], []

    class SlowEngine:
        device = "cpu"

        def render(self, content, reference, params):
            # Three heartbeat timeouts long: other workers must still see a live claim.
            for _ in range(6):
                time.sleep(0.25)
                seen.append(Rendition.objects.get(pk=rendition.pk).heartbeat_at)
            refused.append(rendering._claim(rendition.pk, "intruder", None))
            return Image.new("RGB", (96, 96), (10, 120, 200))

    monkeypatch.setattr(rendering, "get_engine", lambda name, device=None: SlowEngine())
    done = rendering.rendition_render(rendition_id=rendition.pk, task_id="mine")
    assert done.status == "ready" and done.attempts == 1
    assert len(set(seen)) == len(seen) and seen == sorted(seen), "refreshed all along"
    assert refused == [None], "a live claim is not taken over, however long it renders"
    heartbeats = [t for t in threading.enumerate() if t.name.endswith("-heartbeat")]
    assert not heartbeats, "the heartbeat thread ended with the render"
    last = Rendition.objects.get(pk=rendition.pk).heartbeat_at
    time.sleep(0.3)
    assert Rendition.objects.get(pk=rendition.pk).heartbeat_at == last


def consumer(*queues: str):
    """What Celery's worker_ready sends: the consumer of a worker started with -Q queues."""
    return SimpleNamespace(
        app=SimpleNamespace(amqp=SimpleNamespace(queues=SimpleNamespace(consume_from=queues)))
    )


def test_render_workers_run_one_recovery_loop(settings, monkeypatch):
    settings.STYLETRANSFER = {**settings.STYLETRANSFER, "RECOVERY_INTERVAL": 0.05}
    rounds = []
    monkeypatch.setattr(services, "renditions_requeue", lambda: rounds.append(1) or 0)
    recovery.on_worker_ready(consumer("default"))
    time.sleep(0.2)
    assert rounds == [], "bookkeeping workers leave recovery to render workers"
    try:
        recovery.on_worker_ready(consumer("render", "default"))
        recovery.on_worker_ready(consumer("render"))
        loops = [t for t in threading.enumerate() if t.name == "styletransfer-recovery"]
        assert len(loops) == 1
        time.sleep(0.3)
        assert len(rounds) >= 3, "a round at once, then every RECOVERY_INTERVAL"
    finally:
        recovery.recovery_stop()
    assert not [t for t in threading.enumerate() if t.name == "styletransfer-recovery"]


@pytest.fixture
def celery_conf(settings, monkeypatch):
    """Point the Celery app at a broker URL with transport options, for one test."""

    def configure(url: str, **options) -> None:
        # Celery reads CELERY_BROKER_URL from the environment before the Django settings.
        monkeypatch.setenv("CELERY_BROKER_URL", url)
        settings.CELERY_BROKER_URL = url
        settings.CELERY_BROKER_TRANSPORT_OPTIONS = options

    return configure


def visibility_warnings() -> list[str]:
    return [m.id for m in checks.run_checks() if m.id == "styletransfer.W002"]


def test_a_visibility_timeout_shorter_than_a_render_is_flagged(settings, celery_conf):
    settings.STYLETRANSFER = {**settings.STYLETRANSFER, "RENDER_TIME_LIMIT": 900}
    celery_conf("redis://127.0.0.1:6379/0", visibility_timeout=600)
    assert visibility_warnings() == ["styletransfer.W002"]
    celery_conf("redis://127.0.0.1:6379/0", visibility_timeout=960)
    assert visibility_warnings() == []
    celery_conf("redis://127.0.0.1:6379/0")  # kombu's default: an hour
    assert visibility_warnings() == []
    settings.STYLETRANSFER = {**settings.STYLETRANSFER, "RENDER_TIME_LIMIT": 3600}
    assert visibility_warnings() == ["styletransfer.W002"]
    celery_conf("sqs://", visibility_timeout=1800)
    assert visibility_warnings() == ["styletransfer.W002"]
    celery_conf("amqp://guest@127.0.0.1//", visibility_timeout=10)
    assert visibility_warnings() == [], "AMQP redelivers on a lost connection, not on a timer"


def drain_render_queue() -> list[int]:
    """The rendition ids in the real broker's render queue, in the order a worker takes them."""
    ids = []
    with tasks.render_rendition.app.connection_for_read() as connection:
        channel = connection.default_channel
        while (message := channel.basic_get(conf.RENDER_QUEUE, no_ack=True)) is not None:
            first = message.decode()[0][0]  # render_rendition's id, or render_batch's ids
            ids.extend(first if isinstance(first, list) else [first])
    return ids


@pytest.mark.django_db(transaction=True)
def test_a_recovered_render_goes_before_the_catalogue_in_the_queue(settings):
    assert tasks.render_rendition.app.conf.broker_url.startswith("redis"), "needs the real broker"
    settings.STYLETRANSFER = {**settings.STYLETRANSFER, "HEARTBEAT_TIMEOUT": 45}
    drain_render_queue()
    dead = claimed_rendition("dead", started_at=ago(60), heartbeat_at=ago(50))
    style = make_style("catalogue-style")
    category = Category.objects.get(slug="things")
    products = []
    for n in range(4):
        product = Product(slug=f"item-{n}", name=f"Item {n}", price=10, category=category)
        product.image.save(f"item-{n}.png", ContentFile(product_png((n, 40, 40))), save=True)
        products.append(product)
    drain_render_queue()  # what registering the products sent for other styles
    services.style_render_catalog(style=style)
    catalogue = list(Rendition.objects.filter(style=style).values_list("pk", flat=True))
    assert len(catalogue) == 5, "the dead claim's product and the four new ones"

    assert services.renditions_requeue() == 1
    assert drain_render_queue() == [dead.pk, *sorted(catalogue)], (
        "the render a dead worker held is taken first, then the catalogue in order"
    )


@pytest.mark.django_db(transaction=True)
def test_sent_renders_are_sent_again_only_when_the_broker_lost_them(settings):
    settings.STYLETRANSFER = {**settings.STYLETRANSFER, "REQUEUE_AFTER": 120}
    waiting = claimed_rendition("waiting")
    other = claimed_rendition("other")
    Rendition.objects.filter(pk__in=[waiting.pk, other.pk]).update(enqueued_at=ago(600))
    assert {waiting.pk, other.pk} <= set(drain_render_queue()), "sent when requested"
    services.rendition_enqueue(rendition=waiting)
    services.rendition_enqueue(rendition=other)
    Rendition.objects.filter(pk__in=[waiting.pk, other.pk]).update(enqueued_at=ago(600))
    Rendition.objects.exclude(pk__in=[waiting.pk, other.pk]).delete()

    # Ten minutes in a deep queue is waiting, not lost: no second message.
    assert services.renditions_requeue() == 0
    assert drain_render_queue() == [waiting.pk, other.pk]

    # The queue is empty and they are still pending: the broker lost them (a restart).
    assert services.renditions_requeue() == 2
    assert sorted(drain_render_queue()) == [waiting.pk, other.pk]
    assert services.renditions_requeue() == 0, "sent again just now: not again"
