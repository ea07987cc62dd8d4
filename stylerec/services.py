"""Writes behind the API and the dashboard: app sign-in, and the live loop settings."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.signals import user_logged_in
from django.db import transaction
from django.http import HttpRequest

from . import store
from .models import LoopSettings, Shopper
from .shoppers import shopper_for_user, shopper_merge


@dataclass(frozen=True)
class SignIn:
    token: str
    shopper: Shopper
    merged: bool


def shopper_create_anonymous() -> Shopper:
    """A shopper for a fresh app install; the app keeps its token until it signs in."""
    return Shopper.objects.create()


@transaction.atomic
def shopper_sign_in(*, request: HttpRequest, user, anonymous_token: str | None = None) -> SignIn:
    """Sign an account in from an app: an API token, and the install's history merged in.

    An unknown or already merged anonymous token is not an error, so a retried sign-in
    answers the same.
    """
    from rest_framework.authtoken.models import Token

    # Django's own bookkeeping (last_login) and stylerec's merge of a web session shopper.
    user_logged_in.send(sender=user.__class__, request=request, user=user)
    target = shopper_for_user(user)
    source = None
    if anonymous_token:
        source = Shopper.objects.filter(token=anonymous_token, user=None).first()
    if source is not None:
        target = shopper_merge(source=source, target=target)
    token, _ = Token.objects.get_or_create(user=user)
    return SignIn(token=token.key, shopper=target, merged=source is not None)


def shopper_sign_out(*, user) -> None:
    """Revoke the account's API token (every app signed in with it must sign in again)."""
    from rest_framework.authtoken.models import Token

    Token.objects.filter(user=user).delete()


def loop_settings_update(
    *,
    personalization_enabled: bool | None = None,
    policy: str | None = None,
    uniform_share: float | None = None,
    exploration_strength: float | None = None,
) -> LoopSettings:
    """Change the live exploration settings; every process sees them on its next request.

    Raises ValueError for settings the policy cannot run with.
    """
    from .ml.policy import ExplorationSettings

    with transaction.atomic():
        current = store.loop_settings()
        settings = LoopSettings.objects.select_for_update().first() or LoopSettings(
            policy=current.policy,
            uniform_share=current.uniform_share,
            exploration_strength=current.exploration_strength,
        )
        changes = {
            "personalization_enabled": personalization_enabled,
            "policy": policy,
            "uniform_share": uniform_share,
            "exploration_strength": exploration_strength,
        }
        for field, value in changes.items():
            if value is not None:
                setattr(settings, field, value)
        ExplorationSettings(
            policy=settings.policy,
            uniform_share=settings.uniform_share,
            strength=settings.exploration_strength,
        )
        settings.save()
    store.loop_settings_changed()
    return settings
