"""The request path: choose an image per product for a shopper, and log each decision."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
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
from .assignment import (
    CONTROL,
    assignment_epoch,
    assignment_uniform,
    drawn_arm,
    in_control_group,
)
from .decision_log import DecisionRow, log_decisions
from .state import (
    NO_PROFILE,
    Assignment,
    PageState,
    active_styles,
    arm_table,
    assignments_remember,
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
    # (width, URL) ascending, the largest being `url`, where the image exists at several
    # widths (STYLETRANSFER["WIDTHS"]); () when it has one.
    srcset: tuple = ()


def choose_images(
    *,
    shopper: Shopper | None,
    products,
    context: dict | None = None,
    clicked: Mapping[str, Assignment] | None = None,
) -> dict:
    """Shown per product pk, one decision per product and assignment epoch: a product shows the
    image drawn for this shopper on every view until the epoch changes (`assignment`), or the
    decision in `clicked` (product id -> the decision of the link the shopper followed) while
    its image is still ready. Originals when personalization is off, for shoppers who asked
    for originals, and for products with no ready rendition yet."""
    products = list(products)
    if not products:
        return {}
    if shopper is None or shopper.originals_only:
        return {p.pk: _original(p) for p in products}
    # A warm page reads everything it needs in one cache round trip, and a page seen before
    # runs no query: the loop's settings, the styles, the model's version, the shopper's
    # preference and assignments, and each product's image hash and ready renditions.
    lookup = rendition_shown.ProductLookup(products)
    same_cache = lookup.cache_alias == conf.CACHE_ALIAS
    product_ids = [str(p.pk) for p in products]
    page = page_state(shopper.pk, lookup.cache_keys if same_cache else None, product_ids)
    settings = loop_settings(page.settings)
    if not settings.personalization_enabled:
        return {p.pk: _original(p) for p in products}
    styles = active_styles(page.styles)
    images = lookup.resolve(styles, page.rendition_entries)
    page_products = _PageProducts(products, product_ids, styles, images)
    return _decide(shopper, page_products, settings, context or {}, page, clicked or {})


def _original(product, decision_id: int | None = None) -> Shown:
    images = styletransfer_conf.product_images(product)
    image = images[0] if images else None
    if image is None:
        return Shown(product.pk, "", ORIGINAL, decision_id)
    url = styletransfer_conf.original_url(image) or _file_url(image.storage, image.name)
    return Shown(
        product.pk, url, ORIGINAL, decision_id, srcset=styletransfer_conf.original_srcset(image)
    )


class _PageProducts:
    """A page's products with what each can show: the original, and its ready renditions."""

    def __init__(self, products: list, product_ids: list[str], styles: list, images) -> None:
        self.products = products
        self.ids = product_ids
        self.styles = styles
        self.arms = [ORIGINAL] + [s.slug for s in styles]
        no_images = rendition_shown.NO_IMAGES
        self.ready = [images.get(p.pk, no_images).ready for p in products]
        # Plain Python around numpy: its per-element indexing costs more than the work.
        self.masks = [[True] + [style.pk in row for style in styles] for row in self.ready]

    def can_show(self, row: int, arm: str) -> bool:
        try:
            return self.masks[row][self.arms.index(arm)]
        except ValueError:  # a style no longer active
            return False

    def shown(self, row: int, decision_id: int, arm: str) -> Shown:
        product = self.products[row]
        if arm == ORIGINAL:
            return _original(product, decision_id)
        style = self.styles[self.arms.index(arm) - 1]
        rendition = self.ready[row][style.pk]
        storage = storages[DEFAULT_STORAGE_ALIAS]
        url = _file_url(storage, rendition.file)
        srcset = ()
        if rendition.variants:
            srcset = (
                *((width, _file_url(storage, name)) for width, _, name in rendition.variants),
                (rendition.width, url),
            )
        return Shown(
            product.pk, url, style.slug, decision_id, rendition.width, rendition.height, srcset
        )


