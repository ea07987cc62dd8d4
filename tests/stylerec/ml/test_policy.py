"""Chooser policies: honest probabilities over every candidate, matching the draws."""

import numpy as np
import pytest

from stylerec.ml.policy import (
    ExplorationSettings,
    choose,
    decision_probabilities,
    page_probabilities,
    sample_arms,
)
from stylerec.ml.preferences import Preference
from stylerec.ml.simulate import synthetic_style_embeddings
from stylerec.ml.space import StyleSpace


@pytest.fixture(scope="module")
def space_and_arms():
    embeddings = synthetic_style_embeddings(6, dim=256, seed=1)
    space = StyleSpace.fit(embeddings)
    return space, space.arm_features(embeddings)


@pytest.fixture(scope="module")
def preference(space_and_arms):
    _, arms = space_and_arms
    d = arms.shape[1]
    rng = np.random.default_rng(0)
    mean = (0.03 * rng.standard_normal(d)).astype(np.float32)
    mean[0] = 0.08
    return Preference(mean, (0.0004 * np.eye(d)).astype(np.float32))


@pytest.fixture(scope="module")
def page_mask(space_and_arms):
    _, arms = space_and_arms
    mask = np.ones((24, len(arms)), dtype=bool)
    mask[::2, 3] = False  # renditions of style 3 not ready for half the products
    mask[5, 1:] = False  # nothing ready for product 5: only the original
    return mask


@pytest.mark.parametrize("policy", ["thompson", "softmax", "greedy", "uniform"])
def test_probabilities_cover_every_candidate_and_sum_to_one(
    policy, preference, space_and_arms, page_mask
):
    _, arms = space_and_arms
    settings = ExplorationSettings(policy=policy, strength=0.02 if policy == "softmax" else 1.0)
    choice = choose(preference, arms, page_mask, settings, np.random.default_rng(1))

    np.testing.assert_allclose(choice.probabilities.sum(axis=1), 1.0)
    assert (choice.probabilities[~page_mask] == 0).all()
    floor = settings.uniform_share / page_mask.sum(axis=1, keepdims=True)
    assert (
        choice.probabilities[page_mask]
        >= np.broadcast_to(floor, page_mask.shape)[page_mask] - 1e-12
    ).all()
    assert page_mask[np.arange(24), choice.chosen].all()
    assert choice.chosen[5] == 0 and choice.probabilities[5, 0] == 1.0


@pytest.mark.slow
def test_thompson_draws_happen_at_the_logged_probabilities(preference, space_and_arms):
    """Across many pages the chosen arms' frequencies match the mean logged probabilities."""
    _, arms = space_and_arms
    mask = np.ones((1, len(arms)), dtype=bool)
    settings = ExplorationSettings(strength=1.0, draws=64)
    rng = np.random.default_rng(2)
    n = 20_000
    probabilities = np.empty((n, len(arms)))
    counts = np.zeros(len(arms))
    for i in range(n):
        choice = choose(preference, arms, mask, settings, rng)
        probabilities[i] = choice.probabilities[0]
        counts[choice.chosen[0]] += 1
    expected = probabilities.sum(axis=0)
    # Chi-square over arms, 6 degrees of freedom: 99.9% quantile is 22.5.
    assert ((counts - expected) ** 2 / expected).sum() < 22.5
    assert (expected > 50).all()  # every arm explored, so the test has power


def test_sample_arms_matches_fixed_probabilities_and_skips_zeros():
    probabilities = np.tile([0.5, 0.0, 0.3, 0.2, 0.0], (50_000, 1))
    chosen = sample_arms(probabilities, np.random.default_rng(3))
    frequency = np.bincount(chosen, minlength=5) / len(chosen)
    np.testing.assert_allclose(frequency, probabilities[0], atol=0.01)
    assert frequency[1] == 0 and frequency[4] == 0


def test_greedy_picks_the_best_candidate_and_uniform_ignores_the_model(
    preference, space_and_arms, page_mask
):
    _, arms = space_and_arms
    scores = preference.scores(arms)
    greedy = ExplorationSettings(policy="greedy", uniform_share=0.0)
    rng = np.random.default_rng(4)
    choice = choose(preference, arms, page_mask, greedy, rng)
    best = np.where(page_mask, scores, -np.inf).argmax(axis=1)
    np.testing.assert_array_equal(choice.chosen, best)
    assert (choice.probabilities.max(axis=1) == 1).all()

    uniform = choose(preference, arms, page_mask, ExplorationSettings(policy="uniform"), rng)
    np.testing.assert_allclose(uniform.probabilities, page_mask / page_mask.sum(1, keepdims=True))


