"""The OpenAPI schema of both apps: how the shopper authentications appear in it, and the
schema and Swagger UI views (mounted by stylerec.urls)."""

from django.apps import apps
from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.settings import patched_settings, spectacular_settings
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny

from styletransfer.api.base import ScopedRateThrottle, app_schema, extend_schema


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


# What the apps' schema says of itself; a key the shop sets in SPECTACULAR_SETTINGS wins.
SCHEMA_SETTINGS = {
    "TITLE": "StyleRec API",
    "DESCRIPTION": "Personalized product imagery for shops and their mobile apps.",
    "VERSION": "1.0.0",
    "SCHEMA_PATH_PREFIX": r"/api/v[0-9]+",
    # Uploads are binary in requests and URLs in responses: separate components for each.
    "COMPONENT_SPLIT_REQUEST": True,
}


def schema_settings() -> dict:
    """SCHEMA_SETTINGS less what the shop sets; Swagger UI from the sidecar package (offline)
    when the shop installed it, from drf-spectacular's CDN otherwise."""
    ours = dict(SCHEMA_SETTINGS)
    if apps.is_installed("drf_spectacular_sidecar"):
        ours.update(SWAGGER_UI_DIST="SIDECAR", SWAGGER_UI_FAVICON_HREF="SIDECAR")
    shop = getattr(settings, "SPECTACULAR_SETTINGS", None) or {}
    return {key: value for key, value in ours.items() if key not in shop}


class SchemaView(SpectacularAPIView):
    """The OpenAPI document, described in the apps' terms without any setting of the shop."""

    schema = app_schema()
    permission_classes = [AllowAny]  # the shop's defaults are for its own views
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "catalog"

    @extend_schema(exclude=True)
    def get(self, request, *args, **kwargs):
        self.custom_settings = schema_settings()
        return super().get(request, *args, **kwargs)


class SwaggerView(SpectacularSwaggerView):
    """Swagger UI over SchemaView."""

    schema = app_schema()
    permission_classes = [AllowAny]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "catalog"
    url_name = "stylerec-schema"

    @extend_schema(exclude=True)
    def get(self, request, *args, **kwargs):
        with patched_settings(schema_settings()):
            self.title = spectacular_settings.TITLE
            return super().get(request, *args, **kwargs)