def _decide(shopper, page_products, settings, context, page: PageState, clicked) -> dict:
    model = current_model(page.model_version)
    version = model.version if model is not None else "none"
    control = in_control_group(shopper.pk)
    # The group is part of the epoch: a shopper moved between groups draws afresh.
    epoch = assignment_epoch(version) + (".control" if control else "")
    ids = page_products.ids
    held = _assignments(shopper, ids, epoch, page)
    kept: dict[int, Assignment] = {}
    for row, product_id in enumerate(ids):
        for assignment in (clicked.get(product_id), held.get(product_id)):
            if assignment is not None and page_products.can_show(row, assignment.arm):
                kept[row] = assignment
                break
    fresh = [row for row in range(len(ids)) if row not in kept]
    if fresh:
        drawn = _draw(
            shopper.pk,
            page_products,
            fresh,
            settings=settings,
            context=context,
            model=model,
            epoch=epoch,
            control=control,
            # A shopper created by this request has no profile: the population's.
            preference=(version, NO_PROFILE) if shopper.history_empty else page.preference,
        )
        kept.update(drawn)
        assignments_remember(
            shopper.pk,
            {ids[row]: drawn[row] for row in fresh},
            # A new shopper's assignments are all in the cache from here on.
            complete=epoch if shopper.history_empty else None,
        )
    return {
        product.pk: page_products.shown(row, kept[row].decision_id, kept[row].arm)
        for row, product in enumerate(page_products.products)
    }


def _assignments(shopper: Shopper, product_ids, epoch: str, page: PageState) -> dict:
    """The shopper's decisions of this epoch for these products: from the cache, and from the
    log for products the cache does not hold, unless the cache holds all of this epoch's (or
    the shopper is new)."""
    shopper_id = shopper.pk
    held = {pk: a for pk, a in page.assignments.items() if a.epoch == epoch}
    missing = [pk for pk in product_ids if pk not in held]
    if missing and page.assigned_epoch != epoch and not shopper.history_empty:
        found = {}
        rows = (
            Decision.objects.filter(shopper_id=shopper_id, assignment=epoch, product_id__in=missing)
            .order_by("pk")
            .values_list("product_id", "pk", "chosen")
        )
        for product_id, decision_id, arm in rows:  # the latest decision wins
            found[product_id] = Assignment(epoch, decision_id, arm)
        # The log has answered for this epoch: from now on, what the cache lacks is new.
        assignments_remember(shopper_id, found, complete=epoch)
        held.update(found)
    return held


def _draw(
    shopper_id: int,
    page_products: _PageProducts,
    rows: list[int],
    *,
    settings,
    context: dict,
    model,
    epoch: str,
    control: bool,
    preference,
) -> dict[int, Assignment]:
    """New decisions for these rows: the policy's probabilities, each inverted at the shopper's
    uniform for the product and epoch, logged, and returned as Assignments by row."""
    masks = [page_products.masks[row] for row in rows]
    if control:  # the control group: the original only, with certainty
        masks = [[True] + [False] * (len(m) - 1) for m in masks]
        probabilities, policy = np.array(masks, dtype=np.float64), CONTROL
    elif model is None:  # before the first fit: explore uniformly, and say so in the log
        mask = np.array(masks, dtype=bool)
        probabilities, policy = mask / mask.sum(axis=1, keepdims=True), "uniform"
    else:
        # stylerec.ml: loaded by the first personalized page, not with the URLs.
        from ..ml.policy import choose_in_contexts
        from ..ml.preferences import context_key

        exploration = exploration_settings(settings)
        preference = shopper_preference(model, shopper_id, preference)
        mask = np.array(masks, dtype=bool)
        arms = arm_table(model, page_products.styles)
        # Each product is scored in its context (category x device), as the fit saw it.
        device = context.get("device")
        contexts = [context_key(_category(page_products.products[r]), device) for r in rows]
        probabilities = choose_in_contexts(
            preference, model.population, arms, mask, contexts, exploration, _rng
        ).probabilities
        policy = settings.policy
    rounded = np.round(probabilities, 6).tolist()
    arms = page_products.arms
    decision_rows, chosen = [], []
    for position, row in enumerate(rows):
        product_id = page_products.ids[row]
        columns = [a for a, candidate in enumerate(masks[position]) if candidate]
        # The policy used is the logged one: rounded probabilities, inverted at the uniform.
        logged = [rounded[position][a] for a in columns]
        pick = drawn_arm(logged, assignment_uniform(shopper_id, product_id, epoch))
        chosen.append(arms[columns[pick]])
        decision_rows.append(
            DecisionRow(
                product_id=product_id,
                candidates=[arms[a] for a in columns],
                probabilities=logged,
                chosen=chosen[-1],
                propensity=logged[pick] / math.fsum(logged),
                context={**context, "category": _category(page_products.products[row])},
            )
        )
    version = model.version if model is not None else "none"
    ids = log_decisions(
        shopper_id, decision_rows, model_version=version, policy=policy, assignment=epoch
    )
    return {
        row: Assignment(epoch, decision_id, arm)
        for row, decision_id, arm in zip(rows, ids, chosen, strict=True)
    }


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
