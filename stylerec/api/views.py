"""API views: parse, call a service, answer."""

import logging

from django.contrib.auth import authenticate
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.openapi import AutoSchema
from rest_framework import status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import AuthenticationFailed, NotFound, ValidationError
from rest_framework.generics import ListAPIView, RetrieveAPIView
from rest_framework.parsers import JSONParser
from rest_framework.permissions import SAFE_METHODS, AllowAny, BasePermission, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from styletransfer.api.base import (
    Pagination,
    TokenAuthentication,
    app_schema,
    error_responses,
    extend_schema,
    parse_id,
)
from styletransfer.api.views import STAFF_TAG, StaffAPIMixin

from ..events import decisions_of, events_ingest
from ..loop_settings import loop_settings, loop_settings_update
from ..models import Dashboard
from ..serving.chooser import choose_images, device_class
from ..shoppers import (
    SESSION_KEY,
    existing_shopper,
    request_shopper,
    shopper_create_anonymous,
    shopper_export,
    shopper_forget,
    shopper_sign_in,
    shopper_sign_out,
)
from . import schema  # noqa: F401  (registers the schema of the shopper authentications)
from .authentication import (
    CsrfFreeSessionAuthentication,
    ShopperTokenAuthentication,
    shopper_token_in_header,
)
from .selectors import products_for_api, shopper_preferences
from .serializers import (
    AnonymousShopperSerializer,
    EventBatchSerializer,
    ExportSerializer,
    ForgetResultSerializer,
    IngestResultSerializer,
    LoopSettingsSerializer,
    PreferencesSerializer,
    ProductQuerySerializer,
    ShopperSerializer,
    ShopperUpdateSerializer,
    SignInResultSerializer,
    SignInSerializer,
    product_serializer,
)
from .throttling import ShopperScopedRateThrottle

logger = logging.getLogger(__name__)


class EventsView(APIView):
    """Batches of impressions, clicks, add-to-carts and purchases from web and apps."""

    schema = app_schema()
    authentication_classes = [
        ShopperTokenAuthentication,
        TokenAuthentication,
        CsrfFreeSessionAuthentication,
    ]
    permission_classes = [AllowAny]
    parser_classes = [JSONParser]  # the beacon and apps send JSON
    throttle_classes = [ShopperScopedRateThrottle]
    throttle_scope = "events"

    @extend_schema(
        request=EventBatchSerializer,
        responses={202: IngestResultSerializer, **error_responses(400, 401, 403, 415)},
        summary="Record a batch of shopper events",
    )
    def post(self, request):
        shopper = request_shopper(request)
        events = request.data.get("events") if isinstance(request.data, dict) else None
        # The serializer reports a malformed batch; this only gathers decisions to look up.
        ids = (
            [e.get("decision") for e in events if isinstance(e, dict)]
            if isinstance(events, list)
            else []
        )
        # As the serializer reads them: numbers, or digits in a string (as data-decision has them).
        ids = [parse_id(i) for i in ids if isinstance(i, int | str) and not isinstance(i, bool)]
        serializer = EventBatchSerializer(
            data=request.data,
            context={"decisions": decisions_of(shopper, [i for i in ids if i is not None])},
        )
        serializer.is_valid(raise_exception=True)
        result = events_ingest(
            shopper=shopper,
            events=[
                {
                    "kind": e["type"],
                    "decision": e.get("decision"),
                    "product_id": e["product"],
                    "occurred_at": e.get("ts"),
                    "value": e["value"],
                    "currency": e["currency"],
                }
                for e in serializer.validated_data["events"]
            ],
        )
        return Response(IngestResultSerializer(result).data, status=status.HTTP_202_ACCEPTED)


# --- Who is calling ----------------------------------------------------------------------------

SHOPPER_AUTHENTICATION = [ShopperTokenAuthentication, TokenAuthentication, SessionAuthentication]


class IsShopper(BasePermission):
    """A known shopper: an app token, an account, or a web session that has one."""

    message = "Identify the shopper: a shopper token, an account token or a session."

    def has_permission(self, request, view) -> bool:
        shopper = existing_shopper(request)
        if shopper is None:
            return False
        if request.method not in SAFE_METHODS and request.successful_authenticator is None:
            # An anonymous web session: CSRF applies to it as to a signed-in one.
            SessionAuthentication().enforce_csrf(request)
        request.shopper = shopper
        return True


