"""Rewards: weighted click / add_to_cart / purchase events joined to their decision."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

# Clicks are what the simulator targets measure; deeper actions count for more.
DEFAULT_REWARD_WEIGHTS: Mapping[str, float] = {"click": 1.0, "add_to_cart": 2.0, "purchase": 4.0}


def decision_rewards(
    decision: np.ndarray,
    event_kind: np.ndarray,
    n_decisions: int,
    weights: Mapping[str, float] = DEFAULT_REWARD_WEIGHTS,
) -> np.ndarray:
    """Reward (n_decisions,) of each decision from its events (already windowed by time).

    `decision` (E,) is each event's decision index in [0, n_decisions), `event_kind` (E,)
    its kind. Each kind counts once per decision, so a retried beacon or a double click
    does not inflate the reward; kinds without a weight (impressions) add nothing.
    """
    decision = np.asarray(decision, dtype=np.int64)
    event_kind = np.asarray(event_kind)
    reward = np.zeros(n_decisions)
    for kind, weight in weights.items():
        happened = np.zeros(n_decisions, dtype=bool)
        happened[decision[event_kind == kind]] = True
        reward += weight * happened
    return reward
