"""What the request path reads: the fitted model, preferences and active styles, cached.

Nothing is fitted here. Lifetimes of what is kept:

- in the cache (`conf.CACHE_ALIAS`, `conf.CACHE_TIMEOUT`): the model's payload and version
  until the next full fit, each shopper's preference until it is fitted again (an entry of
  an older model version is ignored), the active styles until a style is saved or deleted,
  and the loop settings (`loop_settings`) until staff change them;
- in each thread: the decoded model until the cached version changes, and the arm table
  until the model version or an active style's embedding changes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.core.cache import caches

from styletransfer import invalidation
from styletransfer.models import Style

from ..conf import conf
from ..loop_settings import SETTINGS_KEY
from ..models import LoopSettings, PreferenceModel, ShopperProfile

MODEL_KEY = "stylerec:model"
MODEL_VERSION_KEY = "stylerec:model-version"
# The entry pickles ActiveStyle, whose module path is part of it: bump the key when it moves.
STYLES_KEY = "stylerec:styles:2"
NO_PROFILE = b""

_local = threading.local()
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    version: str
    space: object  # stylerec.ml.space.StyleSpace
    population: object  # stylerec.ml.preferences.Preference
    noise_var: float


@dataclass(frozen=True)
class ActiveStyle:
    """What the request path needs of a style; the embedding itself stays in the database."""

    pk: int
    slug: str
    version: int
    params_hash: str
    embedding_hash: str


@dataclass(frozen=True)
class PageState:
    """What one cache round trip found for a page; None where the cache had nothing (or was
    unreachable), and the readers below fall back to the database as on any miss."""

    shopper_id: int
    settings: LoopSettings | None
    styles: list[ActiveStyle] | None
    model_version: str | None
    preference: tuple[str, bytes] | None  # (model version, Preference bytes)
    rendition_entries: Mapping[str, Any] | None  # the values read for `extra_keys`
    # Product id -> Assignment found for the products asked for (stale epochs included).
    assignments: Mapping[str, Assignment] = field(default_factory=dict)
    # The epoch whose assignments of this shopper are all in the cache (assignments_remember).
    assigned_epoch: str | None = None


@dataclass(frozen=True)
class Assignment:
    """A shopper's current decision for a product: shown again on every view of its epoch."""

    epoch: str
    decision_id: int
    arm: str  # style slug, or "original"


def assignment_key(shopper_id: int, product_id: str) -> str:
    return f"stylerec:assign:{shopper_id}:{invalidation.key_id(str(product_id))}"


def _assigned_key(shopper_id: int) -> str:
    return f"stylerec:assigned:{shopper_id}"


def assignments_remember(
    shopper_id: int, assignments: Mapping[str, Assignment], *, complete: str | None = None
) -> None:
    """Keep a page's new assignments for its next views (one round trip); `complete`: the
    epoch whose assignments of this shopper the cache now holds all of, so that a product it
    does not hold is new to the shopper and needs no look in the decision log."""
    entries: dict[str, Any] = {assignment_key(shopper_id, pk): a for pk, a in assignments.items()}
    if complete is not None:
        entries[_assigned_key(shopper_id)] = complete
    if not entries:
        return
    try:
        _cache().set_many(entries, conf.CACHE_TIMEOUT)
    except Exception:  # the next view finds them in the database
        logger.warning("Assignments of shopper %s not cached", shopper_id, exc_info=True)


def page_state(
    shopper_id: int,
    extra_keys: Sequence[str] | None = None,
    product_ids: Sequence[str] = (),
) -> PageState:
    """Read what a personalized page needs in one round trip, with `extra_keys` (other
    caches' entries on the same alias, e.g. styletransfer's ProductLookup.cache_keys) and the
    shopper's assignments for `product_ids`."""
    preference_key = _preference_key(shopper_id)
    assignment_keys = {assignment_key(shopper_id, pk): pk for pk in product_ids}
    assigned_key = _assigned_key(shopper_id)
    keys = [
        assigned_key,
        SETTINGS_KEY,
        STYLES_KEY,
        MODEL_VERSION_KEY,
        preference_key,
        *(extra_keys or ()),
        *assignment_keys,
    ]
    try:
        found = _cache().get_many(keys)
    except Exception:  # a cache outage slows pages down; it must not break them
        logger.warning("Cache unreadable", exc_info=True)
        found = {}
    return PageState(
        shopper_id=shopper_id,
        settings=found.get(SETTINGS_KEY),
        styles=found.get(STYLES_KEY),
        model_version=found.get(MODEL_VERSION_KEY),
        preference=found.get(preference_key),
        rendition_entries=(
            None if extra_keys is None else {k: found[k] for k in extra_keys if k in found}
        ),
        assignments={
            pk: found[key]
            for key, pk in assignment_keys.items()
            if isinstance(found.get(key), Assignment)
        },
        assigned_epoch=found.get(assigned_key),
    )


