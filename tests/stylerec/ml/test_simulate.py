"""The in-memory loop on synthetic shoppers: learning speed and honest offline estimates."""

from dataclasses import replace

import numpy as np
import pytest

from stylerec.ml.evaluate import (
    estimate_policy,
    evaluate_holdout,
    evaluate_policies,
    reward_predictions,
)
from stylerec.ml.policy import ExplorationSettings, decision_probabilities
from stylerec.ml.simulate import make_shoppers, run_loop, synthetic_style_embeddings
from stylerec.ml.space import StyleSpace

SETTINGS = ExplorationSettings()  # the deployed defaults: Thompson, strength 0.25, 5% uniform


def _world(settings):
    embeddings = synthetic_style_embeddings(8, dim=512, seed=0)
    arm_features = StyleSpace.fit(embeddings).arm_features(embeddings)
    rng = np.random.default_rng(0)
    shoppers = make_shoppers(embeddings, 1000, rng)
    loop = run_loop(
        shoppers,
        arm_features,
        rounds=6,
        impressions_per_round=10,
        settings=settings,
        rng=rng,
        availability=0.9,
    )
    return shoppers, arm_features, loop


@pytest.fixture(scope="module")
def world():
    return _world(SETTINGS)


@pytest.fixture(scope="module")
def explored_world():
    """Logged with the full 5 % uniform share throughout (no shrinking as shoppers become
    known): how far in-sample scoring flatters a fit depends on how much the logs explored,
    and this world was measured so."""
    return _world(replace(SETTINGS, uniform_floor=1.0))


def test_click_rates_are_realistic(world):
    shoppers, _, _ = world
    low, high = np.percentile(shoppers.click_probability, [5, 95])
    assert 0.01 < low < 0.03 and 0.12 < high < 0.25
    best = shoppers.click_probability.max(axis=1).mean()
    assert best > 1.6 * shoppers.click_probability.mean()  # the targets below are reachable


def test_after_50_impressions_the_loop_is_near_the_oracle_and_far_above_random(world):
    _, _, loop = world
    first, after_50 = loop.rounds[0], loop.rounds[5]  # round 5 shows impressions 51-60
    assert after_50.expected_ctr >= 0.9 * after_50.oracle_ctr
    assert after_50.ctr >= 0.9 * after_50.oracle_ctr
    assert after_50.expected_ctr >= 1.5 * after_50.uniform_ctr
    assert after_50.ctr >= 1.5 * after_50.uniform_ctr
    # Learning, not luck: the cold-start round is far from both.
    assert first.expected_ctr < 0.7 * after_50.expected_ctr


def test_offline_estimate_of_a_deployed_policy_matches_its_realised_ctr(world):
    """Policy of round 4, scored on round 5's logs (another policy, data it never saw),
    against the click rate it realised when it was deployed in round 4."""
    shoppers, arm_features, loop = world
    logs = loop.logs.subset(loop.round_of == 5)
    deployed = loop.fits[4]
    means, covs = deployed.preferences(logs.shopper)
    target = decision_probabilities(
        means, covs, arm_features, logs.candidate_mask, SETTINGS, np.random.default_rng(1)
    )
    estimates = estimate_policy(logs, target, reward_predictions(loop.fits[5], logs, arm_features))
    realised = loop.rounds[4].ctr
    for estimate in (estimates.ips, estimates.snips, estimates.dr):
        assert abs(estimate.value - realised) <= 0.1 * realised
        assert estimate.high - estimate.low < 0.15 * realised
    # The logs did come from a different policy: the weights are not all one.
    weights = target[np.arange(len(logs)), logs.chosen] / logs.propensity
    assert weights.std() > 0.1


def test_holdout_evaluation_is_honest_where_in_sample_is_optimistic(explored_world):
    _, arm_features, loop = explored_world
    last_round = loop.round_of == 5
    holdout = evaluate_holdout(
        loop.logs, last_round, arm_features, SETTINGS, np.random.default_rng(2)
    )
    realised = loop.rounds[5].ctr
    assert abs(holdout["current"].snips.value - realised) <= 0.05 * realised
    assert holdout["uniform"].dr.value < 0.7 * realised
    # The same report on a fit that has seen these decisions flatters the model.
    in_sample = evaluate_policies(
        loop.logs.subset(last_round), loop.final, arm_features, SETTINGS, np.random.default_rng(2)
    )
    assert in_sample["greedy"].dr.value > 1.05 * holdout["greedy"].dr.value


def test_with_personal_tastes_the_loop_beats_the_best_single_style():
    """Where tastes are mostly personal, no one style serves everyone: the loop must learn
    each shopper's favourite to beat the best single style."""
    embeddings = synthetic_style_embeddings(6, dim=512, seed=1)
    arm_features = StyleSpace.fit(embeddings).arm_features(embeddings)
    rng = np.random.default_rng(2)
    shoppers = make_shoppers(embeddings, 600, rng, shared_taste=0.3, taste_strength=1.0)
    loop = run_loop(
        shoppers, arm_features, rounds=6, impressions_per_round=10, settings=SETTINGS, rng=rng
    )
    truth = shoppers.click_probability
    best_single_style = truth.mean(axis=0).max()
    assert best_single_style < 0.85 * truth.max(axis=1).mean()  # personal tastes indeed
    after_50 = loop.rounds[5]
    assert after_50.expected_ctr > 1.1 * best_single_style
    assert after_50.expected_ctr > 1.5 * after_50.uniform_ctr
    # The final fit's favourite for each shopper is worth more than the population's.
    means, _ = loop.final.preferences(np.arange(shoppers.n_shoppers))
    personal_pick = truth[np.arange(shoppers.n_shoppers), (means @ arm_features.T).argmax(axis=1)]
    population_pick = truth[:, (loop.final.population.mean @ arm_features.T).argmax()]
    assert personal_pick.mean() > 1.1 * population_pick.mean()
