"""Who is shopping: anonymous and signed-in shoppers on the web and in apps, merging their
histories on sign-in, exporting and forgetting what is held about them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.contrib.auth.signals import user_logged_in
from django.db import IntegrityError, transaction
from django.http import HttpRequest

from .conf import conf
from .models import Decision, Event, Shopper, ShopperProfile
from .serving.state import assignments_forget

SESSION_KEY = "stylerec_shopper"


def request_is_tracked(request: HttpRequest) -> bool:
    """Whether this request's views count (STYLEREC's UNTRACKED_* and TRACK_STAFF): a
    crawler, an editor's preview or, where the shop says so, staff are no shoppers."""
    known = request.__dict__.get("_stylerec_tracked")
    if known is None:
        known = request.__dict__["_stylerec_tracked"] = _tracked(request)
    return known


def _tracked(request: HttpRequest) -> bool:
    agents = conf.UNTRACKED_USER_AGENTS
    if agents and re.search(agents, request.headers.get("User-Agent", ""), re.IGNORECASE):
        return False
    user = getattr(request, "user", None)
    if not conf.TRACK_STAFF and getattr(user, "is_staff", False):
        return False
    untracked = conf.UNTRACKED_REQUESTS
    return not (untracked and untracked(request))


def shopper_for_request(request: HttpRequest) -> Shopper:
    """The request's shopper: the account's, or the session's (created on first visit)."""
    cached = getattr(request, "_stylerec_shopper", None)
    if cached is not None:
        return cached
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        shopper, created = Shopper.objects.get_or_create(user=user)
        shopper.history_empty = created
    else:
        shopper = Shopper.objects.filter(pk=request.session.get(SESSION_KEY)).first()
        if shopper is None or shopper.user_id is not None:
            shopper = Shopper.objects.create()
            shopper.history_empty = True
            request.session[SESSION_KEY] = shopper.pk
    request._stylerec_shopper = shopper
    return shopper


def shopper_for_user(user) -> Shopper:
    shopper, _ = Shopper.objects.get_or_create(user=user)
    return shopper


def account_shopper(user) -> Shopper:
    """The account's shopper. Another request may create it, or forget it, in between:
    get_or_create then raises, and asking again settles it."""
    try:
        return shopper_for_user(user)
    except IntegrityError:
        return shopper_for_user(user)


def request_shopper(request) -> Shopper:
    """The API caller's shopper: token auth, account, or the web session (created if new)."""
    if isinstance(request.auth, Shopper):
        return request.auth
    if request.user and request.user.is_authenticated:
        return account_shopper(request.user)
    return shopper_for_request(request._request)


def existing_shopper(request) -> Shopper | None:
    """The API caller's shopper if there is one already; unlike request_shopper, never
    creates a session shopper, so clients without cookies do not leave a shopper per request."""
    if isinstance(request.auth, Shopper):
        return request.auth
    if request.user and request.user.is_authenticated:
        return account_shopper(request.user)
    session = getattr(request._request, "session", None)
    if session is not None and session.get(SESSION_KEY):
        return Shopper.objects.filter(pk=session[SESSION_KEY], user=None).first()
    return None


def shopper_create_anonymous() -> Shopper:
    """A shopper for a fresh app install; the app keeps its token until it signs in."""
    return Shopper.objects.create()


@dataclass(frozen=True)
class SignIn:
    token: str
    shopper: Shopper
    merged: bool


@transaction.atomic
def shopper_sign_in(*, request: HttpRequest, user, anonymous_token: str | None = None) -> SignIn:
    """Sign an account in from an app: an API token, and the install's history merged in.

    An unknown or already merged anonymous token is not an error, so a retried sign-in
    answers the same.
    """
    # rest_framework.authtoken: installed by shops whose apps sign in, needed by no one else.
    from rest_framework.authtoken.models import Token

    # Django's own bookkeeping (last_login) and stylerec's merge of a web session shopper.
    user_logged_in.send(sender=user.__class__, request=request, user=user)
    target = account_shopper(user)
    source = None
    if anonymous_token:
        source = Shopper.objects.filter(token=anonymous_token, user=None).first()
    if source is not None:
        target = shopper_merge(source=source, target=target)
    token, _ = Token.objects.get_or_create(user=user)
    return SignIn(token=token.key, shopper=target, merged=source is not None)


