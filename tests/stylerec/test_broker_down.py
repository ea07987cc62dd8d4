"""With the broker down the shop keeps answering, and catches up once it is back."""

import time

from styletransfer import services
from styletransfer.models import Rendition
from tests.styletransfer.helpers import make_style

from .helpers import give_embedding, images, post_events


def test_shop_serves_and_stores_events_while_the_broker_is_down(
    client, shop, broker_down, django_capture_on_commit_callbacks
):
    fresh = make_style("fresh", engine="color", active=True, seed=9)
    give_embedding(fresh, 9)
    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True) as sends:
        response = client.get("/")
    elapsed = time.monotonic() - started
    assert len(sends) == 6, "the page tried to send each missing render"
    assert response.status_code == 200
    assert elapsed < 10, f"a down broker cost the page {elapsed:.1f} s"
    shown = images(response.content.decode())
    assert "fresh" not in {image["data-style"] for image in shown}, "originals meanwhile"
    pending = Rendition.objects.filter(style=fresh)
    assert pending.count() == 6, "the missing renders are recorded"
    assert not pending.exclude(enqueued_at=None).exists(), "none reached the broker"
    decision = int(shown[0]["data-decision"])
    stored = post_events(
        client, [{"type": "click", "decision": decision, "product": shown[0]["data-product"]}]
    )
    assert stored.status_code == 202


def test_missing_renders_are_enqueued_again_when_the_broker_is_back(
    client, shop, broker_down, django_capture_on_commit_callbacks
):
    fresh = make_style("fresh", engine="color", active=True, seed=9)
    give_embedding(fresh, 9)
    client.get("/")
    assert not Rendition.objects.filter(style=fresh).exclude(enqueued_at=None).exists()
    broker_down()  # the broker is back
    with django_capture_on_commit_callbacks(execute=True):
        assert services.renditions_requeue() == 6
    assert Rendition.objects.filter(style=fresh, enqueued_at=None).count() == 0
