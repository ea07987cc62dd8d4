"""The DRF pieces both apps' APIs share: token authentication, rate limits, pagination, strict
booleans, and what every error looks like in the OpenAPI schema."""

import logging

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse
from drf_spectacular.utils import extend_schema as spectacular_extend_schema
from rest_framework import authentication, exceptions, serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle as DRFScopedRateThrottle

logger = logging.getLogger(__name__)

# The largest id a database's bigint column holds: larger numbers are no object, not an error.
MAX_ID = 2**63 - 1


def parse_id(value: object) -> int | None:
    """`value` as an object id (1 to MAX_ID, digits only), or None when nothing can have it."""
    text = str(value)
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    number = int(text)
    return number if 1 <= number <= MAX_ID else None


# The apps' own limits per scope: a shop gets them without touching REST_FRAMEWORK, and a rate
# it names there (DEFAULT_THROTTLE_RATES, e.g. {"events": "600/min"}, None for none) wins.
DEFAULT_THROTTLE_RATES = {
    "events": "6000/min",  # a page's beacon batches, per shopper
    "catalog": "1200/min",  # products and styles, per shopper or IP
    "shoppers": "60/min",  # sign-in, tokens, a shopper's own data
    "staff": "120/min",
}


class ScopedRateThrottle(DRFScopedRateThrottle):
    """DRF's per-scope limits, counted in the cache, at the apps' own rates unless the shop
    names a scope's rate; while the cache is away, requests are let through (logged) rather
    than refused with a server error: limits protect, they must not take the shop down with
    the cache."""

    THROTTLE_RATES = DEFAULT_THROTTLE_RATES

    def get_rate(self) -> str | None:
        # Read at each request, so override_settings(REST_FRAMEWORK=...) applies.
        shop_rates = api_settings.DEFAULT_THROTTLE_RATES or {}
        if self.scope in shop_rates:
            return shop_rates[self.scope]
        return self.THROTTLE_RATES.get(self.scope)

    def allow_request(self, request, view) -> bool:
        try:
            return super().allow_request(request, view)
        except Exception as exc:  # redis-py, pymemcache... each raise their own types
            logger.warning("Rate limit not counted (cache unavailable): %s", exc)
            return True


def app_schema() -> AutoSchema:
    """The schema of a view of the apps: drf-spectacular's, whatever the shop's
    DEFAULT_SCHEMA_CLASS (DRF's own unless it changed it), so `manage.py spectacular` and the
    schema view describe the apps without a setting."""
    return AutoSchema()


def extend_schema(*, base: type[AutoSchema] = AutoSchema, **kwargs):
    """drf-spectacular's extend_schema for the apps' view methods: it would build on the
    shop's DEFAULT_SCHEMA_CLASS, read when the module is imported; this names `base` (the
    view's own schema class) instead, where the decorator looks first."""
    decorate = spectacular_extend_schema(**kwargs)

    def decorator(view_or_method):
        if not isinstance(view_or_method, type):
            own = getattr(view_or_method, "kwargs", None) or {}
            view_or_method.kwargs = {"schema": base, **own}
        return decorate(view_or_method)

    return decorator


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's `Authorization: Token <key>`; a key with a NUL is refused before PostgreSQL sees
    it (which would answer with an error, and the client with a 500)."""

    def authenticate_credentials(self, key: str):
        if "\x00" in key or len(key) > 128:
            raise exceptions.AuthenticationFailed("Invalid token.")
        return super().authenticate_credentials(key)


class Pagination(PageNumberPagination):
    """Pages of at most `max_page_size`; a page size out of range is refused, not guessed."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 100

    def get_page_size(self, request) -> int:
        value = request.query_params.get(self.page_size_query_param)
        if value is None:
            return self.page_size
        if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= self.max_page_size:
            raise serializers.ValidationError(
                {self.page_size_query_param: [f"A whole number from 1 to {self.max_page_size}."]}
            )
        return int(value)

    def get_page_number(self, request, paginator):
        value = request.query_params.get(self.page_query_param)
        if value is not None and not value.isdigit() and value not in self.last_page_strings:
            raise exceptions.NotFound(self.invalid_page_message)
        return super().get_page_number(request, paginator)

    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_query_param:
                parameter["schema"]["minimum"] = 1
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(minimum=1, maximum=self.max_page_size)
        return parameters


class StrictBooleanField(serializers.BooleanField):
    """true or false, also in a form: a 0, "yes" or "on" is a mistake, not a boolean."""

    def to_internal_value(self, data) -> bool:
        if isinstance(data, bool):
            return data
        if data in ("true", "True"):
            return True
        if data in ("false", "False"):
            return False
        self.fail("invalid", input=data)


class ErrorSerializer(serializers.Serializer):
    """Every error other than invalid input: one human-readable sentence."""

    detail = serializers.CharField()


ERRORS = {
    400: OpenApiResponse(
        OpenApiTypes.OBJECT,
        description=(
            "Invalid input: an object mapping each invalid field to its messages (nested like "
            "the request for lists and objects; `non_field_errors` for the body as a whole)."
        ),
    ),
    401: OpenApiResponse(ErrorSerializer, description="No credentials, or unknown ones."),
    403: OpenApiResponse(ErrorSerializer, description="Not allowed for these credentials."),
    404: OpenApiResponse(ErrorSerializer, description="No such object, or no such page."),
    409: OpenApiResponse(ErrorSerializer, description="Not possible in the object's state."),
    415: OpenApiResponse(ErrorSerializer, description="The body is in a media type not accepted."),
    429: OpenApiResponse(
        ErrorSerializer, description="Too many requests: wait the seconds in `Retry-After`."
    ),
}


def error_responses(*codes: int) -> dict[int, OpenApiResponse]:
    """The documented error answers of an operation; 429 applies to every throttled view."""
    return {code: ERRORS[code] for code in sorted({*codes, 429})}
