"""API views: parse, call a service, answer."""

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.authentication import TokenAuthentication
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from ..events import decisions_of, events_ingest
from ..models import Shopper
from ..shoppers import shopper_for_request, shopper_for_user
from .authentication import CsrfFreeSessionAuthentication, ShopperTokenAuthentication
from .serializers import EventBatchSerializer, IngestResultSerializer


def request_shopper(request) -> Shopper:
    """The calling shopper: token auth, account, or the web session (created if new)."""
    if isinstance(request.auth, Shopper):
        return request.auth
    if request.user and request.user.is_authenticated:
        return shopper_for_user(request.user)
    return shopper_for_request(request._request)


class EventsView(APIView):
    """Batches of impressions, clicks, add-to-carts and purchases from web and apps."""

    authentication_classes = [
        ShopperTokenAuthentication,
        TokenAuthentication,
        CsrfFreeSessionAuthentication,
    ]
    permission_classes = [AllowAny]
    throttle_scope = "events"

    @extend_schema(
        request=EventBatchSerializer,
        responses={202: IngestResultSerializer},
        summary="Record a batch of shopper events",
    )
    def post(self, request):
        shopper = request_shopper(request)
        events = request.data.get("events") if isinstance(request.data, dict) else None
        ids = [e.get("decision") for e in events or [] if isinstance(e, dict)]
        ids = [i for i in ids if isinstance(i, int) and not isinstance(i, bool)]
        serializer = EventBatchSerializer(
            data=request.data, context={"decisions": decisions_of(shopper, ids)}
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
                }
                for e in serializer.validated_data["events"]
            ],
        )
        return Response(IngestResultSerializer(result).data, status=status.HTTP_202_ACCEPTED)
