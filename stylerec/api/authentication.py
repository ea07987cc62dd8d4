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
