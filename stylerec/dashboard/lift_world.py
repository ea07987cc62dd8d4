"""Simulated control and personalized groups over the simulator's shoppers, to check the lift
report's intervals (tests/stylerec/test_lift.py) and how many shoppers a lift needs to show
(bench/lift.py)."""

from __future__ import annotations

import numpy as np

from ..ml.simulate import make_shoppers, synthetic_style_embeddings
from .lift import ShopperTotals

CART_GIVEN_CLICK = 0.3
PURCHASE_GIVEN_CART = 0.5


def world(n_shoppers: int, seed: int):
    """The simulator's shoppers: a click probability per shopper and arm (arm 0 the original)."""
    rng = np.random.default_rng(seed)
    return make_shoppers(synthetic_style_embeddings(seed=seed), n_shoppers, rng)


def simulated_groups(
    click_probability: np.ndarray,
    rng: np.random.Generator,
    *,
    helps: bool,
    control_share: float = 0.1,
    mean_decisions: float = 12.0,
    best_share: float = 0.8,
) -> tuple[ShopperTotals, ShopperTotals]:
    """(personalized, control) totals of one run. The control group sees originals. Where
    personalization `helps`, the personalized group sees each shopper's best arm
    `best_share` of the time and a random one otherwise (about where the loop gets to); where
    it does not, it sees styles that do exactly what the original does for that shopper."""
    shoppers, arms = click_probability.shape
    control = rng.random(shoppers) < control_share
    decisions = 1 + rng.geometric(1 / mean_decisions, size=shoppers)
    if helps:
        best = click_probability.max(axis=1)
        treated_rate = best_share * best + (1 - best_share) * click_probability.mean(axis=1)
    else:
        treated_rate = click_probability[:, 0]
    rate = np.where(control, click_probability[:, 0], treated_rate)
    clicks = rng.binomial(decisions, rate)
    carts = rng.binomial(clicks, CART_GIVEN_CLICK)
    purchases = rng.binomial(carts, PURCHASE_GIVEN_CART)
    revenue = np.array(
        [rng.lognormal(3.5, 0.6, size=n).sum() for n in purchases], dtype=float
    ).round(2)

    def group(rows: np.ndarray) -> ShopperTotals:
        return ShopperTotals(
            decisions=decisions[rows].astype(float),
            outcomes={
                "click": clicks[rows].astype(float),
                "add_to_cart": carts[rows].astype(float),
                "purchase": purchases[rows].astype(float),
            },
            revenue=revenue[rows],
        )

    return group(~control), group(control)
