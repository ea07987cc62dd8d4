"""Preference fitting: shrinkage to the population, moving towards clicks, updates, storage."""

import numpy as np
import pytest

from stylerec.ml.em import fit_preferences, refit_shoppers
from stylerec.ml.preferences import Preference, PreferenceFit
from stylerec.ml.simulate import synthetic_style_embeddings
from stylerec.ml.space import StyleSpace

TRUE_MEAN = np.array([0.08, -0.03, 0.02, -0.01, 0.0])
TRUE_SD = np.array([0.02, 0.04, 0.03, 0.02, 0.01])


@pytest.fixture(scope="module")
def arm_features():
    embeddings = synthetic_style_embeddings(5, dim=128, seed=3)
    return StyleSpace.fit(embeddings, max_components=3).arm_features(embeddings)


@pytest.fixture(scope="module")
def logs(arm_features):
    """Clicks of shoppers drawn from a known population, linear in the arm features."""
    rng = np.random.default_rng(7)
    n_shoppers, per_shopper = 3000, 40
    taste = TRUE_MEAN + TRUE_SD * rng.standard_normal((n_shoppers, TRUE_MEAN.size))
    shopper = np.repeat(np.arange(n_shoppers) * 10 + 5, per_shopper)  # ids need not be dense
    arm = rng.integers(0, len(arm_features), shopper.size)
    click_rate = np.clip((taste[shopper // 10] * arm_features[arm]).sum(axis=1), 0.005, 1)
    reward = (rng.random(shopper.size) < click_rate).astype(float)
    return shopper, arm, reward


@pytest.fixture(scope="module")
def fit(logs, arm_features):
    return fit_preferences(*logs, arm_features)


def test_empirical_bayes_recovers_the_population(fit):
    np.testing.assert_allclose(fit.population.mean, TRUE_MEAN, atol=0.006)
    np.testing.assert_allclose(np.sqrt(np.diag(fit.population.cov)), TRUE_SD, atol=0.01)
    assert fit.noise_var == pytest.approx(1.0, rel=0.05)  # clicks are Bernoulli: no overdispersion
    assert fit.version.startswith("pf-") and fit.iterations > 0


def test_clicks_move_a_shopper_towards_the_clicked_style(fit, logs, arm_features):
    shopper, arm, reward = logs
    liked = 3
    extra_arm = np.array([liked] * 20 + [1] * 20)
    extra_reward = np.array([1.0] * 20 + [0.0] * 20)
    update = refit_shoppers(
        fit,
        np.concatenate([shopper[shopper == 5], np.full(40, 5)]),
        np.concatenate([arm[shopper == 5], extra_arm]),
        np.concatenate([reward[shopper == 5], extra_reward]),
        arm_features,
    )
    before = fit.preference(5).scores(arm_features)
    after = update.preference(5).scores(arm_features)

    assert after[liked] - before[liked] > 0.1
    assert after[1] < before[1]
    assert after.argmax() == liked


def test_a_new_shopper_gets_the_population(fit, arm_features):
    unknown = fit.preference(4)  # ids are multiples of 10 plus 5
    assert unknown is fit.population
    means, covs = fit.preferences(np.array([5, 4]))
    np.testing.assert_array_equal(means[1], fit.population.mean)
    np.testing.assert_array_equal(covs[1], fit.population.cov)
    assert not np.array_equal(means[0], fit.population.mean)


def test_light_shoppers_are_shrunk_more_than_heavy_ones(logs, arm_features):
    shopper, arm, reward = logs
    heavy = np.isin(shopper, [5, 15])
    light_rows = np.flatnonzero(shopper == 15)[:3]
    keep = ~heavy
    keep[light_rows] = True
    keep |= shopper == 5
    fitted = fit_preferences(shopper[keep], arm[keep], reward[keep], arm_features)
    population = fitted.population.mean
    heavy_shift = np.abs(fitted.preference(5).mean - population).sum()
    light_shift = np.abs(fitted.preference(15).mean - population).sum()

    assert light_shift < heavy_shift
    assert np.trace(fitted.preference(15).cov) > np.trace(fitted.preference(5).cov)
    assert np.trace(fitted.preference(15).cov) < np.trace(fitted.population.cov)


def test_incremental_refit_is_idempotent_and_matches_the_full_fit(fit, logs, arm_features):
    shopper, arm, reward = logs
    recent = np.isin(shopper, [25, 35])
    update = refit_shoppers(fit, shopper[recent], arm[recent], reward[recent], arm_features)
    again = refit_shoppers(fit, shopper[recent], arm[recent], reward[recent], arm_features)

    np.testing.assert_array_equal(update.shoppers, [25, 35])
    assert update.version == fit.version
    np.testing.assert_allclose(update.means, fit.preferences(np.array([25, 35]))[0], atol=1e-6)
    np.testing.assert_array_equal(update.means, again.means)
    merged = fit.merge(update)
    np.testing.assert_array_equal(merged.shoppers, fit.shoppers)


def test_merge_adds_new_shoppers_in_order(fit, arm_features):
    update = refit_shoppers(fit, np.array([4, 4]), np.array([1, 2]), np.ones(2), arm_features)
    merged = fit.merge(update)
    assert merged.shoppers.size == fit.shoppers.size + 1
    assert (np.diff(merged.shoppers) > 0).all()
    np.testing.assert_array_equal(merged.preference(4).mean, update.means[0])


def test_per_decision_features_give_the_same_fit_as_arm_indices(logs, arm_features):
    shopper, arm, reward = (part[:4000] for part in logs)
    by_index = fit_preferences(shopper, arm, reward, arm_features)
    by_features = fit_preferences(shopper, arm_features[arm], reward)
    np.testing.assert_allclose(by_features.means, by_index.means, atol=1e-6)


def test_sample_weight_counts_a_decision_as_repeated(arm_features):
    shopper, arm, reward = np.array([1, 1, 2]), np.array([1, 2, 1]), np.array([1.0, 0.0, 0.0])
    weighted = fit_preferences(shopper, arm, reward, arm_features, sample_weight=[2, 1, 1])
    repeated = fit_preferences(
        np.array([1, 1, 1, 2]), np.array([1, 1, 2, 1]), np.array([1.0, 1.0, 0.0, 0.0]), arm_features
    )
    np.testing.assert_allclose(weighted.means, repeated.means, atol=1e-6)


def test_preference_round_trips_through_bytes_and_dicts(fit):
    preference = fit.preference(5)
    for restored in (
        Preference.from_bytes(preference.to_bytes()),
        Preference.from_dict(preference.to_dict()),
    ):
        np.testing.assert_array_equal(restored.mean, preference.mean)
        np.testing.assert_array_equal(restored.cov, preference.cov)
    assert len(preference.to_bytes()) == 6 + 4 * (5 + 25)
    with pytest.raises(ValueError):
        Preference.from_bytes(b"nope" + preference.to_bytes()[4:])


def test_fit_round_trips_through_bytes(fit):
    restored = PreferenceFit.from_bytes(fit.to_bytes())
    assert restored.version == fit.version and restored.noise_var == fit.noise_var
    np.testing.assert_array_equal(restored.shoppers, fit.shoppers)
    np.testing.assert_array_equal(restored.covs, fit.covs)
    np.testing.assert_array_equal(restored.population.mean, fit.population.mean)


def test_cold_start_and_empty_logs_serve_a_broad_zero_population(arm_features):
    cold = PreferenceFit.cold_start(5)
    empty = fit_preferences(np.zeros(0, int), np.zeros(0, int), np.zeros(0), arm_features)
    for fitted in (cold, empty):
        assert fitted.shoppers.size == 0
        np.testing.assert_array_equal(fitted.population.mean, 0)
        assert fitted.preference(1) is fitted.population
        assert fitted.preferences(np.array([1, 2]))[1].shape == (2, 5, 5)
