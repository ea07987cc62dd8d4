"""Template tags a shop uses to show personalized images and track what shoppers see."""

from django import template
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from ..serving.chooser import choose_images, device_class
from ..shoppers import shopper_for_request
from ..tracking import CLICK_PARAM

register = template.Library()


def _shown_for(context, products) -> dict:
    request = context.get("request")
    if request is None:
        raise template.TemplateSyntaxError("stylerec tags need the request context processor.")
    cache = request.__dict__.setdefault("_stylerec_shown", {})
    missing = [p for p in products if p.pk not in cache]
    if missing:
        cache.update(
            choose_images(
                shopper=shopper_for_request(request),
                products=missing,
                context={"device": device_class(request.headers.get("User-Agent", ""))},
            )
        )
    return cache


@register.simple_tag(takes_context=True)
def personalize(context, products) -> str:
    """Choose for a whole list at once (one query set, one insert); optional but faster."""
    _shown_for(context, list(products))
    return ""


@register.simple_tag(takes_context=True)
def personalized_image(context, product, css_class: str = "", loading: str = "lazy") -> str:
    """<img> of the image chosen for this shopper, with the decision behind it."""
    shown = _shown_for(context, [product])[product.pk]
    return format_html(
        '<img src="{}" alt="{}" class="stylerec-image {}" loading="{}" data-product="{}" '
        'data-style="{}" data-decision="{}"{}>',
        shown.url,
        str(product),
        css_class,
        loading,
        product.pk,
        shown.style,
        shown.decision_id or "",
        format_html(' width="{}" height="{}"', shown.width, shown.height) if shown.width else "",
    )


@register.simple_tag(takes_context=True)
def personalized_url(context, product) -> str:
    """The product's URL carrying its decision, so a click through counts without JS."""
    url = product.get_absolute_url()
    shown = _shown_for(context, [product])[product.pk]
    if not shown.decision_id:
        return url
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}{CLICK_PARAM}={shown.decision_id}"


@register.inclusion_tag("stylerec/beacon.html", takes_context=True)
def stylerec_beacon(context) -> dict:
    """The tracking script: impressions of visible images, add-to-cart, batched beacons."""
    try:
        endpoint = reverse("stylerec-api:events")
    except NoReverseMatch:
        endpoint = "/api/v1/events/"
    return {"endpoint": endpoint}


@register.simple_tag(takes_context=True)
def stylerec_originals_only(context) -> bool:
    request = context.get("request")
    return bool(request and shopper_for_request(request).originals_only)
