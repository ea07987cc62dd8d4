"""The request path: choose an image per product for a shopper, and log each decision."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from django.core.files.storage import default_storage
from django.db import connection, transaction

from styletransfer import selectors as rendition_selectors
from styletransfer import services as rendition_services
from styletransfer.conf import conf as styletransfer_conf
from styletransfer.models import Rendition, Style

from . import store
from .models import Decision, Shopper

logger = logging.getLogger(__name__)
ORIGINAL = Decision.ORIGINAL
_rng = np.random.default_rng()


@dataclass(frozen=True)
class Shown:
    """What a shopper sees for one product: the image and the decision behind it."""

    product_pk: object
    url: str
    style: str  # style slug, or "original"
    decision_id: int | None
    width: int | None = None
    height: int | None = None


def choose_images(*, shopper: Shopper | None, products, context: dict | None = None) -> dict:
    """Shown per product pk, one decision per product. Originals when personalization is off,
    for shoppers who asked for originals, and for products with no ready rendition yet."""
    products = list(products)
    if not products:
        return {}
    settings = store.loop_settings()
    if shopper is None or shopper.originals_only or not settings.personalization_enabled:
        return {p.pk: _original(p) for p in products}
    styles = store.active_styles()
    sources = rendition_selectors.source_images_for(products)
    ready = _ready_and_request_missing(sources, styles)
    return _decide(shopper, products, styles, sources, ready, settings, context or {})


def _original(product, decision_id: int | None = None) -> Shown:
    image = styletransfer_conf.product_images(product)
    return Shown(product.pk, image[0].url if image else "", ORIGINAL, decision_id)


@dataclass(frozen=True)
class ReadyRendition:
    file: str
    width: int | None
    height: int | None


def _ready_and_request_missing(sources: dict, styles: list) -> dict:
    """Ready renditions by (hash, style id); renditions never requested are requested now."""
    if not styles or not sources:
        return {}
    rows = Rendition.objects.filter(
        source_hash__in={s.content_hash for s in sources.values()},
        style__in=[s.pk for s in styles],
        style_version__in={s.version for s in styles},
    ).values_list(
        "source_hash",
        "style_id",
        "style_version",
        "params_hash",
        "status",
        "file",
        "width",
        "height",
    )
    existing = {(row[0], row[1], row[2]): row for row in rows}
    ready, missing = {}, []
    for source in {s.content_hash: s for s in sources.values()}.values():
        for style in styles:
            row = existing.get((source.content_hash, style.pk, style.version))
            if row is None:
                missing.append((source, style.pk))
            elif row[4] == Rendition.Status.READY and row[3] == style.params_hash:
                ready[(source.content_hash, style.pk)] = ReadyRendition(row[5], row[6], row[7])
    if missing:
        _request_missing(missing)
    return ready


def _request_missing(missing: list) -> None:
    """Request renditions never asked for (one style query for all of them)."""
    try:
        by_pk = Style.objects.in_bulk({style_id for _, style_id in missing})
        for source, style_id in missing:
            if style_id in by_pk:
                rendition_services.rendition_request(source=source, style=by_pk[style_id])
    except Exception as exc:  # the page must render even if bookkeeping fails
        logger.warning("Could not request renditions: %s", exc)


def _decide(shopper, products, styles, sources, ready, settings, context) -> dict:
    from .ml.policy import ExplorationSettings, choose

    model = store.current_model()
    arms = [ORIGINAL] + [s.slug for s in styles]
    mask = np.zeros((len(products), len(arms)), dtype=bool)
    mask[:, 0] = True
    for row, product in enumerate(products):
        source = sources.get(product.pk)
        for column, style in enumerate(styles, start=1):
            mask[row, column] = source is not None and (source.content_hash, style.pk) in ready
    if model is None:  # before the first fit: explore uniformly, and say so in the log
        probabilities = mask / mask.sum(axis=1, keepdims=True)
        chosen = np.array([_rng.choice(len(arms), p=p) for p in probabilities])
        version, policy = "none", "uniform"
    else:
        exploration = ExplorationSettings(
            policy=settings.policy,
            uniform_share=settings.uniform_share,
            strength=settings.exploration_strength,
            draws=store.conf.THOMPSON_DRAWS,
        )
        preference = store.shopper_preference(model, shopper.pk)
        choice = choose(preference, store.arm_table(model, styles), mask, exploration, _rng)
        probabilities, chosen = choice.probabilities, choice.chosen
        version, policy = model.version, settings.policy
    decisions = [
        Decision(
            shopper=shopper,
            product_id=str(product.pk),
            candidates=[arms[a] for a in np.flatnonzero(mask[row])],
            probabilities=[
                round(float(probabilities[row, a]), 6) for a in np.flatnonzero(mask[row])
            ],
            chosen=arms[chosen[row]],
            chosen_style_id=styles[chosen[row] - 1].pk if chosen[row] else None,
            propensity=float(probabilities[row, chosen[row]]),
            model_version=version,
            policy=policy,
            context={**context, "category": _category(product)},
        )
        for row, product in enumerate(products)
    ]
    _insert_decisions(decisions)
    shown = {}
    for row, (product, decision) in enumerate(zip(products, decisions, strict=True)):
        if chosen[row] == 0:
            shown[product.pk] = _original(product, decision.pk)
            continue
        style = styles[chosen[row] - 1]
        rendition = ready[(sources[product.pk].content_hash, style.pk)]
        shown[product.pk] = Shown(
            product.pk,
            default_storage.url(rendition.file),
            style.slug,
            decision.pk,
            rendition.width,
            rendition.height,
        )
    return shown


def _insert_decisions(decisions: list[Decision]) -> None:
    """One INSERT per page. On PostgreSQL the commit does not wait for the disk: a crash may
    lose the last fraction of a second of decision logs, never corrupt them, and the page
    does not pay an fsync."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit = off")
        Decision.objects.bulk_create(decisions)


def _category(product) -> str:
    category = getattr(product, "category", None)
    return str(category) if category is not None else ""


def device_class(user_agent: str) -> str:
    agent = user_agent.lower()
    if "ipad" in agent or "tablet" in agent:
        return "tablet"
    if "mobi" in agent or "android" in agent or "iphone" in agent:
        return "mobile"
    return "desktop"
