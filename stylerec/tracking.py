"""Server-side tracking: clicks through to a product page (no JavaScript needed), events a
shop records from its own views and signals (`track`), and each page's decisions written while
it renders."""

import logging

from django.http import HttpRequest

from styletransfer.api.base import parse_id

from .events import EventRejected, check_value, events_ingest, record_server_event
from .models import Decision, Event
from .serving import decision_log
from .serving.state import Assignment
from .shoppers import request_is_tracked, shopper_for_request

logger = logging.getLogger(__name__)
CLICK_PARAM = "sr"
CLICKED = "_stylerec_clicked"  # request attribute: product id -> the clicked link's Assignment


def clicked_assignments(request: HttpRequest) -> dict:
    """The decision of the personalized link this page was opened from, by product id: the
    page shows that image while it is still ready."""
    return request.__dict__.get(CLICKED, {})


def track(request: HttpRequest, kind: str, product, *, value=None, currency=None) -> bool:
    """Record what the shopper of `request` did with `product` (a product, or its pk), joined
    to the latest decision made for them and that product: e.g. `track(request, "purchase",
    product, value=order_line.total, currency="EUR")`. For the shop's own views and signal
    receivers; never raises into them: a refused or failed event is logged, and False returned.
    """
    try:
        if kind not in Event.Kind.values:
            raise EventRejected("kind", f"Unknown kind {kind!r}: one of {Event.Kind.values}.")
        product_id = str(getattr(product, "pk", product))
        amount, code = check_value(kind=kind, value=value, currency=currency)
        if not request_is_tracked(request):  # a crawler, a preview, staff: no shopper's event
            return False
        shopper = shopper_for_request(request)
        decision_id = (
            Decision.objects.filter(shopper=shopper, product_id=product_id)
            .order_by("-pk")
            .values_list("pk", flat=True)
            .first()
        )
        if decision_id is None and kind in (Event.Kind.IMPRESSION, Event.Kind.CLICK):
            raise EventRejected("decision", "No image was chosen for this shopper and product.")
        event = {"kind": kind, "product_id": product_id, "decision": decision_id}
        events_ingest(
            shopper=shopper,
            events=[{**event, "value": amount, "currency": code}],
            source="server",
        )
        return True
    except EventRejected as exc:
        logger.warning("stylerec.track(%r) refused: %s", kind, exc)
    except Exception:  # the shop's checkout must go on whatever happens here
        logger.exception("stylerec.track(%r) failed", kind)
    return False


class TrackingMiddleware:
    """Records a click when a page is opened from a personalized link (`?sr=<decision>`), with
    an impression (the shopper saw the image to click it), and lets the page's decisions be
    written while it renders (committed before it leaves)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        decision_id = parse_id(request.GET.get(CLICK_PARAM, ""))
        if request.method == "GET" and decision_id is not None and request_is_tracked(request):
            self._record(request, decision_id)
        with decision_log.deferred():
            return self.get_response(request)

    def _record(self, request: HttpRequest, decision_id: int) -> None:
        try:
            shopper = shopper_for_request(request)
            decision = (
                Decision.objects.filter(pk=decision_id, shopper=shopper)
                .only("id", "product_id", "chosen", "assignment")
                .first()
            )
            if decision is not None:
                request.__dict__[CLICKED] = {
                    decision.product_id: Assignment(
                        decision.assignment, decision.pk, decision.chosen
                    )
                }
                record_server_event(
                    shopper=shopper,
                    kinds=[Event.Kind.IMPRESSION, Event.Kind.CLICK],
                    product_id=decision.product_id,
                    decision_id=decision.pk,
                )
        except Exception:  # tracking must never break the page
            logger.exception("Could not record a click through")
