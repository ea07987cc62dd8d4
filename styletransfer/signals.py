"""Keeps source images (and so renditions) in step with the shop's product model."""

from django.db import transaction
from django.db.models.signals import post_save

from .conf import conf


def _product_saved(sender, instance, raw=False, **kwargs) -> None:
    if raw:  # loaddata: the files may not be there yet
        return
    from .services import source_images_sync

    transaction.on_commit(lambda: source_images_sync(product=instance))


def connect() -> None:
    post_save.connect(_product_saved, sender=conf.product_model(), dispatch_uid="styletransfer")
