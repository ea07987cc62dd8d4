"""StyleRec: product photos in the visual style each shopper responds to, learnt from clicks.

`stylerec.track(request, kind, product, value=None, currency=None)` records an add-to-basket,
an order or another event from the shop's own views and signal receivers (README: "Recording
baskets and orders from your own code").
"""


def track(request, kind: str, product, *, value=None, currency=None) -> bool:
    """See stylerec.tracking.track; imported on first use so that importing stylerec loads no
    Django model before the apps are ready."""
    from .tracking import track as track_event

    return track_event(request, kind, product, value=value, currency=currency)
