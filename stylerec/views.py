"""Shopper-facing views: switching between personalized and original photos."""

from django.http import HttpRequest, HttpResponseRedirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from .shoppers import shopper_for_request


@require_POST
def originals(request: HttpRequest) -> HttpResponseRedirect:
    """Show me the original photos (on=1) or personalized ones again (on=0)."""
    shopper = shopper_for_request(request)
    shopper.originals_only = request.POST.get("on") == "1"
    shopper.save(update_fields=["originals_only"])
    target = request.POST.get("next") or "/"
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = "/"
    return HttpResponseRedirect(target)
