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
def personalized_image(
    context, product, css_class: str = "", loading: str = "lazy", width=None, sizes: str = ""
) -> str:
    """<img> of the image chosen for this shopper, with the decision behind it.

    `width` (px the page shows it at) picks the smallest stored width that covers it; with
    `width` or `sizes` (the HTML attribute) the tag adds a srcset of every stored width.
    """
    product = _product(context, product)
    if product is None:
        return ""
    shown = _shown_for(context, [product])[product.pk]
    url, size = shown.url, (shown.width, shown.height)
    responsive = ""
    wanted = _whole_number(width)
    if shown.srcset and (wanted or sizes):
        if wanted:
            chosen, url = next((e for e in shown.srcset if e[0] >= wanted), shown.srcset[-1])
            if shown.width and chosen != shown.width:
                size = (chosen, max(1, round(shown.height * chosen / shown.width)))
        responsive = format_html(
            ' srcset="{}" sizes="{}"',
            ", ".join(f"{u} {w}w" for w, u in shown.srcset),
            sizes or f"{wanted}px",
        )
    return format_html(
        '<img src="{}" alt="{}" class="stylerec-image {}" loading="{}" data-product="{}" '
        'data-style="{}" data-decision="{}"{}{}>',
        url,
        str(product),
        css_class,
        loading,
        product.pk,
        shown.style,
        shown.decision_id or "",
        responsive,
        format_html(' width="{}" height="{}"', *size) if size[0] else "",
    )


def _whole_number(value) -> int | None:
    """A template's width: 400 or "400"; anything else is no width (logged, never an error)."""
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        logger.warning("{%% personalized_image %%} width=%r is not a width in px", value)
        return None
    return number


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
