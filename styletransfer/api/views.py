"""API views of styletransfer: parse, call a service or selector, answer."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from drf_spectacular.utils import extend_schema_view
from rest_framework import exceptions, mixins, permissions, serializers, status, viewsets
from rest_framework.authentication import SessionAuthentication
from rest_framework.decorators import action
from rest_framework.generics import ListAPIView
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import selectors, services
from ..models import Rendition, Style
from ..queues import queue_depths
from .base import (
    Pagination,
    ScopedRateThrottle,
    TokenAuthentication,
    app_schema,
    error_responses,
    extend_schema,
    parse_id,
)
from .serializers import (
    CatchUpSerializer,
    QueuedSerializer,
    RenderingHealthSerializer,
    RenditionFilterSerializer,
    RenditionSerializer,
    StaffStyleSerializer,
    StyleSerializer,
)

STAFF_TAG = "staff"


class StrictMultiPartParser(MultiPartParser):
    """A multipart body must hold at least one field or file: Django reads a malformed one
    as an empty form, which would pass for an empty edit."""

    def parse(self, stream, media_type=None, parser_context=None):
        parsed = super().parse(stream, media_type, parser_context)
        if not parsed.data and not parsed.files:
            raise exceptions.ParseError("The multipart body holds no fields.")
        return parsed


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "Not possible in the object's current state."
    default_code = "conflict"


class StaffModelPermission(permissions.IsAdminUser):
    """Staff may read; writing also needs the admin's add/change permission on the model,
    so the API grants exactly what the admin grants."""

    def has_permission(self, request, view) -> bool:
        if not super().has_permission(request, view):
            return False
        if request.method in permissions.SAFE_METHODS:
            return True
        queryset = getattr(view, "queryset", None)
        if queryset is None:  # a read-only view: writing methods end in 405
            return True
        meta = queryset.model._meta
        verb = "add" if getattr(view, "action", None) == "create" else "change"
        return request.user.has_perm(f"{meta.app_label}.{verb}_{meta.model_name}")


class StaffAPIMixin:
    schema = app_schema()
    authentication_classes = [TokenAuthentication, SessionAuthentication]
    permission_classes = [StaffModelPermission]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "staff"
    pagination_class = Pagination


class StyleListView(ListAPIView):
    """The active styles, for apps that show them (e.g. in a preferences screen)."""

    serializer_class = StyleSerializer
    schema = app_schema()
    authentication_classes = []
    permission_classes = [permissions.AllowAny]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "catalog"
    pagination_class = None

    def get_queryset(self):
        return Style.objects.filter(active=True).order_by("name", "pk")

    @extend_schema(summary="List the active styles", responses={200: StyleSerializer(many=True)})
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


def _style_saved(style: Style) -> Style:
    """style_save, with the model's own validation answered as field errors."""
    try:
        with transaction.atomic():
            return services.style_save(style=style)
    except DjangoValidationError as exc:
        detail = exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        raise serializers.ValidationError(detail) from exc
    except IntegrityError as exc:  # a concurrent create took the slug after validation
        raise serializers.ValidationError({"slug": ["A style with this slug exists."]}) from exc


