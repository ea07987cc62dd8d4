"""How the shopper authentications appear in the OpenAPI schema."""

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ShopperTokenScheme(OpenApiAuthenticationExtension):
    target_class = "stylerec.api.authentication.ShopperTokenAuthentication"
    name = "shopperToken"

    def get_security_definition(self, auto_schema) -> dict:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Shopper <token>` from POST /api/v1/shoppers/anonymous/.",
        }


class BeaconSessionScheme(OpenApiAuthenticationExtension):
    target_class = "stylerec.api.authentication.CsrfFreeSessionAuthentication"
    name = "beaconCookieAuth"

    def get_security_definition(self, auto_schema) -> dict:
        # The session cookie, without the CSRF header navigator.sendBeacon cannot send.
        return {"type": "apiKey", "in": "cookie", "name": settings.SESSION_COOKIE_NAME}
