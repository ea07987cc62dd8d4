"""Reads for the merchandiser's dashboard: how each style performs, and how the loop is doing."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.core.cache import caches
from django.db.models import Count, Exists, OuterRef, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from styletransfer.models import Style

from ..conf import conf
from ..fitting import evaluate_current
from ..models import Decision, Event, PreferenceModel, ShopperProfile

logger = logging.getLogger(__name__)

Z_95 = 1.959964
EVALUATION_KEY = "stylerec:dashboard:evaluation"
EVALUATION_TIMEOUT = 15 * 60
# Evaluating more logged decisions than this waits for staff to ask (it takes seconds).
EVALUATE_ON_VIEW_LIMIT = 200_000


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """95% interval of a rate from few trials that, unlike p ± 1.96·se, stays inside [0, 1]."""
    if trials <= 0:
        return 0.0, 1.0
    rate = successes / trials
    denominator = 1 + z * z / trials
    centre = (rate + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class StylePerformance:
    """One arm (a style, or the original photo) over a window of decisions."""

    style: str
    name: str
    decisions: int
    share: float  # of all decisions in the window
    impressions: int  # decisions whose image was seen
    clicks: int  # of those, clicked
    add_to_carts: int
    purchases: int

    @property
    def ctr(self) -> float | None:
        return self.clicks / self.impressions if self.impressions else None

    @property
    def ctr_interval(self) -> tuple[float, float]:
        return wilson_interval(self.clicks, self.impressions)


def _outcomes(decisions):
    """Decisions annotated with what followed them: seen, clicked, added to cart, bought."""

    def followed_by(kind: str) -> Exists:
        return Exists(Event.objects.filter(decision=OuterRef("pk"), kind=kind))

    return decisions.annotate(
        seen=followed_by(Event.Kind.IMPRESSION),
        clicked=followed_by(Event.Kind.CLICK),
        carted=followed_by(Event.Kind.ADD_TO_CART),
        bought=followed_by(Event.Kind.PURCHASE),
    )


def _counts() -> dict:
    return {
        "decisions": Count("id"),
        "impressions": Count("id", filter=Q(seen=True)),
        "clicks": Count("id", filter=Q(seen=True, clicked=True)),
        "add_to_carts": Count("id", filter=Q(carted=True)),
        "purchases": Count("id", filter=Q(bought=True)),
    }


def style_names() -> dict[str, str]:
    """Display name per arm, the original first, then styles by name."""
    names = {Decision.ORIGINAL: Decision.ORIGINAL_NAME}
    names.update(Style.objects.order_by("name", "pk").values_list("slug", "name"))
    return names


def style_performance(*, since: datetime) -> list[StylePerformance]:
    """Every arm decided on since `since`, with active styles listed even before any decision."""
    rows = {
        row["chosen"]: row
        for row in _outcomes(Decision.objects.filter(created_at__gte=since))
        .values("chosen")
        .annotate(**_counts())
    }
    names = style_names()
    active = Style.objects.filter(active=True).order_by("name", "pk")
    arms = [Decision.ORIGINAL, *active.values_list("slug", flat=True)]
    arms += sorted(set(rows) - set(arms))
    total = sum(row["decisions"] for row in rows.values())
    empty = dict.fromkeys(_counts(), 0)
    performance = []
    for arm in arms:
        row = rows.get(arm, empty)
        performance.append(
            StylePerformance(
                style=arm,
                name=names.get(arm, arm),
                decisions=row["decisions"],
                share=row["decisions"] / total if total else 0.0,
                impressions=row["impressions"],
                clicks=row["clicks"],
                add_to_carts=row["add_to_carts"],
                purchases=row["purchases"],
            )
        )
    return performance


@dataclass(frozen=True)
class DailySeries:
    """Per arm and day (oldest first): decisions, impressions and clicks."""

    days: list[date]
    decisions: dict[str, list[int]]
    impressions: dict[str, list[int]]
    clicks: dict[str, list[int]]


def daily_performance(*, since: datetime, arms: list[str]) -> DailySeries:
    today = timezone.localdate()
    first = timezone.localtime(since).date()
    days = [first + timedelta(days=n) for n in range((today - first).days + 1)]
    index = {day: n for n, day in enumerate(days)}
    series = {name: {arm: [0] * len(days) for arm in arms} for name in _counts()}
    rows = (
        _outcomes(Decision.objects.filter(created_at__gte=since))
        .annotate(day=TruncDate("created_at", tzinfo=timezone.get_current_timezone()))
        .values("day", "chosen")
        .annotate(**_counts())
    )
    for row in rows:
        if row["chosen"] in series["decisions"] and row["day"] in index:
            for name in ("decisions", "impressions", "clicks"):
                series[name][row["chosen"]][index[row["day"]]] = row[name]
    return DailySeries(days, series["decisions"], series["impressions"], series["clicks"])


def unattributed_rewards(*, since: datetime) -> int:
    """Add-to-carts and purchases that name no decision, so no style can take the credit."""
    return Event.objects.filter(
        occurred_at__gte=since,
        decision__isnull=True,
        kind__in=[Event.Kind.ADD_TO_CART, Event.Kind.PURCHASE],
    ).count()


def loop_health() -> dict:
    """The current fit, the fits before it, and how many shoppers have a profile."""
    fits = list(PreferenceModel.objects.filter(incremental=False).order_by("-created_at")[:10])
    current = fits[0] if fits else None
    profiles = 0
    last_update = None
    if current is not None:
        held = ShopperProfile.objects.filter(model_version=current.version)
        profiles = held.count()
        last_update = held.order_by("-updated_at").values_list("updated_at", flat=True).first()
    return {
        "model": current,
        "fits": fits,
        "profiles": profiles,
        "last_profile_update": last_update,
        "decisions_in_lookback": Decision.objects.filter(
            created_at__gte=timezone.now() - timedelta(days=conf.FIT_LOOKBACK_DAYS)
        ).count(),
    }


def evaluation_report(*, refresh: bool = False) -> dict | None:
    """The offline evaluation (stylerec.fitting.evaluate_current), cached for a while.

    Computed on a page view only while the logs are small; otherwise when staff ask.
    Returns {"report": ..., "at": datetime} or None (not computed), with "error" on failure.
    """
    cache = caches[conf.CACHE_ALIAS]
    cached = cache.get(EVALUATION_KEY)
    if cached is not None and not refresh:
        return cached
    if not refresh:
        recent = timezone.now() - timedelta(days=conf.FIT_LOOKBACK_DAYS)
        if Decision.objects.filter(created_at__gte=recent).count() > EVALUATE_ON_VIEW_LIMIT:
            return None
    try:
        result = {"report": evaluate_current(), "at": timezone.now()}
    except Exception as exc:  # a broken evaluation must not take the dashboard down
        logger.exception("Offline evaluation failed")
        return {"report": None, "at": timezone.now(), "error": str(exc)}
    cache.set(EVALUATION_KEY, result, EVALUATION_TIMEOUT)
    return result
