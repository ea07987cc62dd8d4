"""Who calls the API: a registered account (token or session) or an anonymous shopper token."""

from rest_framework import authentication, exceptions

from ..models import Shopper

KEYWORD = "Shopper"


class AnonymousShopperUser:
    """Stands in for request.user when an app install calls with its shopper token."""

    is_authenticated = True
    is_staff = False
    is_superuser = False
    is_anonymous = False

    def __init__(self, shopper: Shopper):
        self.shopper = shopper
        self.pk = None

    def __str__(self) -> str:
        return f"anonymous shopper {self.shopper.pk}"


def shopper_token_in_header(request) -> str | None:
    """The token of `Authorization: Shopper <token>`, unchecked (sign-in merges it when it is
    still an anonymous shopper's, and answers the same when it is not), or None."""
    header = authentication.get_authorization_header(request).split()
    if len(header) != 2 or header[0].lower() != KEYWORD.lower().encode():
        return None
    token = header[1].decode(errors="replace")
    return token if len(token) <= 64 and "\x00" not in token else None


class ShopperTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Shopper <token>` from POST /api/v1/shoppers/anonymous/."""

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != KEYWORD.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Invalid shopper token header.")
        token = header[1].decode(errors="replace")
        if len(token) > 64 or "\x00" in token:  # cannot be one; PostgreSQL refuses NUL
            raise exceptions.AuthenticationFailed("Unknown shopper token.")
        shopper = Shopper.objects.filter(token=token, user=None).first()
        if shopper is None:
            raise exceptions.AuthenticationFailed("Unknown shopper token.")
        return AnonymousShopperUser(shopper), shopper

    def authenticate_header(self, request) -> str:
        return KEYWORD


class CsrfFreeSessionAuthentication(authentication.SessionAuthentication):
    """Session auth for the events beacon: navigator.sendBeacon cannot send a CSRF header.

    Safe here because session cookies are SameSite=Lax, so another site's POST arrives
    without them, and an event can only reference the caller's own decisions.
    """

    def enforce_csrf(self, request) -> None:
        return None
