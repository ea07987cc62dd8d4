"""Server-side tracking: clicks through to a product page (no JavaScript needed), and each
page's decisions written while it renders."""

import logging

from django.http import HttpRequest

from styletransfer.api.base import parse_id

from .events import record_server_event
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
