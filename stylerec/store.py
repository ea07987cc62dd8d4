"""The fitted model as the request path reads it: cached, never fitted here."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np
from django.core.cache import caches

from .conf import conf
from .models import LoopSettings, PreferenceModel, ShopperProfile

MODEL_KEY = "stylerec:model"
MODEL_VERSION_KEY = "stylerec:model-version"
SETTINGS_KEY = "stylerec:settings"
NO_PROFILE = b""

_local = threading.local()
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    version: str
    space: object  # stylerec.ml.space.StyleSpace
    population: object  # stylerec.ml.preferences.Preference
    noise_var: float


def _cache():
    return caches[conf.CACHE_ALIAS]


def prefetch(shopper_id: int, extra_keys=()) -> dict:
    """One cache round trip for what a personalized page reads: the loop's settings, the
    active styles, the model's version, the shopper's preference, and `extra_keys` (other
    caches' entries on the same alias). Pass the result to loop_settings, active_styles,
    current_model and shopper_preference."""
    keys = [SETTINGS_KEY, STYLES_KEY, MODEL_VERSION_KEY, _preference_key(shopper_id), *extra_keys]
    try:
        return _cache().get_many(keys)
    except Exception:  # a cache outage slows pages down; it must not break them
        logger.warning("Cache unreadable", exc_info=True)
        return {}


def current_model(found: dict | None = None) -> LoadedModel | None:
    """The latest full fit, decoded once per process and version: a warm page reads only its
    version from the cache (`found`, from prefetch, saves that round trip too)."""
    version = (found if found is not None else {}).get(MODEL_VERSION_KEY)
    if version is None:
        version = _cache().get(MODEL_VERSION_KEY)
    loaded = getattr(_local, "model", None)
    if loaded is not None and version is not None and loaded.version == version:
        return loaded
    payload = _cache().get(MODEL_KEY)
    if payload is None:
        row = PreferenceModel.objects.filter(incremental=False).order_by("-created_at").first()
        if row is None:
            return None
        payload = {"version": row.version, **row.payload}
        _cache().set(MODEL_KEY, payload, conf.CACHE_TIMEOUT)
    _cache().set(MODEL_VERSION_KEY, payload["version"], conf.CACHE_TIMEOUT)
    if loaded is None or loaded.version != payload["version"]:
        from .ml.preferences import Preference
        from .ml.space import StyleSpace

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


def shopper_preference(model: LoadedModel, shopper_id: int, found: dict | None = None):
    """The shopper's fitted preference, or the population's for a shopper not fitted yet."""
    from .ml.preferences import Preference

    key = _preference_key(shopper_id)
    cached = (found if found is not None else {}).get(key)
    if cached is None:
        cached = _cache().get(key)
    if cached is not None and cached[0] == model.version:
        data = cached[1]
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
    _cache().set(_preference_key(shopper_id), (model_version, data), conf.CACHE_TIMEOUT)


STYLES_KEY = "stylerec:styles"


@dataclass(frozen=True)
class ActiveStyle:
    """What the request path needs of a style; the embedding itself stays in the database."""

    pk: int
    slug: str
    version: int
    params_hash: str
    embedding_hash: str


def active_styles(found: dict | None = None) -> list[ActiveStyle]:
    """Active styles with an embedding, cached until a style is saved or deleted."""
    styles = (found if found is not None else {}).get(STYLES_KEY)
    if styles is None:
        styles = _cache().get(STYLES_KEY)
    if styles is None:
        from styletransfer.models import Style

        rows = (
            Style.objects.filter(active=True)
            .exclude(embedding__isnull=True)
            .order_by("pk")
            .values_list("pk", "slug", "version", "params_hash", "embedding_hash")
        )
        styles = [ActiveStyle(*row) for row in rows]
        _cache().set(STYLES_KEY, styles, conf.CACHE_TIMEOUT)
    return styles


def styles_changed(**kwargs) -> None:
    _cache().delete(STYLES_KEY)


def loop_settings(found: dict | None = None) -> LoopSettings:
    settings = (found if found is not None else {}).get(SETTINGS_KEY)
    if settings is None:
        settings = _cache().get(SETTINGS_KEY)
    if settings is None:
        settings = LoopSettings.objects.first() or LoopSettings(
            policy=conf.POLICY,
            uniform_share=conf.UNIFORM_SHARE,
            exploration_strength=conf.EXPLORATION_STRENGTH,
        )
        _cache().set(SETTINGS_KEY, settings, conf.CACHE_TIMEOUT)
    return settings


def loop_settings_changed() -> None:
    _cache().delete(SETTINGS_KEY)


def arm_table(model: LoadedModel, styles) -> np.ndarray:
    """Arm features: row 0 the original, then one row per style (all with embeddings)."""
    key = (model.version, tuple((s.pk, s.embedding_hash) for s in styles))
    cached = getattr(_local, "arms", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    from styletransfer.models import Style

    by_pk = dict(Style.objects.filter(pk__in=[s.pk for s in styles]).values_list("pk", "embedding"))
    embeddings = np.asarray([by_pk[s.pk] for s in styles], dtype=np.float64)
    if len(styles):
        table = model.space.arm_features(embeddings)
    else:
        table = model.space.original_features()[None, :]
    _local.arms = (key, table)
    return table
