"""Events retention on PostgreSQL: old events and decisions go, what a fit reads stays."""

import io
from datetime import timedelta

import numpy as np
import pytest
from django.core import checks
from django.core.management import call_command
from django.utils import timezone

from stylerec import events, fitting, tasks
from stylerec.models import Decision, Event, Shopper

pytestmark = pytest.mark.django_db

ARMS = fitting.Arms(slugs=["original", "sun"], features=np.zeros((2, 2)))


def decision_days_ago(shopper: Shopper, days: float, *, clicked: bool = True) -> Decision:
    """A decision made `days` ago, its impression and (when clicked) a click an hour later."""
    made = timezone.now() - timedelta(days=days)
    decision = Decision.objects.create(
        shopper=shopper,
        product_id="7",
        candidates=["original", "sun"],
        probabilities=[0.5, 0.5],
        chosen="sun",
        propensity=0.5,
        model_version="test",
        policy="uniform",
    )
    Decision.objects.filter(pk=decision.pk).update(created_at=made)
    kinds = ["impression", "click"] if clicked else ["impression"]
    for minutes, kind in enumerate(kinds):
        event = Event.objects.create(
            shopper=shopper,
            kind=kind,
            decision=decision,
            product_id="7",
            occurred_at=made + timedelta(minutes=60 * minutes),
        )
        Event.objects.filter(pk=event.pk).update(received_at=event.occurred_at)
    return decision


def purchase_days_ago(shopper: Shopper, days: float) -> Event:
    at = timezone.now() - timedelta(days=days)
    event = Event.objects.create(shopper=shopper, kind="purchase", product_id="7", occurred_at=at)
    Event.objects.filter(pk=event.pk).update(received_at=at)
    return event


def fit_logs() -> dict:
    since = timezone.now() - timedelta(days=90)
    return {key: list(value) for key, value in fitting.load_logs(ARMS, since=since).items()}


def test_pruning_deletes_what_is_past_retention_and_nothing_a_fit_reads(settings):
    settings.STYLEREC = {**settings.STYLEREC, "EVENT_RETENTION_DAYS": 120}
    shopper = Shopper.objects.create()
    kept = [decision_days_ago(shopper, days) for days in (1, 30, 89.9, 119)]
    gone = [decision_days_ago(shopper, days) for days in (121, 400)]
    old_purchase, new_purchase = purchase_days_ago(shopper, 200), purchase_days_ago(shopper, 2)
    before = fit_logs()
    assert len(before["id"]) == 3, "the fit reads the last 90 days"
    result = events.events_prune(chunk=3)  # several statements per table
    assert (result.events, result.decisions) == (2 * len(gone) + 1, len(gone))
    assert set(Decision.objects.values_list("pk", flat=True)) == {d.pk for d in kept}
    assert not Event.objects.filter(decision__in=gone).exists()
    assert not Event.objects.filter(pk=old_purchase.pk).exists()
    assert Event.objects.filter(pk=new_purchase.pk).exists()
    assert Event.objects.filter(decision__in=kept).count() == 2 * len(kept)
    assert fit_logs() == before, "the fit sees exactly what it saw"
    assert events.events_prune().events == 0


def test_a_retention_shorter_than_the_fit_keeps_what_the_fit_reads(settings):
    settings.STYLEREC = {**settings.STYLEREC, "EVENT_RETENTION_DAYS": 7}
    assert [m.id for m in checks.run_checks() if m.id.startswith("stylerec.W")] == ["stylerec.W004"]
    shopper = Shopper.objects.create()
    decision_days_ago(shopper, 3)
    decision_days_ago(shopper, 60)  # older than 7 days, but inside FIT_LOOKBACK_DAYS (90)
    decision_days_ago(shopper, 89, clicked=False)
    decision_days_ago(shopper, 92)  # past lookback + reward window: the fit never reads it
    before = fit_logs()
    result = events.events_prune()
    assert result.decisions == 1 and result.cutoff < timezone.now() - timedelta(days=91)
    assert Decision.objects.count() == 3
    assert fit_logs() == before


def test_the_command_counts_then_deletes_and_the_task_runs_it(settings):
    shopper = Shopper.objects.create()
    decision_days_ago(shopper, 10)
    decision_days_ago(shopper, 365)
    out = io.StringIO()
    call_command("stylerec_prune", dry_run=True, stdout=out)
    assert "Would delete 2 events and 1 decisions" in out.getvalue()
    assert Decision.objects.count() == 2
    call_command("stylerec_prune", stdout=out)
    assert "Deleted 2 events and 1 decisions" in out.getvalue()
    decision_days_ago(shopper, 200)
    assert tasks.prune() == {"events": 2, "decisions": 1}
    assert Decision.objects.count() == 1
    settings.STYLEREC = {**settings.STYLEREC, "EVENT_RETENTION_DAYS": None}
    decision_days_ago(shopper, 5000)
    assert tasks.prune() == {}
    call_command("stylerec_prune", stdout=out)
    assert "kept forever" in out.getvalue() and Decision.objects.count() == 2


@pytest.mark.parametrize("days", [0, -3, "180", True])
def test_a_retention_that_is_not_a_number_of_days_is_an_error(settings, days):
    settings.STYLEREC = {**settings.STYLEREC, "EVENT_RETENTION_DAYS": days}
    assert "stylerec.E008" in [m.id for m in checks.run_checks()]