def test_thompson_explores_uncertain_shoppers_more(preference, space_and_arms):
    _, arms = space_and_arms
    mask = np.ones((1, len(arms)), dtype=bool)
    settings = ExplorationSettings(uniform_share=0.0, draws=4000)
    sure = Preference(preference.mean, preference.cov * 1e-4)
    unsure = Preference(preference.mean, preference.cov * 100)
    rng = np.random.default_rng(5)
    p_sure = choose(sure, arms, mask, settings, rng).probabilities[0]
    p_unsure = choose(unsure, arms, mask, settings, rng).probabilities[0]
    assert p_sure.max() > 0.99
    assert p_unsure.max() < 0.6
    assert p_sure.argmax() == preference.scores(arms).argmax()


def test_a_new_style_gets_a_score_and_a_chance_before_any_click(preference, space_and_arms):
    space, arms = space_and_arms
    new_style = space.style_features(synthetic_style_embeddings(7, dim=256, seed=1)[6:])
    table = np.vstack([arms, new_style])
    score = preference.scores(table)[-1]
    assert np.isfinite(score) and score != 0
    choice = choose(
        preference,
        table,
        np.ones((1, len(table)), bool),
        ExplorationSettings(),
        np.random.default_rng(6),
    )
    assert choice.probabilities[0, -1] > 0


def test_batch_probabilities_agree_with_the_page_call(preference, space_and_arms):
    _, arms = space_and_arms
    mask = np.ones((3, len(arms)), dtype=bool)
    mask[1, 2:] = False
    settings = ExplorationSettings(draws=20_000)
    means = np.repeat(preference.mean[None], 3, axis=0)
    covs = np.repeat(preference.cov[None], 3, axis=0)
    batch = decision_probabilities(means, covs, arms, mask, settings, np.random.default_rng(7))
    page = page_probabilities(
        preference.mean[None],
        preference.cov[None],
        arms,
        mask[None],
        settings,
        np.random.default_rng(8),
    )[0]
    np.testing.assert_allclose(batch, page, atol=0.02)


def test_invalid_settings_and_empty_candidates_are_refused(preference, space_and_arms):
    _, arms = space_and_arms
    for bad in ({"policy": "epsilon"}, {"uniform_share": 1.5}, {"strength": -1}, {"draws": 0}):
        with pytest.raises(ValueError):
            ExplorationSettings(**bad)
    with pytest.raises(ValueError, match="candidate"):
        choose(
            preference,
            arms,
            np.zeros((1, len(arms)), bool),
            ExplorationSettings(),
            np.random.default_rng(9),
        )


def test_the_uniform_share_shrinks_as_a_shopper_becomes_known(
    preference, space_and_arms, page_mask
):
    """A shopper the model knows nothing of (posterior = prior) gets the whole uniform share;
    one it knows well keeps the floor of it on every candidate, never zero."""
    _, arms = space_and_arms
    d = arms.shape[1]
    prior = Preference(preference.mean, (0.01 * np.eye(d)).astype(np.float32))
    settings = ExplorationSettings(policy="greedy", uniform_share=0.1)
    shares = {}
    for name, scale in (("new", 1.0), ("half", 0.5), ("known", 0.01)):
        shopper = Preference(prior.mean, prior.cov * scale)
        choice = choose(shopper, arms, page_mask, settings, np.random.default_rng(0), prior=prior)
        candidates = page_mask.sum(axis=1)
        # Greedy puts the rest on one arm: the smallest candidate probability is the share / n.
        smallest = np.where(page_mask, choice.probabilities, np.inf).min(axis=1)
        shares[name] = float(np.median((smallest * candidates)[candidates > 1]))
    assert shares["new"] == pytest.approx(0.1)
    assert shares["known"] == pytest.approx(0.1 * settings.uniform_floor, rel=0.01)
    assert shares["known"] < shares["half"] < shares["new"]
    fixed = choose(
        Preference(prior.mean, prior.cov * 0.01), arms, page_mask,
        ExplorationSettings(policy="greedy", uniform_share=0.1, uniform_floor=1.0),
        np.random.default_rng(0), prior=prior,
    )  # fmt: skip
    assert np.where(page_mask, fixed.probabilities, np.inf).min() == pytest.approx(0.1 / 7)
    with pytest.raises(ValueError):
        ExplorationSettings(uniform_floor=1.5)
