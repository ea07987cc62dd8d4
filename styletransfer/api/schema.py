"""What every API error looks like, for the OpenAPI schema (shared by the shop's API apps)."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


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