def shopper_sign_out(*, user) -> None:
    """Revoke the account's API token (every app signed in with it must sign in again)."""
    # rest_framework.authtoken: installed by shops whose apps sign in, needed by no one else.
    from rest_framework.authtoken.models import Token

    Token.objects.filter(user=user).delete()


@transaction.atomic
def shopper_merge(*, source: Shopper, target: Shopper) -> Shopper:
    """Move an anonymous shopper's history into `target` (sign-in on web or app)."""
    if source.pk == target.pk:
        return target
    Decision.objects.filter(shopper=source).update(shopper=target)
    # Events are unique per shopper; a duplicate of one the target already has is dropped.
    for event in Event.objects.filter(shopper=source):
        clash = Event.objects.filter(
            shopper=target,
            kind=event.kind,
            decision_id=event.decision_id,
            product_id=event.product_id,
            occurred_at=event.occurred_at,
        ).exists()
        if clash:
            event.delete()
        else:
            Event.objects.filter(pk=event.pk).update(shopper=target)
    if source.originals_only and not target.originals_only:
        target.originals_only = True
        target.save(update_fields=["originals_only"])
    ShopperProfile.objects.filter(shopper=source).delete()
    source.delete()
    assignments_forget(target.pk)  # the session's images stay: its decisions are the account's
    target.history_empty = False
    return target


def shopper_merge_session(*, request: HttpRequest, user) -> None:
    """On a web sign-in: the session's anonymous shopper is merged into the account's."""
    anonymous = Shopper.objects.filter(pk=request.session.get(SESSION_KEY), user=None).first()
    if anonymous is not None:
        shopper_merge(source=anonymous, target=account_shopper(user))
    request.session.pop(SESSION_KEY, None)
    request._stylerec_shopper = None


@transaction.atomic
def shopper_forget(*, shopper: Shopper) -> dict[str, int]:
    """Delete everything held about the shopper: events, decisions, profile, the shopper."""
    counts = {
        "events": Event.objects.filter(shopper=shopper).delete()[0],
        "decisions": Decision.objects.filter(shopper=shopper).delete()[0],
        "profiles": ShopperProfile.objects.filter(shopper=shopper).delete()[0],
    }
    shopper.delete()
    return counts


def shopper_export(*, shopper: Shopper) -> dict:
    """Everything stylerec holds about the shopper, in JSON-ready types."""
    profile = ShopperProfile.objects.filter(shopper=shopper).first()
    exported_profile = None
    if profile is not None:
        # stylerec.ml: not at start-up, where the login receiver imports this module.
        from .ml.preferences import Preference

        preference = Preference.from_bytes(bytes(profile.preference))
        exported_profile = {
            "model_version": profile.model_version,
            "decisions": profile.decisions,
            "updated_at": profile.updated_at,
            "preference_mean": [round(float(x), 6) for x in preference.mean],
            "preference_covariance": [[round(float(x), 6) for x in row] for row in preference.cov],
        }
    decisions = Decision.objects.filter(shopper=shopper).order_by("pk")
    events = Event.objects.filter(shopper=shopper).order_by("pk")
    return {
        "shopper": shopper,
        "profile": exported_profile,
        "decisions": decisions.values(
            "id",
            "product_id",
            "candidates",
            "probabilities",
            "chosen",
            "propensity",
            "model_version",
            "policy",
            "context",
            "created_at",
        ),
        "events": events.values(
            "id",
            "kind",
            "decision_id",
            "product_id",
            "style_slug",
            "occurred_at",
            "received_at",
            "source",
        ),
    }
