"""The demo shop's Celery app; workers start with `celery -A storefront worker`."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "storefront.settings")

app = Celery("storefront")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="storefront.ping")
def ping(value: str) -> str:
    """Answer with what it was given: proves a broker and a worker are wired up."""
    return f"pong:{value}"
