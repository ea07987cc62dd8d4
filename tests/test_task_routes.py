"""Every task of the two apps names its queue, and beat's entries reach the README's workers
(`-Q render`, `-Q default`): nothing lands in Celery's own "celery" queue, which none reads."""

import pytest
from celery.beat import ScheduleEntry, Scheduler
from django.conf import settings

from storefront.celery import app
from stylerec.conf import BEAT_SCHEDULE

QUEUES = {
    "styletransfer.render_rendition": "render",
    "styletransfer.render_batch": "render",
    "styletransfer.onboard_style": "render",
    "styletransfer.compute_style_embedding": "render",
    "styletransfer.render_style_catalog": "default",
    "styletransfer.sweep": "default",
    "stylerec.fit": "default",
    "stylerec.update_recent": "default",
    "stylerec.prune": "default",
}


def waiting(channel, queue: str) -> int:
    return int(channel.client.llen(queue))


def test_every_task_of_the_apps_names_its_queue():
    app.loader.import_default_modules()  # what a worker or beat does when it starts
    ours = {name: task.queue for name, task in app.tasks.items() if name.startswith("style")}
    assert ours == QUEUES


def test_beat_entries_are_published_to_the_default_queue():
    if not settings.CELERY_BROKER_URL.startswith("redis"):
        pytest.fail("Needs the Redis broker: run with bin/test.")
    app.loader.import_default_modules()
    scheduler = Scheduler(app, lazy=True)
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        for queue in ("default", "render", "celery"):
            channel.client.delete(queue)
        for name, entry in BEAT_SCHEDULE.items():
            scheduler.apply_async(ScheduleEntry(name=name, app=app, **entry), producer=None)
        counts = {queue: waiting(channel, queue) for queue in ("default", "render", "celery")}
        for queue in counts:
            channel.client.delete(queue)
    assert counts == {"default": len(BEAT_SCHEDULE), "render": 0, "celery": 0}
