"""Who is shopping: the session's or the account's shopper, merging, and forgetting."""

from django.contrib.auth.signals import user_logged_in
from django.db import transaction
from django.http import HttpRequest

from .models import Decision, Event, Shopper, ShopperProfile

SESSION_KEY = "stylerec_shopper"


def shopper_for_request(request: HttpRequest) -> Shopper:
    """The request's shopper: the account's, or the session's (created on first visit)."""
    cached = getattr(request, "_stylerec_shopper", None)
    if cached is not None:
        return cached
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        shopper, _ = Shopper.objects.get_or_create(user=user)
    else:
        shopper = Shopper.objects.filter(pk=request.session.get(SESSION_KEY)).first()
        if shopper is None or shopper.user_id is not None:
            shopper = Shopper.objects.create()
            request.session[SESSION_KEY] = shopper.pk
    request._stylerec_shopper = shopper
    return shopper


def shopper_for_user(user) -> Shopper:
    shopper, _ = Shopper.objects.get_or_create(user=user)
    return shopper


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
    return target


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


def _merge_on_login(sender, request, user, **kwargs) -> None:
    if request is None or not hasattr(request, "session"):
        return
    anonymous = Shopper.objects.filter(pk=request.session.get(SESSION_KEY), user=None).first()
    if anonymous is not None:
        shopper_merge(source=anonymous, target=shopper_for_user(user))
    request.session.pop(SESSION_KEY, None)
    request._stylerec_shopper = None


def connect() -> None:
    user_logged_in.connect(_merge_on_login, dispatch_uid="stylerec-merge")