@extend_schema_view(
    list=extend_schema(
        summary="List every style with its coverage",
        responses={200: StaffStyleSerializer, **error_responses(400, 401, 403, 404)},
    ),
    retrieve=extend_schema(
        summary="One style with its coverage",
        responses={200: StaffStyleSerializer, **error_responses(401, 403, 404)},
    ),
    create=extend_schema(
        summary="Create a style (multipart, with the reference image)",
        responses={201: StaffStyleSerializer, **error_responses(400, 401, 403, 415)},
    ),
    partial_update=extend_schema(
        summary="Edit a style; pixel changes start a new version",
        responses={200: StaffStyleSerializer, **error_responses(400, 401, 403, 404, 415)},
    ),
)
class StaffStyleViewSet(
    StaffAPIMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Style management for staff: what the admin does, for tools and scripts."""

    queryset = Style.objects.order_by("name", "pk")
    serializer_class = StaffStyleSerializer
    parser_classes = [StrictMultiPartParser, FormParser, JSONParser]
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_serializer_context(self) -> dict:
        return {**super().get_serializer_context(), "coverage": _CoverageOnDemand()}

    def perform_create(self, serializer) -> None:
        serializer.instance = _style_saved(Style(**serializer.validated_data))

    def perform_update(self, serializer) -> None:
        style = serializer.instance
        for field, value in serializer.validated_data.items():
            setattr(style, field, value)
        serializer.instance = _style_saved(style)

    def _answer(self, style: Style, code: int = status.HTTP_200_OK) -> Response:
        return Response(self.get_serializer(style).data, status=code)

    @extend_schema(
        summary="Activate: render the whole catalogue and show it to shoppers",
        request=None,
        responses={200: StaffStyleSerializer, **error_responses(401, 403, 404)},
    )
    @action(detail=True, methods=["post"])
    def activate(self, request, pk=None) -> Response:
        return self._answer(services.style_set_active(style=self.get_object(), active=True))

    @extend_schema(
        summary="Deactivate: stop showing the style",
        request=None,
        responses={200: StaffStyleSerializer, **error_responses(401, 403, 404)},
    )
    @action(detail=True, methods=["post"])
    def deactivate(self, request, pk=None) -> Response:
        return self._answer(services.style_set_active(style=self.get_object(), active=False))

    @extend_schema(
        summary="Render the style's failed renditions again",
        request=None,
        responses={202: QueuedSerializer, **error_responses(401, 403, 404)},
    )
    @action(detail=True, methods=["post"], url_path="retry-failed")
    def retry_failed(self, request, pk=None) -> Response:
        failed = Rendition.objects.filter(style=self.get_object(), status=Rendition.Status.FAILED)
        queued = 0
        for rendition in failed:
            services.rendition_retry(rendition=rendition)
            queued += 1
        return Response({"queued": queued}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="Request whatever active styles still miss (renders, embeddings)",
        request=None,
        responses={202: CatchUpSerializer, **error_responses(401, 403)},
    )
    @action(detail=False, methods=["post"], url_path="catch-up")
    def catch_up(self, request) -> Response:
        return Response(
            {"styles_behind": services.styles_catch_up()}, status=status.HTTP_202_ACCEPTED
        )

    def get_object(self) -> Style:
        # /styles/abc/ or /styles/99999999999999999999/ is a missing style, not a server error.
        if parse_id(self.kwargs.get(self.lookup_field)) is None:
            raise exceptions.NotFound()
        return super().get_object()


class _CoverageOnDemand(dict):
    """Coverage per style id, computed in one query for the styles first asked about."""

    def __missing__(self, style_id: int) -> dict:
        self.update(selectors.style_coverage(Style.objects.filter(pk=style_id)))
        return self[style_id]


@extend_schema_view(
    list=extend_schema(
        summary="List renditions (e.g. the failed ones, with their errors)",
        parameters=[RenditionFilterSerializer],
        responses={200: RenditionSerializer, **error_responses(400, 401, 403, 404)},
    ),
    retrieve=extend_schema(
        summary="One rendition",
        responses={200: RenditionSerializer, **error_responses(401, 403, 404)},
    ),
)
class RenditionViewSet(
    StaffAPIMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Renditions for staff: their state, and retrying failed ones."""

    queryset = Rendition.objects.select_related("style").order_by("-created_at", "-pk")
    serializer_class = RenditionSerializer

    def filter_queryset(self, queryset):
        query = RenditionFilterSerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        if query.validated_data.get("status"):
            queryset = queryset.filter(status=query.validated_data["status"])
        if query.validated_data.get("style"):
            queryset = queryset.filter(style_id=int(query.validated_data["style"]))
        return queryset

    def get_object(self) -> Rendition:
        if parse_id(self.kwargs.get(self.lookup_field)) is None:
            raise exceptions.NotFound()
        return super().get_object()

    @extend_schema(
        summary="Render a failed rendition again",
        request=None,
        responses={202: RenditionSerializer, **error_responses(401, 403, 404, 409)},
    )
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None) -> Response:
        rendition = self.get_object()
        if rendition.status != Rendition.Status.FAILED:
            raise Conflict("Only failed renditions can be retried.")
        services.rendition_retry(rendition=rendition)
        rendition.refresh_from_db()
        return Response(self.get_serializer(rendition).data, status=status.HTTP_202_ACCEPTED)


class RenderingHealthView(StaffAPIMixin, APIView):
    """Coverage per style, failures and the depth of the render queues."""

    @extend_schema(
        summary="Rendering health: coverage, failures, queue depth",
        responses={200: RenderingHealthSerializer, **error_responses(401, 403)},
        tags=[STAFF_TAG],
    )
    def get(self, request) -> Response:
        styles = list(Style.objects.order_by("name", "pk"))
        coverage = selectors.style_coverage(styles)
        health = {
            "catalog_size": selectors.catalog_size(),
            "queues": queue_depths(),
            "failed": sum(c["failed"] for c in coverage.values()),
            "styles": styles,
        }
        serializer = RenderingHealthSerializer(
            health, context={"request": request, "coverage": coverage}
        )
        return Response(serializer.data)
