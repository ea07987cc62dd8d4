"""Celery tasks: thin wrappers that take ids, call a service, and decide about retries."""

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.db import InterfaceError, OperationalError

from . import batching, onboarding, rendering, services
from .conf import conf
from .engines.errors import OutOfMemory
from .models import Rendition, Style
from .time_limits import soft_time_limit

logger = logging.getLogger(__name__)

TRANSIENT = (OperationalError, InterfaceError, ConnectionError, TimeoutError)


# What every render task is: on the render queue (every task names its queue: a worker reads
# render or default), acknowledged after the render so a worker killed mid-render leaves the
# message to be delivered again, retried on database and connection faults, time-limited.
RENDER_TASK = {
    "bind": True,
    "queue": conf.RENDER_QUEUE,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": TRANSIENT,
    "retry_backoff": 5,
    "retry_backoff_max": 300,
    "max_retries": 5,
    "soft_time_limit": conf.RENDER_TIME_LIMIT,
    "time_limit": conf.RENDER_TIME_LIMIT + 60,
}


@shared_task(name="styletransfer.render_rendition", **RENDER_TASK)
def render_rendition(
    self, rendition_id: int, device: str | None = None, stale_claim: str | None = None
) -> str:
    # stale_claim: sent by the sweep of releases before heartbeats; messages may still carry it.
    try:
        rendition = rendering.rendition_render(
            rendition_id=rendition_id,
            task_id=self.request.id,
            device=device,
            stale_claim=stale_claim,
        )
    except OutOfMemory as exc:
        # The GPU is full (big image, other jobs): render this one on the CPU instead.
        logger.warning("Rendition %s ran out of memory, retrying on cpu: %s", rendition_id, exc)
        Rendition.objects.filter(pk=rendition_id).update(status=Rendition.Status.PENDING)
        raise self.retry(
            kwargs={"rendition_id": rendition_id, "device": "cpu"}, countdown=1
        ) from exc
    except SoftTimeLimitExceeded:
        # Celery's prefork pool stopped it outside the engine (rendition_render stops the rest).
        rendering.rendition_fail(rendition_id=rendition_id, error=rendering.time_limit_error())
        return "failed"
    return rendition.status if rendition else "skipped"


@shared_task(
    name="styletransfer.render_batch", **RENDER_TASK
)  # a killed one's claims come back one by one
def render_batch(self, rendition_ids: list[int], device: str | None = None) -> dict[str, int]:
    """Render renditions of one style together (catalogue renders)."""
    try:
        with soft_time_limit(conf.RENDER_TIME_LIMIT):  # the solo pool enforces none itself
            outcome = batching.renditions_render_batch(
                rendition_ids=rendition_ids, task_id=self.request.id, device=device
            )
    except SoftTimeLimitExceeded:
        # Not the renditions' fault: what is left is rendered again, one task each.
        left = batching.renditions_release(rendition_ids=rendition_ids, task_id=self.request.id)
        for rendition in left:
            services.rendition_enqueue(rendition=rendition)
        return {"released": len(left)}
    for rendition_id in outcome.out_of_memory:  # too big for the GPU even alone
        render_rendition.apply_async(
            kwargs={"rendition_id": rendition_id, "device": "cpu"}, queue=conf.RENDER_QUEUE
        )
    return outcome.counts()


@shared_task(
    name="styletransfer.render_style_catalog",
    queue=conf.DEFAULT_QUEUE,
    autoretry_for=TRANSIENT,
    retry_backoff=5,
)
def render_style_catalog(style_id: int, after_pk=None) -> int:
    """Request one batch of the catalogue, then hand the next batch to a new task."""
    style = Style.objects.filter(pk=style_id, active=True).first()
    if style is None:
        return 0
    last_pk = services.style_render_catalog(style=style, after_pk=after_pk)
    if last_pk is not None:
        render_style_catalog.apply_async(
            args=[style_id, last_pk],
            queue=conf.DEFAULT_QUEUE,
            countdown=conf.CATALOG_BATCH_INTERVAL,
        )
    return 1


@shared_task(
    name="styletransfer.compute_style_embedding",
    queue=conf.RENDER_QUEUE,  # VGG features: torch, on the render workers
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT,
    retry_backoff=5,
)
def compute_style_embedding(style_id: int) -> bool:
    style = Style.objects.filter(pk=style_id).first()
    if style is None or not style.reference_image:
        return False
    rendering.style_compute_embedding(style=style)
    return True


@shared_task(
    name="styletransfer.onboard_style",
    queue=conf.RENDER_QUEUE,  # a fine-tune of the decoder: torch, on the render workers
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT,
    retry_backoff=5,
    max_retries=3,
    # the tuning stops itself after ONBOARDING_MINUTES; measuring both engines takes the rest
    soft_time_limit=int(60 * conf.ONBOARDING_MINUTES) + 600,
    time_limit=int(60 * conf.ONBOARDING_MINUTES) + 660,
)
def onboard_style(style_id: int, device: str | None = None) -> str:
    try:
        onboarded = onboarding.style_onboard(style_id=style_id, device=device)
    except TRANSIENT:
        raise
    except Exception as exc:  # the style keeps the shipped decoder; the admin shows why
        logger.warning("Onboarding style %s failed: %s", style_id, exc)
        services.style_onboarding_fail(style_id=style_id, error=rendering._one_line(exc))
        return "failed"
    if onboarded is None:
        return "skipped"
    return "ready" if services.style_onboarding_land(onboarded=onboarded) else "superseded"


@shared_task(name="styletransfer.sweep", queue=conf.DEFAULT_QUEUE)
def sweep() -> dict:
    """Periodic catch-up after a broker outage, a lost worker or a photo changed unseen
    (scheduled by celery beat)."""
    return {
        "requeued": services.renditions_requeue(),
        "styles_behind": services.styles_catch_up(),
        "photos_changed": services.photos_sweep(),
    }
