"""Rewards joined to decisions: weighted kinds, each counted once."""

import numpy as np

from stylerec.ml.rewards import decision_rewards


def test_each_kind_counts_once_with_its_weight():
    decision = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    kind = np.array(
        ["impression", "click", "click", "click", "add_to_cart", "click", "add_to_cart", "purchase"]
    )
    weights = {"click": 1.0, "add_to_cart": 2.0, "purchase": 5.0}
    reward = decision_rewards(decision, kind, 4, weights)
    np.testing.assert_array_equal(reward, [1.0, 3.0, 8.0, 0.0])


def test_no_events_means_zero_reward():
    assert decision_rewards(np.zeros(0, int), np.zeros(0, str), 3).tolist() == [0.0, 0.0, 0.0]
