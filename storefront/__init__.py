"""The demo shop: a Django project that embeds stylerec and styletransfer like any shop would."""

from .celery import app as celery_app

__all__ = ["celery_app"]
