"""Template tags a shop uses to show personalized images and track what shoppers see."""

import logging

from django import template
from django.db.models import Model
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from ..conf import conf
from ..serving.chooser import Shown, choose_images, device_class
from ..shoppers import request_is_tracked, shopper_for_request
from ..tracking import CLICK_PARAM, clicked_assignments

register = template.Library()
logger = logging.getLogger(__name__)


def _product(context, item):
    """`item` as the shop's product: search results and other wrappers holding it in
    `.object` are unwrapped; anything else is None, logged once per page and kind."""
    try:
        model = conf.product_model()
    except (LookupError, ValueError):  # named by the system checks; any model instance will do
        model = Model
    if isinstance(item, model):
        return item
    wrapped = getattr(item, "object", None)
    if isinstance(wrapped, model):
        return wrapped
    request = context.get("request")
    warned = request.__dict__.setdefault("_stylerec_warned", set()) if request else set()
    kind = type(item).__name__
    if kind not in warned:
        warned.add(kind)
        logger.warning("stylerec tags were given a %s, not a %s: left unpersonalized", kind, model)
    return None


def _shown_for(context, products) -> dict:
    request = context.get("request")
    if request is None:
        raise template.TemplateSyntaxError("stylerec tags need the request context processor.")
    cache = request.__dict__.setdefault("_stylerec_shown", {})
    missing = [p for p in products if p.pk not in cache]
    if missing and not request_is_tracked(request):  # a crawler, a preview: no decisions
        cache.update(_originals(missing))
    elif missing:
        try:
            cache.update(
                choose_images(
                    shopper=shopper_for_request(request),
                    products=missing,
                    context={"device": device_class(request.headers.get("User-Agent", ""))},
                    clicked=clicked_assignments(request),
                )
            )
        except Exception:  # a page shows its photos even when personalization fails
            logger.exception("Could not personalize %d products; showing originals", len(missing))
            cache.update(_originals(missing))
    return cache


def _originals(products) -> dict:
    try:
        return choose_images(shopper=None, products=products)
    except Exception:  # not even the photo's URL can be read: no image, and no error page
        logger.exception("Could not read the photos of %d products", len(products))
        return {p.pk: Shown(p.pk, "", "original", None) for p in products}


@register.simple_tag(takes_context=True)
def personalize(context, products) -> str:
    """Choose for a whole list at once (one query set, one insert); optional but faster."""
    found = [_product(context, item) for item in products or ()]
    _shown_for(context, [product for product in found if product is not None])
    return ""


@register.simple_tag(takes_context=True)
def personalized_image(context, product, css_class: str = "", loading: str = "lazy") -> str:
    """<img> of the image chosen for this shopper, with the decision behind it."""
    product = _product(context, product)
    if product is None:
        return ""
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
    product = _product(context, product)
    if product is None:
        return ""
    try:
        url = product.get_absolute_url()
    except Exception:  # no get_absolute_url, or one that cannot reverse: no link, no error
        logger.warning("%s has no URL: {%% personalized_url %%} left empty", type(product))
        return ""
    shown = _shown_for(context, [product])[product.pk]
    if not shown.decision_id:
        return url
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}{CLICK_PARAM}={shown.decision_id}"


@register.inclusion_tag("stylerec/beacon.html", takes_context=True)
def stylerec_beacon(context) -> dict:
    """The tracking script: impressions of visible images, add-to-cart, batched beacons."""
    request = context.get("request")
    if request is not None and not request_is_tracked(request):
        return {"endpoint": None}  # nothing to report: the page logged no decision
    try:
        endpoint = reverse("stylerec-api:events")
    except NoReverseMatch:
        endpoint = "/api/v1/events/"
    return {"endpoint": endpoint}


@register.simple_tag(takes_context=True)
def stylerec_originals_only(context) -> bool:
    request = context.get("request")
    if request is None or not request_is_tracked(request):
        return False  # no shopper is made for a crawler to ask
    return shopper_for_request(request).originals_only
