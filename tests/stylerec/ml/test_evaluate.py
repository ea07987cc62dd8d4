"""Offline evaluation: IPS, SNIPS and DR recover a target policy's value from logged decisions."""

from dataclasses import replace

import numpy as np
import pytest

from stylerec.ml.em import fit_preferences
from stylerec.ml.evaluate import (
    LoggedDecisions,
    doubly_robust,
    estimate_policy,
    evaluate_policies,
    ips,
    single_arm_probabilities,
    snips,
)
from stylerec.ml.policy import ExplorationSettings

CLICK_RATE = np.array([0.05, 0.12, 0.03, 0.20])  # arm 0 is the original


def _bandit_logs(n: int, seed: int) -> LoggedDecisions:
    """Logging policy skewed towards arm 1, with a uniform floor; arm 2 sometimes missing."""
    rng = np.random.default_rng(seed)
    mask = np.ones((n, 4), dtype=bool)
    mask[rng.random(n) < 0.3, 2] = False
    logging = np.where(mask, [0.1, 0.6, 0.1, 0.2], 0.0)
    logging /= logging.sum(axis=1, keepdims=True)
    chosen = (logging.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    reward = (rng.random(n) < CLICK_RATE[chosen]).astype(float)
    propensity = logging[np.arange(n), chosen]
    return LoggedDecisions(np.arange(n) % 100, mask, chosen, propensity, reward)


@pytest.fixture(scope="module")
def logs():
    return _bandit_logs(60_000, seed=0)


def test_estimates_of_a_deterministic_policy_cover_its_true_value(logs):
    target = single_arm_probabilities(logs.candidate_mask, 3)
    truth = CLICK_RATE[3]
    predictions = np.tile([0.05, 0.1, 0.05, 0.1], (len(logs), 1))  # a poor reward model
    for estimate in (
        ips(logs, target),
        snips(logs, target),
        doubly_robust(logs, target, predictions),
    ):
        assert estimate.low < truth < estimate.high
        assert estimate.high - estimate.low < 0.03
        assert estimate.n == len(logs)
        assert 0 < estimate.effective_sample_size < len(logs)


def test_single_arm_policy_falls_back_to_the_original_when_the_style_is_missing(logs):
    target = single_arm_probabilities(logs.candidate_mask, 2)
    missing = ~logs.candidate_mask[:, 2]
    assert (target[missing, 0] == 1).all() and (target[~missing, 2] == 1).all()
    truth = 0.3 * CLICK_RATE[0] + 0.7 * CLICK_RATE[2]
    assert abs(snips(logs, target).value - truth) < 0.004


def test_on_policy_ips_is_the_realised_mean(logs):
    logging = np.zeros(logs.candidate_mask.shape)
    logging[np.arange(len(logs)), logs.chosen] = logs.propensity
    assert ips(logs, logging).value == pytest.approx(logs.reward.mean())


def test_a_good_reward_model_makes_dr_tighter_than_ips(logs):
    """With a baseline in every reward (here 1 + click), IPS carries its weighted variance;
    DR subtracts the predicted reward first, so only the click noise remains."""
    shifted = replace(logs, reward=logs.reward + 1.0)
    target = logs.candidate_mask / logs.candidate_mask.sum(axis=1, keepdims=True)
    perfect = np.tile(CLICK_RATE + 1.0, (len(logs), 1))
    truth = (target * (CLICK_RATE + 1.0)).sum(axis=1).mean()
    both = estimate_policy(shifted, target, perfect)
    assert both.dr.low < truth < both.dr.high
    assert both.ips.low < truth < both.ips.high
    assert both.dr.high - both.dr.low < 0.5 * (both.ips.high - both.ips.low)


def test_confidence_intervals_cover_the_truth_most_of_the_time():
    target_arm, covered = 3, 0
    for seed in range(40):
        small = _bandit_logs(3000, seed=100 + seed)
        estimate = snips(small, single_arm_probabilities(small.candidate_mask, target_arm))
        covered += estimate.low < CLICK_RATE[target_arm] < estimate.high
    assert covered >= 34  # 95% nominal: 38 of 40 expected


def test_policy_report_names_the_best_style_and_ranks_the_baselines(logs):
    arm_features = np.eye(4, dtype=np.float32)  # one indicator per arm
    fit = fit_preferences(logs.shopper, logs.chosen, logs.reward, arm_features)
    report = evaluate_policies(
        logs, fit, arm_features, ExplorationSettings(), np.random.default_rng(0)
    )
    assert set(report) == {"current", "greedy", "uniform", "original", "best_style"}
    assert report["best_style"].arm == 3 and report["original"].arm == 0
    assert report["greedy"].dr.value > report["uniform"].dr.value > report["original"].dr.value
    assert report["greedy"].dr.value == pytest.approx(CLICK_RATE[3], abs=0.01)
    assert set(report["current"].to_dict()) == {"arm", "ips", "snips", "dr"}
