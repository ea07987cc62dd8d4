"""Fitting preferences from the logs (worker side): full refits, incremental updates, evaluation.

Full refits and updates stream the log into per-shopper statistics (`logs`); evaluation
still reads its decisions whole (`load_logs`), with their candidates and propensities.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from django.db.models import Max
from django.utils import timezone

from styletransfer.models import Style

from ..conf import conf
from ..loop_settings import exploration_settings, loop_settings
from ..models import Event, PreferenceModel, ShopperProfile
from ..serving.state import LoadedModel, current_model, model_changed
from .logs import _decisions, context_levels, event_outcomes, stream_statistics
from .profiles import profiles_save

logger = logging.getLogger(__name__)
# A full fit caches the new profiles of the shoppers seen this recently: the likely next pages.
_CACHE_RECENT_SECONDS = 3600


@dataclass(frozen=True)
class Arms:
    """The arm table of a fit: row 0 the original, then styles by slug."""

    slugs: list[str]
    features: np.ndarray

    def index(self) -> dict[str, int]:
        return {slug: i for i, slug in enumerate(self.slugs)}


def _styles_with_embeddings() -> list[tuple[str, list[float]]]:
    return list(
        Style.objects.exclude(embedding__isnull=True)
        .order_by("pk")
        .values_list("slug", "embedding")
    )


def _seen(shoppers: np.ndarray, reward: np.ndarray, impressed: np.ndarray) -> np.ndarray:
    """Which decisions tell something about taste, as far as the logs say.

    A shopper whose client reports impressions (the beacon, an app) saw the images it reported
    or acted on; the rest were below the fold or on a page left at once, and counting them as
    "not clicked" drags every style towards zero. A shopper whose client never reports one (no
    JavaScript, an app without impressions) is judged on every image it was shown, once it has
    acted at all: a visitor with no event of any kind (a crawler, a bounce) says nothing about
    styles, and thousands of them would flatten the population every new shopper starts from.
    """
    acted = impressed | (reward > 0)
    active = np.isin(shoppers, np.unique(shoppers[acted]))
    reporting = np.isin(shoppers, np.unique(shoppers[impressed]))
    return active & (~reporting | acted)


def load_logs(arms: Arms, *, since, shopper_ids=None, with_candidates: bool = False) -> dict:
    """Decisions the shopper saw (`_seen`) as arrays: id, shopper, chosen arm, reward (and
    candidates, propensity)."""
    index = arms.index()
    decisions = _decisions(since, shopper_ids)
    fields = ["id", "shopper_id", "chosen"]
    if with_candidates:
        fields += ["candidates", "propensity"]
    rows = list(decisions.order_by("id").values_list(*fields).iterator(chunk_size=20_000))
    known = [row for row in rows if row[2] in index]
    if with_candidates:
        known = [row for row in known if all(c in index for c in row[3])]
    ids = np.fromiter((row[0] for row in known), dtype=np.int64, count=len(known))
    shoppers = np.fromiter((row[1] for row in known), dtype=np.int64, count=len(known))
    chosen = np.fromiter((index[row[2]] for row in known), dtype=np.int64, count=len(known))
    reward, impressed = event_outcomes(decisions, ids)
    seen = _seen(shoppers, reward, impressed)
    logs = {"id": ids[seen], "shopper": shoppers[seen], "arm": chosen[seen], "reward": reward[seen]}
    if with_candidates:
        mask = np.zeros((len(known), len(arms.slugs)), dtype=bool)
        for i, row in enumerate(known):
            mask[i, [index[c] for c in row[3]]] = True
        logs["candidates"] = mask[seen]
        logs["propensity"] = np.array([row[4] for row in known], dtype=np.float64)[seen]
    return logs


def preference_fit_full(*, with_context: bool = True) -> PreferenceModel | None:
    """Refit the style space, the population and every shopper; becomes the current model.

    Each decision counts in its context (category x device class) where that context is
    busy enough to model (`logs.context_levels`); with none, or `with_context=False` (the
    simulator's comparison), the fit is context-free.
    """
    # stylerec.ml: loaded by the worker when it fits, not at start-up.
    from ..ml.context import fit_context_preferences
    from ..ml.preferences import PreferenceFit
    from ..ml.space import StyleSpace

    started = time.perf_counter()
    styles = _styles_with_embeddings()
    if not styles:
        logger.info("No style has an embedding yet: nothing to fit.")
        return None
    embeddings = np.asarray([embedding for _, embedding in styles], dtype=np.float64)
    space = StyleSpace.fit(embeddings)
    arms = Arms(["original"] + [slug for slug, _ in styles], space.arm_features(embeddings))
    since = timezone.now() - timedelta(days=conf.FIT_LOOKBACK_DAYS)
    keys = context_levels(since=since) if with_context else []
    stats = stream_statistics(arms.slugs, keys, since=since)
    decisions = int(stats.count.sum())
    payload = {"space": space.to_dict()}
    if not stats.shoppers.size:
        fit = PreferenceFit.cold_start(space.n_features)
    elif keys:
        fit = fit_context_preferences(stats, arms.features, keys)
        payload["context_model"] = fit.hyperparameters()
    else:
        fit = _context_free_fit(stats, arms.features)
    del stats
    version = f"{timezone.now():%Y%m%d%H%M%S}-{uuid.uuid4().hex[:6]}"
    payload.update(population=fit.population.to_dict(), noise_var=float(fit.noise_var))
    model = PreferenceModel.objects.create(
        version=version,
        payload=payload,
        arms={slug: arms.features[i].tolist() for i, slug in enumerate(arms.slugs)},
        fit_seconds=0.0,
        shoppers=int(fit.shoppers.size),
        decisions=decisions,
    )
    recent = timezone.now() - timedelta(seconds=_CACHE_RECENT_SECONDS)
    profiles_save(fit=fit, version=version, cache_only=_shoppers_since(recent))
    model.fit_seconds = time.perf_counter() - started
    model.save(update_fields=["fit_seconds"])
    model_changed()
    logger.info(
        "Fitted %s: %s shoppers, %s decisions in %.2f s",
        version,
        model.shoppers,
        model.decisions,
        model.fit_seconds,
    )
    return model


def _shoppers_since(since) -> set[int]:
    """The shoppers seen since `since`, as many as the cache keeps, the latest first."""
    shoppers = _decisions(since).values("shopper_id").annotate(last=Max("created_at"))
    latest = shoppers.order_by("-last").values_list("shopper_id", flat=True)
    limit = _cache_capacity()
    return set(latest[:limit] if limit is not None else latest)


def _cache_capacity() -> int | None:
    """Half the entries of a cache that culls at MAX_ENTRIES (files, local memory, a table),
    None for one that does not (Redis): more would evict the fit's own entries and the rest
    of the shop's, and the file cache lists its folder on every write (bench/fit.py --from-db)."""
    from django.core.cache import caches
    from django.core.cache.backends.db import DatabaseCache
    from django.core.cache.backends.filebased import FileBasedCache
    from django.core.cache.backends.locmem import LocMemCache

    cache = caches[conf.CACHE_ALIAS]
    if isinstance(cache, FileBasedCache | LocMemCache | DatabaseCache):
        return max(cache._max_entries // 2, 1)
    return None


def _context_free_fit(stats, arm_features):
    from ..ml.em import fit_counts

    return fit_counts(
        stats.shoppers,
        stats.count.sum(axis=1),
        stats.reward.sum(axis=1),
        stats.reward_sq.sum(axis=1),
        arm_features,
    )


def preference_update_recent(*, minutes: int = 10) -> int:
    """Refit the shoppers active in the last minutes under the current population."""
    # stylerec.ml: loaded by the worker when it fits, not at start-up.
    from ..ml.context import ContextFit, refit_context_shoppers
    from ..ml.em import refit_counts

    model = current_model()
    if model is None:
        return 0
    recent = timezone.now() - timedelta(minutes=minutes)
    shopper_ids = list(
        Event.objects.filter(received_at__gte=recent)
        .values_list("shopper_id", flat=True)
        .distinct()
    )
    if not shopper_ids:
        return 0
    arms = current_arms(model)
    since = timezone.now() - timedelta(days=conf.FIT_LOOKBACK_DAYS)
    hyperparameters = (
        PreferenceModel.objects.filter(version=model.version)
        .values_list("payload__context_model", flat=True)
        .first()
    )
    keys = list(getattr(model.population, "keys", ()))
    stats = stream_statistics(arms.slugs, keys, since=since, shopper_ids=shopper_ids)
    if not stats.shoppers.size:
        return 0
    if hyperparameters:
        base = ContextFit.from_hyperparameters(
            model.version, model.population, model.noise_var, hyperparameters
        )
        update = refit_context_shoppers(base, stats, arms.features)
    else:
        update = refit_counts(
            base_fit(model),
            stats.shoppers,
            stats.count.sum(axis=1),
            stats.reward.sum(axis=1),
            stats.reward_sq.sum(axis=1),
            arms.features,
        )
    profiles_save(fit=update, version=model.version)
    return int(update.shoppers.size)


def current_arms(model: LoadedModel) -> Arms:
    """Arms for the current model's space, styles added since the fit included."""
    styles = _styles_with_embeddings()
    embeddings = np.asarray([embedding for _, embedding in styles], dtype=np.float64)
    features = (
        model.space.arm_features(embeddings) if styles else model.space.original_features()[None, :]
    )
    return Arms(["original"] + [slug for slug, _ in styles], features)


def base_fit(model: LoadedModel, *, with_shoppers: bool = False):
    """The PreferenceFit of the current model (population only, or with every profile)."""
    # stylerec.ml: loaded by the worker when it fits, not at start-up.
    from ..ml.preferences import Preference, PreferenceFit

    d = model.population.mean.size
    shoppers, means, covs, counts = [], [], [], []
    if with_shoppers:
        profiles = ShopperProfile.objects.filter(model_version=model.version).order_by("shopper_id")
        for shopper_id, data, decisions in profiles.values_list(
            "shopper_id", "preference", "decisions"
        ).iterator(chunk_size=20_000):
            preference = Preference.from_bytes(bytes(data))
            shoppers.append(shopper_id)
            means.append(preference.mean)
            covs.append(preference.cov)
            counts.append(decisions)
    return PreferenceFit(
        model.version,
        model.population,
        model.noise_var,
        np.asarray(shoppers, dtype=np.int64),
        np.asarray(means, dtype=np.float32).reshape(-1, d),
        np.asarray(covs, dtype=np.float32).reshape(-1, d, d),
        np.asarray(counts, dtype=np.float64),
    )


def evaluate_current(
    *, days: int | None = None, holdout: float = 0.3, seed: int = 0
) -> dict | None:
    """Offline estimates (IPS, SNIPS, DR) for current, greedy, uniform and single-style policies.

    The policies are fitted on the older decisions and scored on the newest `holdout`
    share, which they never saw: scoring a fit on its own training data flatters it.
    """
    # stylerec.ml: loaded by the worker when it fits, not at start-up.
    from ..ml.evaluate import LoggedDecisions, evaluate_holdout

    model = current_model()
    if model is None:
        return None
    arms = current_arms(model)
    since = timezone.now() - timedelta(days=days or conf.FIT_LOOKBACK_DAYS)
    logs = load_logs(arms, since=since, with_candidates=True)
    total = int(logs["id"].size)
    if total < 20:
        return {"decisions": total, "scored": 0, "version": model.version, "policies": {}}
    settings = loop_settings()
    newest = np.arange(total) >= int(round(total * (1 - holdout)))  # ids ascend with time
    report = evaluate_holdout(
        LoggedDecisions(
            logs["shopper"], logs["candidates"], logs["arm"], logs["propensity"], logs["reward"]
        ),
        newest,
        arms.features,
        exploration_settings(settings),
        np.random.default_rng(seed),
    )
    policies = {}
    for name, estimates in report.items():
        entry = estimates.to_dict()
        if entry.get("arm") is not None:
            entry["arm"] = arms.slugs[entry["arm"]]
        policies[name] = entry
    return {
        "decisions": total,
        "scored": int(newest.sum()),
        "version": model.version,
        "realised_reward": float(logs["reward"][newest].mean()),
        "policies": policies,
    }
