"""Celery tasks of the loop: thin wrappers around the fitting services."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from styletransfer.conf import conf as styletransfer_conf

from . import events, fitting

TRANSIENT = (OperationalError, InterfaceError, ConnectionError)


# Fits are bookkeeping for the default queue's workers (the README's `-Q default`), never the
# render queue's GPUs nor Celery's own "celery" queue, which no worker of the README reads.
@shared_task(
    name="stylerec.fit",
    queue=styletransfer_conf.DEFAULT_QUEUE,
    autoretry_for=TRANSIENT,
    retry_backoff=10,
    max_retries=3,
)
def fit() -> str | None:
    """Full refit (celery beat, hourly by default, and when a style's embedding changes)."""
    model = fitting.preference_fit_full()
    return model.version if model else None


@shared_task(
    name="stylerec.update_recent",
    queue=styletransfer_conf.DEFAULT_QUEUE,
    autoretry_for=TRANSIENT,
    retry_backoff=10,
)
def update_recent(minutes: int = 10) -> int:
    """Incremental update of recently active shoppers (celery beat, every few minutes)."""
    return fitting.preference_update_recent(minutes=minutes)


@shared_task(
    name="stylerec.prune",
    queue=styletransfer_conf.DEFAULT_QUEUE,
    autoretry_for=TRANSIENT,
    retry_backoff=60,
    max_retries=3,
)
def prune() -> dict[str, int]:
    """Delete events and decisions past EVENT_RETENTION_DAYS (celery beat, daily)."""
    result = events.events_prune()
    return {"events": result.events, "decisions": result.decisions} if result else {}
