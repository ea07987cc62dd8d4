"""Receivers: merge shoppers on login; refit and drop the cached styles when a style changes."""

import logging

from django.contrib.auth.signals import user_logged_in
from django.db.models.signals import post_delete, post_save

from styletransfer.models import Style
from styletransfer.signals import style_embedding_updated

from .serving.state import styles_changed
from .shoppers import shopper_merge_session
from .tasks import fit

logger = logging.getLogger(__name__)


def _merge_on_login(sender, request, user, **kwargs) -> None:
    if request is None or not hasattr(request, "session"):
        return
    shopper_merge_session(request=request, user=user)


def _refit_soon(sender, style, **kwargs) -> None:
    try:
        fit.apply_async(countdown=5, retry=False)
    except Exception as exc:  # celery beat refits later anyway
        logger.warning("Could not enqueue a refit after %s changed: %s", style, exc)


def connect() -> None:
    user_logged_in.connect(_merge_on_login, dispatch_uid="stylerec-merge")
    style_embedding_updated.connect(_refit_soon, dispatch_uid="stylerec-refit")
    # The chooser caches the active styles; any change to a style drops that cache.
    for signal in (post_save, post_delete, style_embedding_updated):
        signal.connect(styles_changed, sender=Style, dispatch_uid=f"stylerec-styles-{id(signal)}")
