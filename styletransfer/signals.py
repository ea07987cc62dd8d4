"""Signals: keeping source images in step with the shop's products; embedding updates."""

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import Signal

from .conf import conf

# Sent with `style` when a style's embedding was (re)computed: recommenders can refit.
style_embedding_updated = Signal()


def _product_saved(sender, instance, raw=False, **kwargs) -> None:
    if raw:  # loaddata: the files may not be there yet
        return
    from .services import source_images_sync

    transaction.on_commit(lambda: source_images_sync(product=instance))


def connect() -> None:
    post_save.connect(_product_saved, sender=conf.product_model(), dispatch_uid="styletransfer")
