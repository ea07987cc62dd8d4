"""Reads for the API: the shop's products and a shopper's preferences in words."""

from __future__ import annotations

from functools import reduce
from operator import or_

import numpy as np
from django.db.models import Q, QuerySet

from styletransfer.conf import conf as styletransfer_conf
from styletransfer.models import Style

from ..conf import conf
from ..loop_settings import exploration_settings, loop_settings
from ..models import Decision, Shopper, ShopperProfile
from ..serving.state import arm_table, current_model, shopper_preference

# Below this many fitted decisions a shopper's taste is mostly the population's.
LEARNING_DECISIONS = 20


def products_for_api(*, category: str | None = None, search: str | None = None) -> QuerySet:
    """The shop's products in a stable order, filtered as STYLEREC's PRODUCT_* settings say.

    Raises ValueError (or Django's ValidationError) for a category the lookup cannot take.
    """
    products = styletransfer_conf.live_products()  # never an unpublished product
    if conf.PRODUCT_SELECT_RELATED:
        products = products.select_related(*conf.PRODUCT_SELECT_RELATED)
    if category and conf.PRODUCT_CATEGORY_LOOKUP:
        products = products.filter(**{conf.PRODUCT_CATEGORY_LOOKUP: category})
    if search and conf.PRODUCT_SEARCH_FIELDS:
        products = products.filter(
            reduce(
                or_, (Q(**{f"{field}__icontains": search}) for field in conf.PRODUCT_SEARCH_FIELDS)
            )
        )
    # Pages must not shift between requests: fall back to the primary key.
    ordering = list(products.query.order_by or products.model._meta.ordering or [])
    return products.order_by(*ordering, "pk") if "pk" not in ordering else products


def shopper_preferences(*, shopper: Shopper) -> dict:
    """The shopper's styles ranked by how they respond to them, in words and round numbers."""
    # stylerec.ml: loaded by the first request that needs it, not with the URLs.
    from ..ml.policy import page_probabilities

    model = current_model()
    styles = list(Style.objects.filter(active=True).exclude(embedding__isnull=True).order_by("pk"))
    profile = None
    if model is not None:
        profile = ShopperProfile.objects.filter(
            shopper=shopper, model_version=model.version
        ).first()
    decisions = int(round(profile.decisions)) if profile is not None else 0
    result = {
        "model_version": model.version if model is not None else None,
        "personalized": profile is not None,
        "decisions": decisions,
        "styles": [],
    }
    if model is None:
        result["summary"] = "We have not learnt anything about styles yet: check back later."
        return result
    arms = arm_table(model, styles)
    preference = shopper_preference(model, shopper.pk)
    mean = preference.scores(arms)
    cov = preference.cov.astype(np.float64)
    spread = np.sqrt(np.clip(np.einsum("ad,de,ae->a", arms, cov, arms), 0.0, None))
    versus_original = arms - arms[0]
    doubt = np.sqrt(
        np.clip(np.einsum("ad,de,ae->a", versus_original, cov, versus_original), 0.0, None)
    )
    settings = loop_settings()
    if shopper.originals_only or not settings.personalization_enabled:
        shown = np.eye(len(arms))[0]
    else:
        shown = page_probabilities(
            preference.mean[None],
            preference.cov[None],
            arms,
            np.ones((1, 1, len(arms)), dtype=bool),
            exploration_settings(settings, draws=1024),
            np.random.default_rng(shopper.pk),
        )[0, 0]
    names = [(Decision.ORIGINAL, Decision.ORIGINAL_NAME)] + [(s.slug, s.name) for s in styles]
    order = np.argsort(-mean, kind="stable")
    for rank, arm in enumerate(order, start=1):
        slug, name = names[arm]
        result["styles"].append(
            {
                "rank": rank,
                "style": slug,
                "name": name,
                "verdict": _verdict(rank, mean[arm] - mean[0], doubt[arm], slug),
                "engagement_per_100_views": round(100 * float(mean[arm]), 1),
                "uncertainty_per_100_views": round(100 * float(spread[arm]), 1),
                "shown_percent": round(100 * float(shown[arm]), 1),
            }
        )
    result["summary"] = _summary(result["styles"], decisions, profile is not None, shopper)
    return result


def _verdict(rank: int, lift: float, doubt: float, slug: str) -> str:
    if slug == Decision.ORIGINAL:
        return "the plain photo, for comparison"
    if lift > doubt:
        return "your favourite" if rank == 1 else "you like it more than plain photos"
    if lift < -doubt:
        return "you respond to it less than to plain photos"
    return "no clear preference yet"


def _summary(ranked: list[dict], decisions: int, personalized: bool, shopper: Shopper) -> str:
    top = [entry["name"] for entry in ranked[:2]]
    sentence = f"You respond most to {top[0]}" + (f", then {top[1]}." if len(top) > 1 else ".")
    if not personalized:
        sentence = (
            f"You are new here, so this is what shoppers in general respond to: {top[0]} first."
        )
    elif decisions < LEARNING_DECISIONS:
        sentence += f" We are still learning your taste ({decisions} images so far)."
    else:
        sentence += f" Based on {decisions} images you have seen."
    if shopper.originals_only:
        sentence += " You asked for original photos, so that is all you see."
    return sentence
