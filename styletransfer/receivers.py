"""Receivers: keeping source images in step with the shop's products, and starting each render
worker's recovery loop (wired in apps.ready)."""

from celery.signals import worker_ready
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from .conf import conf
from .recovery import on_worker_ready
from .services import source_images_sync


def _product_saved(sender, instance, raw=False, **kwargs) -> None:
    if raw:  # loaddata: the files may not be there yet
        return
    transaction.on_commit(lambda: source_images_sync(product=instance))


def _product_image_changed(sender, instance, raw=False, **kwargs) -> None:
    """A photo saved in or deleted from the shop's image table (PRODUCT_IMAGE_MODEL): its
    product's images are hashed again, so a changed photo is rendered anew and the old one's
    renditions are never shown for it. Every model's saves pass by: one label compared."""
    if raw or sender._meta.label != conf.PRODUCT_IMAGE_MODEL:
        return
    product = conf.product_of_image(instance)
    if product is not None:
        transaction.on_commit(lambda: source_images_sync(product=product))


def connect() -> None:
    post_save.connect(_product_saved, sender=conf.product_model(), dispatch_uid="styletransfer")
    for signal in (post_save, post_delete):
        signal.connect(_product_image_changed, dispatch_uid=f"styletransfer-image-{id(signal)}")
    worker_ready.connect(on_worker_ready, dispatch_uid="styletransfer-recovery")
