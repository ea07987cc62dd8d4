"""Lift of personalized images over the control group, with honest 95% intervals.

The shopper is the unit of randomization (`serving.assignment.in_control_group`), so every
interval treats shoppers, not decisions, as the independent draws: a rate is the ratio of sums
over a group's shoppers and its variance the delta method's over shoppers (decisions of one
shopper are correlated: a keen clicker clicks everything). Counting decisions as independent
would make intervals too narrow and "significant" lifts out of noise
(tests/stylerec/test_lift.py checks the coverage on a world where nothing changes).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from decimal import Decimal

import numpy as np
from django.db.models import Count, Sum
from django.utils import timezone

from ..models import Decision, Event
from ..serving.assignment import CONTROL

Z_95 = 1.959963984540054
METRICS = ("click", "add_to_cart", "purchase")


@dataclass(frozen=True)
class Lift:
    """One metric, personalized minus control, with a 95% interval and relative lift."""

    metric: str
    personalized: float | None
    control: float | None
    difference: float | None
    low: float | None
    high: float | None
    relative: float | None  # personalized / control - 1
    relative_low: float | None
    relative_high: float | None

    @property
    def excludes_zero(self) -> bool:
        return self.low is not None and (self.low > 0 or self.high < 0)


@dataclass
class ShopperTotals:
    """Per shopper: decisions, and decisions followed by each kind of event; revenue."""

    decisions: np.ndarray  # (S,)
    outcomes: dict[str, np.ndarray]  # metric -> (S,)
    revenue: np.ndarray | None = None  # (S,) or None when no purchase carried a value


@dataclass(frozen=True)
class LiftReport:
    days: int | None
    shoppers: dict[str, int]  # group -> shoppers with a decision
    decisions: dict[str, int]
    lifts: list[Lift]
    per_style: list[dict] = field(default_factory=list)
    currency: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _ratio(totals: ShopperTotals, metric: str) -> tuple[float, float, int] | None:
    """Rate = sum(outcome) / sum(decisions) over shoppers, and its delta-method variance."""
    n, y = totals.decisions, totals.outcomes[metric]
    shoppers = len(n)
    if shoppers < 2 or n.sum() == 0:
        return None
    rate = y.sum() / n.sum()
    residual = y - rate * n
    variance = (residual**2).sum() / n.sum() ** 2 * shoppers / (shoppers - 1)
    return float(rate), float(variance), shoppers


def _mean(values: np.ndarray) -> tuple[float, float, int] | None:
    if len(values) < 2:
        return None
    return float(values.mean()), float(values.var(ddof=1) / len(values)), len(values)


def compare(metric: str, treated, control) -> Lift:
    """Difference and relative lift of two (estimate, variance, n) with 95% intervals."""
    if treated is None or control is None:
        value = treated[0] if treated else None
        return Lift(metric, value, control[0] if control else None, *([None] * 6))
    (a, var_a, _), (b, var_b, _) = treated, control
    half = Z_95 * math.sqrt(var_a + var_b)
    difference = a - b
    relative = relative_low = relative_high = None
    if b > 0 and a > 0:
        # On the log scale, where a ratio's interval is closer to symmetric.
        log_ratio = math.log(a / b)
        log_half = Z_95 * math.sqrt(var_a / a**2 + var_b / b**2)
        relative = a / b - 1
        relative_low = math.exp(log_ratio - log_half) - 1
        relative_high = math.exp(log_ratio + log_half) - 1
    return Lift(
        metric,
        a,
        b,
        difference,
        difference - half,
        difference + half,
        relative,
        relative_low,
        relative_high,
    )


def lifts(personalized: ShopperTotals, control: ShopperTotals) -> list[Lift]:
    """Rates per decision for each metric, and revenue per shopper when known."""
    found = [
        compare(f"{metric}_rate", _ratio(personalized, metric), _ratio(control, metric))
        for metric in METRICS
    ]
    if personalized.revenue is not None and control.revenue is not None:
        found.append(
            compare("revenue_per_shopper", _mean(personalized.revenue), _mean(control.revenue))
        )
    return found


# --- From the logs -----------------------------------------------------------------------------


def lift_report(*, days: int | None = 30) -> LiftReport:
    """The report over decisions of the last `days` days (None: all), in three queries."""
    decisions = Decision.objects.all()
    purchases = Event.objects.filter(kind=Event.Kind.PURCHASE, value__isnull=False)
    if days is not None:
        since = timezone.now() - timedelta(days=days)
        decisions = decisions.filter(created_at__gte=since)
        purchases = purchases.filter(occurred_at__gte=since)
    groups: dict[int, set[bool]] = defaultdict(set)
    counts: dict[tuple[int, str], int] = {}
    for shopper_id, policy, chosen, n in (
        decisions.values_list("shopper_id", "policy", "chosen").annotate(n=Count("id")).order_by()
    ):
        groups[shopper_id].add(policy == CONTROL)
        counts[shopper_id, chosen] = counts.get((shopper_id, chosen), 0) + n
    # A shopper who was in both groups (CONTROL_SHARE changed) belongs to neither.
    group = {s: next(iter(g)) for s, g in groups.items() if len(g) == 1}
    outcomes: dict[tuple[int, str, str], int] = {}
    events = Event.objects.filter(decision__in=decisions, kind__in=METRICS)
    for shopper_id, chosen, kind, n in (
        events.values_list("shopper_id", "decision__chosen", "kind")
        .annotate(n=Count("decision_id", distinct=True))
        .order_by()
    ):
        outcomes[shopper_id, chosen, kind] = n
    revenue, currency = _revenue(purchases, group)
    return _report(days, group, counts, outcomes, revenue, currency)


def _revenue(purchases, group: dict) -> tuple[dict[int, Decimal] | None, str]:
    """Purchases' value per shopper of either group (any purchase, shown an image or not), in
    the most used currency (summing currencies would mean nothing); None when no purchase
    carried a value."""
    by_currency = (
        purchases.values_list("currency").annotate(n=Count("id")).order_by("-n", "currency")
    )
    first = by_currency.first()
    if first is None:
        return None, ""
    currency = first[0]
    rows = (
        purchases.filter(currency=currency)
        .values_list("shopper_id")
        .annotate(total=Sum("value"))
        .order_by()
    )
    return {shopper_id: total for shopper_id, total in rows if shopper_id in group}, currency


def _report(days, group, counts, outcomes, revenue, currency) -> LiftReport:
    shoppers = {True: sorted(s for s, g in group.items() if g), False: []}
    shoppers[False] = sorted(s for s, g in group.items() if not g)
    totals = {}
    for is_control, ids in shoppers.items():
        decided = defaultdict(int)
        done = {metric: defaultdict(int) for metric in METRICS}
        for (shopper_id, _arm), n in counts.items():
            if group.get(shopper_id) is is_control:
                decided[shopper_id] += n
        for (shopper_id, _arm, kind), n in outcomes.items():
            if group.get(shopper_id) is is_control:
                done[kind][shopper_id] += n
        totals[is_control] = ShopperTotals(
            decisions=np.array([decided[s] for s in ids], dtype=float),
            outcomes={m: np.array([done[m][s] for s in ids], dtype=float) for m in METRICS},
            revenue=(
                None
                if revenue is None
                else np.array([float(revenue.get(s, 0)) for s in ids], dtype=float)
            ),
        )
    return LiftReport(
        days=days,
        shoppers={"personalized": len(shoppers[False]), "control": len(shoppers[True])},
        decisions={
            "personalized": int(totals[False].decisions.sum()),
            "control": int(totals[True].decisions.sum()),
        },
        lifts=lifts(totals[False], totals[True]),
        per_style=_per_style(group, counts, outcomes, totals[True]),
        currency=currency,
    )


def _per_style(group, counts, outcomes, control: ShopperTotals) -> list[dict]:
    """Each arm the personalized group was shown, against the control group's originals.
    Which shopper saw which style was the policy's choice, not random: read these as "how
    the images the loop chose did", not as what a style would do shown to everyone."""
    arms = sorted({chosen for (s, chosen) in counts if group.get(s) is False})
    rows = []
    for arm in arms:
        ids = sorted(s for (s, chosen) in counts if chosen == arm and group.get(s) is False)
        totals = ShopperTotals(
            decisions=np.array([counts[s, arm] for s in ids], dtype=float),
            outcomes={
                m: np.array([outcomes.get((s, arm, m), 0) for s in ids], dtype=float)
                for m in METRICS
            },
        )
        rows.append(
            {
                "style": arm,
                "shoppers": len(ids),
                "decisions": int(totals.decisions.sum()),
                "lifts": [
                    asdict(compare(f"{m}_rate", _ratio(totals, m), _ratio(control, m)))
                    for m in METRICS
                ],
            }
        )
    return rows
