"""Receivers: merge shoppers on login; refit when a style's embedding changes."""

import logging

from styletransfer.signals import style_embedding_updated

from .shoppers import connect as connect_login

logger = logging.getLogger(__name__)


def _refit_soon(sender, style, **kwargs) -> None:
    from .tasks import fit

    try:
        fit.apply_async(countdown=5, retry=False)
    except Exception as exc:  # celery beat refits later anyway
        logger.warning("Could not enqueue a refit after %s changed: %s", style, exc)


def connect() -> None:
    from django.db.models.signals import post_delete, post_save

    from styletransfer.models import Style

    from .store import styles_changed

    connect_login()
    style_embedding_updated.connect(_refit_soon, dispatch_uid="stylerec-refit")
    # The chooser caches the active styles; any change to a style drops that cache.
    for signal in (post_save, post_delete, style_embedding_updated):
        signal.connect(styles_changed, sender=Style, dispatch_uid=f"stylerec-styles-{id(signal)}")