class ShopperAPIView(APIView):
    schema = app_schema()
    authentication_classes = SHOPPER_AUTHENTICATION
    permission_classes = [IsShopper]
    parser_classes = [JSONParser]
    throttle_classes = [ShopperScopedRateThrottle]
    throttle_scope = "shoppers"


# --- Sign-in -----------------------------------------------------------------------------------


class AnonymousShopperView(APIView):
    """A fresh app install asks for a shopper of its own."""

    schema = app_schema()
    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [ShopperScopedRateThrottle]
    throttle_scope = "shoppers"

    @extend_schema(
        summary="Create an anonymous shopper for a fresh app install",
        request=None,
        responses={201: AnonymousShopperSerializer, **error_responses()},
    )
    def post(self, request) -> Response:
        shopper = shopper_create_anonymous()
        return Response(
            AnonymousShopperSerializer({"token": shopper.token, "shopper": shopper}).data,
            status=status.HTTP_201_CREATED,
        )


class SignInView(APIView):
    """An app signs a registered account in and merges its anonymous history into it."""

    schema = app_schema()
    authentication_classes = []
    permission_classes = [AllowAny]
    parser_classes = [JSONParser]
    throttle_classes = [ShopperScopedRateThrottle]
    throttle_scope = "shoppers"

    def get_authenticate_header(self, request) -> str:
        return "Token"  # what a successful sign-in hands out; makes a failed one a 401

    @extend_schema(
        summary="Sign in with an account; merges the install's anonymous shopper",
        request=SignInSerializer,
        responses={200: SignInResultSerializer, **error_responses(400, 401, 415)},
    )
    def post(self, request) -> Response:
        serializer = SignInSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        credentials = serializer.validated_data
        user = authenticate(
            request._request, username=credentials["username"], password=credentials["password"]
        )
        if user is None:
            raise AuthenticationFailed("Unable to sign in with these details.")
        result = shopper_sign_in(
            request=request._request,
            user=user,
            # The install's history joins the account: named in the body, or the Shopper
            # header the app has sent so far.
            anonymous_token=credentials.get("anonymous_token") or shopper_token_in_header(request),
        )
        return Response(SignInResultSerializer(result).data)


