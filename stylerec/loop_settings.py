"""The loop's live settings (one row staff change): read through the cache, written validated."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from django.core.cache import caches
from django.db import transaction

from .conf import conf
from .models import LoopSettings

if TYPE_CHECKING:
    from .ml.policy import ExplorationSettings

logger = logging.getLogger(__name__)
SETTINGS_KEY = "stylerec:settings"
FIELDS = ["personalization_enabled", "policy", "uniform_share", "exploration_strength"]


def loop_settings(prefetched: LoopSettings | None = None) -> LoopSettings:
    """The live settings; `prefetched`: the value a page already read for SETTINGS_KEY."""
    settings = prefetched
    cache = caches[conf.CACHE_ALIAS]
    if settings is None:
        try:
            settings = cache.get(SETTINGS_KEY)
        except Exception:  # down, or pickled by an older release: read the row instead
            logger.warning("Cache entry %s unreadable", SETTINGS_KEY, exc_info=True)
    if settings is None:
        settings = LoopSettings.objects.first() or _defaults()
        try:
            cache.set(SETTINGS_KEY, settings, conf.CACHE_TIMEOUT)
        except Exception:  # the next page reads the row again
            logger.warning("Cache entry %s not written", SETTINGS_KEY, exc_info=True)
    return settings


def loop_settings_changed() -> None:
    caches[conf.CACHE_ALIAS].delete(SETTINGS_KEY)


def _defaults() -> LoopSettings:
    """Before staff save anything: STYLEREC's POLICY, UNIFORM_SHARE and EXPLORATION_STRENGTH."""
    return LoopSettings(
        policy=conf.POLICY,
        uniform_share=conf.UNIFORM_SHARE,
        exploration_strength=conf.EXPLORATION_STRENGTH,
    )


def exploration_settings(
    settings: LoopSettings, *, draws: int | None = None
) -> ExplorationSettings:
    """The policy's view of the settings; raises ValueError for values it cannot run with."""
    # stylerec.ml: not at start-up, where the admin imports this module.
    from .ml.policy import ExplorationSettings

    for name in ("uniform_share", "exploration_strength"):
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{name} must be a number, not {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number")
    if not isinstance(settings.personalization_enabled, bool):
        raise ValueError("personalization_enabled must be true or false")

    return ExplorationSettings(
        policy=settings.policy,
        uniform_share=settings.uniform_share,
        strength=settings.exploration_strength,
        draws=conf.THOMPSON_DRAWS if draws is None else draws,
    )


def loop_settings_update(
    *,
    personalization_enabled: bool | None = None,
    policy: str | None = None,
    uniform_share: float | None = None,
    exploration_strength: float | None = None,
) -> LoopSettings:
    """Change the live exploration settings; every process sees them on its next request.

    Raises ValueError for settings the policy cannot run with.
    """
    changes: dict[str, Any] = {
        "personalization_enabled": personalization_enabled,
        "policy": policy,
        "uniform_share": uniform_share,
        "exploration_strength": exploration_strength,
    }  # the FIELDS staff change
    with transaction.atomic():
        settings = LoopSettings.objects.select_for_update().first() or _defaults()
        for field, value in changes.items():
            if value is not None:
                setattr(settings, field, value)
        exploration_settings(settings)
        settings.save()
    loop_settings_changed()
    return settings
