"""The request path: choose an image per product for a shopper, and log each decision."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from django.core.files.storage import DEFAULT_STORAGE_ALIAS, FileSystemStorage, storages
from django.core.signals import setting_changed
from django.dispatch import receiver

from styletransfer import shown as rendition_shown
from styletransfer.conf import conf as styletransfer_conf

from ..conf import conf
from ..loop_settings import exploration_settings, loop_settings
from ..models import Decision, Shopper
from .decision_log import DecisionRow, log_decisions
from .state import (
    PageState,
    active_styles,
    arm_table,
    current_model,
    page_state,
    shopper_preference,
)

logger = logging.getLogger(__name__)
ORIGINAL = Decision.ORIGINAL
_rng = np.random.default_rng()


def seed_sampling(seed: int) -> None:
    """Make this process's draws repeatable (the simulator's --seed); pages never call it."""
    global _rng
    _rng = np.random.default_rng(seed)


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
    if shopper is None or shopper.originals_only:
        return {p.pk: _original(p) for p in products}
    # A warm page reads everything it needs in one cache round trip and runs one query (the
    # decisions' INSERT): the loop's settings, the styles, the model's version, the shopper's
    # preference, and each product's image hash and ready renditions.
    lookup = rendition_shown.ProductLookup(products)
    same_cache = lookup.cache_alias == conf.CACHE_ALIAS
    page = page_state(shopper.pk, lookup.cache_keys if same_cache else None)
    settings = loop_settings(page.settings)
    if not settings.personalization_enabled:
        return {p.pk: _original(p) for p in products}
    styles = active_styles(page.styles)
    images = lookup.resolve(styles, page.rendition_entries)
    return _decide(shopper, products, styles, images, settings, context or {}, page)


def _original(product, decision_id: int | None = None) -> Shown:
    images = styletransfer_conf.product_images(product)
    url = _file_url(images[0].storage, images[0].name) if images and images[0] else ""
    return Shown(product.pk, url, ORIGINAL, decision_id)


def _decide(shopper, products, styles, images, settings, context, page: PageState) -> dict:
    # stylerec.ml: loaded by the first personalized page, not with the URLs.
    from ..ml.policy import choose

    model = current_model(page.model_version)
    arms = [ORIGINAL] + [s.slug for s in styles]
    pks = [product.pk for product in products]
    no_images = rendition_shown.NO_IMAGES
    ready = [images.get(pk, no_images).ready for pk in pks]
    # Plain Python around numpy: its per-element indexing costs more than the work.
    masks = [[True] + [style.pk in row for style in styles] for row in ready]
    mask = np.array(masks, dtype=bool)
    if model is None:  # before the first fit: explore uniformly, and say so in the log
        probabilities = mask / mask.sum(axis=1, keepdims=True)
        chosen = np.array([_rng.choice(len(arms), p=p) for p in probabilities])
        version, policy = "none", "uniform"
    else:
        exploration = exploration_settings(settings)
        preference = shopper_preference(model, shopper.pk, page.preference)
        choice = choose(preference, arm_table(model, styles), mask, exploration, _rng)
        probabilities, chosen = choice.probabilities, choice.chosen
        version, policy = model.version, settings.policy
    chosen, exact, rounded = (
        chosen.tolist(),
        probabilities.tolist(),
        np.round(probabilities, 6).tolist(),
    )
    rows = []
    for row, product in enumerate(products):
        columns = [a for a, candidate in enumerate(masks[row]) if candidate]
        arm = chosen[row]
        rows.append(
            DecisionRow(
                product_id=str(pks[row]),
                candidates=[arms[a] for a in columns],
                probabilities=[rounded[row][a] for a in columns],
                chosen=arms[arm],
                propensity=exact[row][arm],
                context={**context, "category": _category(product)},
            )
        )
    ids = log_decisions(shopper.pk, rows, model_version=version, policy=policy)
    shown = {}
    for row, (product, decision_id) in enumerate(zip(products, ids, strict=True)):
        arm = chosen[row]
        if arm == 0:
            shown[pks[row]] = _original(product, decision_id)
            continue
        style = styles[arm - 1]
        rendition = ready[row][style.pk]
        shown[pks[row]] = Shown(
            pks[row],
            _file_url(storages[DEFAULT_STORAGE_ALIAS], rendition.file),
            style.slug,
            decision_id,
            rendition.width,
            rendition.height,
        )
    return shown


# Local storages' URLs by (base URL, name), in each process until 50,000 are kept or the
# storage settings change.
_urls: dict[tuple, str] = {}


def _file_url(storage, name: str) -> str:
    """The stored file's URL. A local storage's URL is a pure function of the name, so it is
    kept; other storages may sign or expire their URLs, so they are asked every time."""
    if not isinstance(storage, FileSystemStorage):
        return storage.url(name)
    key = (storage.base_url, name)
    url = _urls.get(key)
    if url is None:
        if len(_urls) >= 50_000:
            _urls.clear()
        url = _urls[key] = storage.url(name)
    return url


@receiver(setting_changed)
def _storage_changed(*, setting, **kwargs) -> None:
    if setting in {"STORAGES", "MEDIA_URL", "MEDIA_ROOT"}:
        _urls.clear()


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