def assignments_forget(shopper_id: int) -> None:
    """The shopper's history changed behind the cache (a merge moved decisions in): the next
    page looks in the decision log for what the cache does not hold."""
    try:
        _cache().delete(_assigned_key(shopper_id))
    except Exception:
        logger.warning("Assignments of shopper %s not forgotten", shopper_id, exc_info=True)


def _cache():
    return caches[conf.CACHE_ALIAS]


def cached(key: str) -> Any:
    """The cache's value at `key`, or None when it has none or cannot read it (down, or an
    entry pickled by an older release): the caller reads the database and writes it anew."""
    try:
        return _cache().get(key)
    except Exception:
        logger.warning("Cache entry %s unreadable", key, exc_info=True)
        return None


def remember(key: str, value: Any) -> None:
    """Keep `value` for the next page; a cache that is away only costs that page its speed."""
    try:
        _cache().set(key, value, conf.CACHE_TIMEOUT)
    except Exception:
        logger.warning("Cache entry %s not written", key, exc_info=True)


def current_model(version: str | None = None) -> LoadedModel | None:
    """The latest full fit, decoded once per thread and version: a warm page reads only its
    version from the cache (`version`, from page_state, saves that round trip too)."""
    if version is None:
        version = cached(MODEL_VERSION_KEY)
    loaded = getattr(_local, "model", None)
    if loaded is not None and version is not None and loaded.version == version:
        return loaded
    payload = cached(MODEL_KEY)
    if payload is None:
        row = PreferenceModel.objects.filter(incremental=False).order_by("-created_at").first()
        if row is None:
            return None
        payload = {"version": row.version, **row.payload}
        remember(MODEL_KEY, payload)
    remember(MODEL_VERSION_KEY, payload["version"])
    if loaded is None or loaded.version != payload["version"]:
        # stylerec.ml: not at start-up, where the admin imports this module.
        from ..ml.preferences import Preference
        from ..ml.space import StyleSpace

        loaded = LoadedModel(
            version=payload["version"],
            space=StyleSpace.from_dict(payload["space"]),
            population=Preference.from_dict(payload["population"]),
            noise_var=payload["noise_var"],
        )
        _local.model = loaded
    return loaded


def model_changed() -> None:
    _cache().delete_many([MODEL_KEY, MODEL_VERSION_KEY])


def _preference_key(shopper_id: int) -> str:
    return f"stylerec:pref:{shopper_id}"


def shopper_preference(
    model: LoadedModel, shopper_id: int, prefetched: tuple[str, bytes] | None = None
):
    """The shopper's fitted preference, or the population's for a shopper not fitted yet."""
    # stylerec.ml: not at start-up, where the admin imports this module.
    from ..ml.preferences import Preference

    entry = prefetched if prefetched is not None else cached(_preference_key(shopper_id))
    if entry is not None and entry[0] == model.version:
        data = entry[1]
    else:
        profile = (
            ShopperProfile.objects.filter(shopper_id=shopper_id, model_version=model.version)
            .values_list("preference", flat=True)
            .first()
        )
        data = bytes(profile) if profile is not None else NO_PROFILE
        preference_cached(model.version, shopper_id, data)
    if data == NO_PROFILE:
        return model.population
    return Preference.from_bytes(data)


def preference_cached(model_version: str, shopper_id: int, data: bytes) -> None:
    remember(_preference_key(shopper_id), (model_version, data))


def preferences_cached(model_version: str, preferences: Mapping[int, bytes]) -> None:
    """`preference_cached` for many shoppers in one round trip (a fit writing its profiles)."""
    entries = {_preference_key(pk): (model_version, data) for pk, data in preferences.items()}
    try:
        _cache().set_many(entries, conf.CACHE_TIMEOUT)
    except Exception:
        logger.warning("%s preferences not cached", len(entries), exc_info=True)


def active_styles(prefetched: list[ActiveStyle] | None = None) -> list[ActiveStyle]:
    """Active styles with an embedding, cached until a style is saved or deleted."""
    styles = prefetched if prefetched is not None else cached(STYLES_KEY)
    if styles is None:
        rows = (
            Style.objects.filter(active=True)
            .exclude(embedding__isnull=True)
            .order_by("pk")
            .values_list("pk", "slug", "version", "params_hash", "embedding_hash")
        )
        styles = [ActiveStyle(*row) for row in rows]
        remember(STYLES_KEY, styles)
    return styles


def styles_changed(**kwargs) -> None:
    _cache().delete(STYLES_KEY)


def arm_table(model: LoadedModel, styles) -> np.ndarray:
    """Arm features: row 0 the original, then one row per style (all with embeddings)."""
    key = (model.version, tuple((s.pk, s.embedding_hash) for s in styles))
    cached = getattr(_local, "arms", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    by_pk = dict(Style.objects.filter(pk__in=[s.pk for s in styles]).values_list("pk", "embedding"))
    embeddings = np.asarray([by_pk[s.pk] for s in styles], dtype=np.float64)
    if len(styles):
        table = model.space.arm_features(embeddings)
    else:
        table = model.space.original_features()[None, :]
    _local.arms = (key, table)
    return table
