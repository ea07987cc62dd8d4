"""The rules every event keeps, whichever way it arrives (beacon, app, server)."""

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone

from stylerec.events import (
    EventRejected,
    check_batch_size,
    check_decision,
    check_occurred_at,
)


def rejected_part(call) -> str | None:
    try:
        call()
    except EventRejected as exc:
        return exc.part
    return None


def test_an_event_from_the_last_days_is_kept_and_one_from_the_future_or_long_ago_is_not():
    now = timezone.now()
    assert rejected_part(lambda: check_occurred_at(None)) is None
    assert rejected_part(lambda: check_occurred_at(now - timedelta(days=1))) is None
    assert rejected_part(lambda: check_occurred_at(now + timedelta(hours=1))) == "occurred_at"
    assert rejected_part(lambda: check_occurred_at(now - timedelta(days=30))) == "occurred_at"


@pytest.mark.parametrize(
    ("kind", "product_id", "decision_id", "part"),
    [
        ("click", "7", 1, None),
        ("click", "7", None, "decision"),
        ("impression", "7", None, "decision"),
        ("purchase", "7", None, None),
        ("click", "7", 2, "decision"),
        ("add_to_cart", "8", 1, "product_id"),
    ],
)
def test_clicks_name_the_shoppers_own_decision_for_that_product(
    kind, product_id, decision_id, part
):
    decisions = {1: SimpleNamespace(product_id="7")}
    check = lambda: check_decision(  # noqa: E731
        kind=kind, product_id=product_id, decision_id=decision_id, decisions=decisions
    )
    assert rejected_part(check) == part


def test_a_batch_has_a_ceiling(settings):
    settings.STYLEREC = {**settings.STYLEREC, "MAX_EVENTS_PER_BATCH": 3}
    assert rejected_part(lambda: check_batch_size(3)) is None
    assert rejected_part(lambda: check_batch_size(4)) == "events"