class SignOutView(APIView):
    """Revoke the account's API token."""

    schema = app_schema()
    authentication_classes = [TokenAuthentication]
    permission_classes = [IsAuthenticated]
    throttle_classes = [ShopperScopedRateThrottle]
    throttle_scope = "shoppers"

    @extend_schema(
        summary="Sign out: revoke the account's token",
        request=None,
        responses={204: None, **error_responses(401, 403)},
    )
    def post(self, request) -> Response:
        shopper_sign_out(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Products ----------------------------------------------------------------------------------


class ProductsPagination(Pagination):
    page_size = 24  # a storefront page


class ProductSchema(AutoSchema):
    """The product serializer is the shop's, named in settings: resolved when the schema is
    built, like the view resolves it per request."""

    def get_response_serializers(self) -> dict:
        return {200: product_serializer(), **error_responses(*self.view.error_codes)}


class ProductViewMixin:
    schema = ProductSchema()
    authentication_classes = SHOPPER_AUTHENTICATION
    permission_classes = [AllowAny]
    throttle_classes = [ShopperScopedRateThrottle]
    throttle_scope = "catalog"
    pagination_class = ProductsPagination
    shown: dict

    def get_serializer_class(self):
        return product_serializer()

    def get_serializer_context(self) -> dict:
        return {**super().get_serializer_context(), "shown": self.shown}

    def choose_for(self, products) -> None:
        """Choose the images with the storefront's chooser: app events join its decisions.
        If choosing fails, for whatever reason, the products come with their originals."""
        try:
            self.shown = choose_images(
                shopper=existing_shopper(self.request),
                products=products,
                context={
                    "device": device_class(self.request.headers.get("User-Agent", "")),
                    "channel": "api",
                },
            )
        except Exception:  # a catalogue answers with its photos even when personalization fails
            logger.exception("Could not personalize %d products; showing originals", len(products))
            self.shown = choose_images(shopper=None, products=products)


class ProductListView(ProductViewMixin, ListAPIView):
    """The catalogue, with each product's image chosen for the calling shopper."""

    error_codes = (400, 401, 404)

    @extend_schema(
        base=ProductSchema,
        summary="List products with personalized images",
        parameters=[ProductQuerySerializer],
    )
    def get(self, request, *args, **kwargs) -> Response:
        query = ProductQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        filters = {name: value for name, value in query.validated_data.items() if value}
        try:
            products = products_for_api(**filters)
            page = self.paginate_queryset(products)
        except (ValueError, TypeError, DjangoValidationError) as exc:
            raise ValidationError({"category": ["No such category."]}) from exc
        self.choose_for(page)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


class ProductDetailView(ProductViewMixin, RetrieveAPIView):
    """One product, with its image chosen for the calling shopper."""

    def get_object(self):
        products = products_for_api()
        try:
            pk = products.model._meta.pk
            value = pk.to_python(self.kwargs["pk"])
            pk.run_validators(value)  # the database's range for integer keys
            product = products.filter(pk=value).first()
        except (ValueError, TypeError, DjangoValidationError):
            product = None  # /products/abc/ (or a number no key can be) in a shop with integer keys
        if product is None:
            raise NotFound()
        return product

    error_codes = (401, 404)

    @extend_schema(base=ProductSchema, summary="One product with its personalized image")
    def get(self, request, *args, **kwargs) -> Response:
        product = self.get_object()
        self.choose_for([product])
        return Response(self.get_serializer(product).data)


# --- The shopper's own data --------------------------------------------------------------------


class MeView(ShopperAPIView):
    """The calling shopper: who they are, the original-photos switch, and forgetting them."""

    @extend_schema(
        summary="The calling shopper",
        responses={200: ShopperSerializer, **error_responses(401, 403)},
    )
    def get(self, request) -> Response:
        return Response(ShopperSerializer(request.shopper).data)

    @extend_schema(
        summary="Switch between personalized and original photos",
        request=ShopperUpdateSerializer,
        responses={200: ShopperSerializer, **error_responses(400, 401, 403, 415)},
    )
    def patch(self, request) -> Response:
        serializer = ShopperUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        shopper = request.shopper
        shopper.originals_only = serializer.validated_data["originals_only"]
        shopper.save(update_fields=["originals_only"])
        return Response(ShopperSerializer(shopper).data)

    @extend_schema(
        summary="Forget the shopper: events, decisions and profile are deleted",
        responses={200: ForgetResultSerializer, **error_responses(401, 403)},
    )
    def delete(self, request) -> Response:
        counts = shopper_forget(shopper=request.shopper)
        session = getattr(request._request, "session", None)
        if session is not None:
            session.pop(SESSION_KEY, None)
        return Response(ForgetResultSerializer(counts).data)


class PreferencesView(ShopperAPIView):
    """The shopper's style preferences, ranked, in words."""

    @extend_schema(
        summary="The shopper's style preferences, ranked with scores",
        responses={200: PreferencesSerializer, **error_responses(401, 403)},
    )
    def get(self, request) -> Response:
        return Response(PreferencesSerializer(shopper_preferences(shopper=request.shopper)).data)


class ExportView(ShopperAPIView):
    """Everything held about the shopper, as one JSON document."""

    @extend_schema(
        summary="Export all data held about the shopper",
        responses={200: ExportSerializer, **error_responses(401, 403)},
    )
    def get(self, request) -> Response:
        export = ExportSerializer(shopper_export(shopper=request.shopper)).data
        return Response(
            export,
            headers={"Content-Disposition": 'attachment; filename="stylerec-export.json"'},
        )


# --- Staff -------------------------------------------------------------------------------------


class LoopSettingsView(StaffAPIMixin, APIView):
    """The loop's live settings: staff read them; change_dashboard changes them, checked as the
    dashboard checks them (an invalid value is a 400 and leaves the live settings as they were)."""

    queryset = Dashboard.objects.all()  # StaffModelPermission: writing needs change_dashboard
    parser_classes = [JSONParser]

    @extend_schema(
        summary="The personalization loop's live settings",
        responses={200: LoopSettingsSerializer, **error_responses(401, 403)},
        tags=[STAFF_TAG],
    )
    def get(self, request) -> Response:
        return Response(LoopSettingsSerializer(loop_settings()).data)

    @extend_schema(
        summary="Change the loop's live settings (every process sees them on its next request)",
        request=LoopSettingsSerializer,
        responses={200: LoopSettingsSerializer, **error_responses(400, 401, 403, 415)},
        tags=[STAFF_TAG],
    )
    def patch(self, request) -> Response:
        serializer = LoopSettingsSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        try:
            saved = loop_settings_update(**serializer.validated_data)
        except ValueError as exc:
            raise ValidationError({"non_field_errors": [str(exc)]}) from exc
        return Response(LoopSettingsSerializer(saved).data)
