"""Receivers: keeping source images in step with the shop's products, and starting each render
worker's recovery loop (wired in apps.ready)."""

from celery.signals import worker_ready
from django.db import transaction
from django.db.models.signals import post_save

from .conf import conf
from .recovery import on_worker_ready
from .services import source_images_sync


def _product_saved(sender, instance, raw=False, **kwargs) -> None:
    if raw:  # loaddata: the files may not be there yet
        return
    transaction.on_commit(lambda: source_images_sync(product=instance))


def connect() -> None:
    post_save.connect(_product_saved, sender=conf.product_model(), dispatch_uid="styletransfer")
    worker_ready.connect(on_worker_ready, dispatch_uid="styletransfer-recovery")
