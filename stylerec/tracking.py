"""Server-side tracking: clicks through to a product page (no JavaScript needed), and each
page's decisions written while it renders."""

import logging

from django.http import HttpRequest

from styletransfer.api.base import parse_id

from .events import record_server_event
from .models import Decision, Event
from .serving import decision_log
from .shoppers import shopper_for_request

logger = logging.getLogger(__name__)
CLICK_PARAM = "sr"


class TrackingMiddleware:
    """Records a click when a page is opened from a personalized link (`?sr=<decision>`), and
    lets the page's decisions be written while it renders (committed before it leaves)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        decision_id = parse_id(request.GET.get(CLICK_PARAM, ""))
        if request.method == "GET" and decision_id is not None:
            self._record(request, decision_id)
        with decision_log.deferred():
            return self.get_response(request)

    def _record(self, request: HttpRequest, decision_id: int) -> None:
        try:
            shopper = shopper_for_request(request)
            decision = Decision.objects.filter(pk=decision_id, shopper=shopper).first()
            if decision is not None:
                record_server_event(
                    shopper=shopper,
                    kind=Event.Kind.CLICK,
                    product_id=decision.product_id,
                    decision_id=decision.pk,
                )
        except Exception:  # tracking must never break the page
            logger.exception("Could not record a click through")
