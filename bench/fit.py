"""Benchmark the full preference refit (100k shoppers x 5M decisions); --compare ranks models.

.venv/bin/python bench/fit.py              # timing, memory, naive baseline
.venv/bin/python bench/fit.py --compare    # which preference model learns fastest
.venv/bin/python bench/fit.py --from-db    # stylerec_fit from PostgreSQL, loading included
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stylerec.ml.em import (  # noqa: E402
    _cells,
    _population,
    _posterior_fit,
    _posteriors,
    fit_preferences,
    refit_shoppers,
)
from stylerec.ml.evaluate import LoggedDecisions  # noqa: E402
from stylerec.ml.policy import ExplorationSettings  # noqa: E402
from stylerec.ml.preferences import Preference, PreferenceFit  # noqa: E402
from stylerec.ml.simulate import (  # noqa: E402
    make_category_shoppers,
    make_shoppers,
    refit_all,
    refit_in_context,
    run_loop,
    synthetic_style_embeddings,
)
from stylerec.ml.space import StyleSpace  # noqa: E402

GIB = 1024**3
TARGET_SECONDS, TARGET_BYTES = 60.0, 4 * GIB


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def synthetic_logs(n_shoppers: int, n_decisions: int, n_styles: int, seed: int):
    """Decisions with heavy-tailed activity per shopper and clicks from hidden tastes."""
    rng = np.random.default_rng(seed)
    embeddings = synthetic_style_embeddings(n_styles, dim=1024, seed=seed)
    arm_features = StyleSpace.fit(embeddings).arm_features(embeddings)
    shoppers = make_shoppers(embeddings, n_shoppers, rng)
    activity = rng.lognormal(0.0, 1.2, n_shoppers)
    shopper = rng.choice(n_shoppers, n_decisions, p=activity / activity.sum()).astype(np.int64)
    arm = rng.integers(0, len(arm_features), n_decisions).astype(np.int16)
    reward = shoppers.clicks(shopper, arm, rng).astype(np.float32)
    return shopper, arm, reward, arm_features


def naive_per_shopper(
    shopper, arm, reward, arm_features, sample, population
) -> tuple[float, float]:
    """Seconds per shopper of two obvious loops: one sklearn BayesianRidge per shopper (no
    population at all), and one pass of this model's E-step written shopper by shopper."""
    from sklearn.linear_model import BayesianRidge

    order = np.argsort(shopper, kind="stable")
    bounds = list(zip(*np.searchsorted(shopper[order], [sample, sample + 1]), strict=True))
    features = arm_features.astype(np.float64)
    started = time.perf_counter()
    for low, high in bounds:
        rows = order[low:high]
        BayesianRidge(fit_intercept=False).fit(features[arm[rows]], reward[rows])
    sklearn_seconds = (time.perf_counter() - started) / len(sample)

    prior_precision = np.linalg.inv(population.cov.astype(np.float64))
    prior_evidence = prior_precision @ population.mean
    started = time.perf_counter()
    for low, high in bounds:
        rows = order[low:high]
        x, y = features[arm[rows]], reward[rows]
        posterior_cov = np.linalg.inv(prior_precision + x.T @ x / 0.1)
        posterior_cov @ (prior_evidence + x.T @ y / 0.1)
    e_step_seconds = (time.perf_counter() - started) / len(sample)
    return sklearn_seconds, e_step_seconds


def benchmark(args) -> None:
    shopper, arm, reward, arm_features = synthetic_logs(
        args.shoppers, args.decisions, args.styles, args.seed
    )
    data_rss = peak_rss()
    print(
        f"full refit: {args.shoppers:,} shoppers x {args.decisions:,} decisions, "
        f"{len(arm_features)} arms, {arm_features.shape[1]} features"
    )
    started = time.perf_counter()
    fit = fit_preferences(shopper, arm, reward, arm_features)
    seconds = time.perf_counter() - started
    rss = peak_rss()
    ok = seconds <= TARGET_SECONDS and rss <= TARGET_BYTES
    print(
        f"  fit: {seconds:.1f} s ({fit.iterations} EM steps), "
        f"{args.decisions / seconds:,.0f} decisions/s, peak RSS {rss / GIB:.2f} GiB "
        f"(data alone {data_rss / GIB:.2f} GiB); version {fit.version}"
    )
    print(f"  target <= {TARGET_SECONDS:.0f} s and <= 4 GiB: {'OK' if ok else 'MISSED'}")

    rng = np.random.default_rng(args.seed + 1)
    recent = rng.choice(fit.shoppers, 1000, replace=False)
    rows = np.isin(shopper, recent)
    started = time.perf_counter()
    refit_shoppers(fit, shopper[rows], arm[rows], reward[rows], arm_features)
    print(
        f"incremental: {recent.size:,} shoppers ({rows.sum():,} decisions) in "
        f"{time.perf_counter() - started:.3f} s"
    )

    sample = rng.choice(fit.shoppers, args.naive_sample, replace=False)
    sklearn_seconds, e_step_seconds = naive_per_shopper(
        shopper, arm, reward, arm_features, sample, fit.population
    )
    n_fitted = fit.shoppers.size
    sklearn_total = sklearn_seconds * n_fitted
    loop_total = e_step_seconds * n_fitted * fit.iterations
    print(f"naive baselines, timed on {sample.size} shoppers and scaled to {n_fitted:,}:")
    print(
        f"  sklearn BayesianRidge per shopper (no population prior): "
        f"{sklearn_seconds * 1e3:.2f} ms/shopper -> {sklearn_total:.0f} s; "
        f"vectorised refit is {sklearn_total / seconds:.1f}x faster"
    )
    print(
        f"  same EM with a per-shopper loop: {e_step_seconds * 1e6:.0f} us/shopper/step x "
        f"{fit.iterations} steps -> {loop_total:.0f} s; "
        f"vectorised refit is {loop_total / seconds:.1f}x faster"
    )


# --- rival models for --compare: each maps (all logs so far, arm table) to a PreferenceFit ---


def _pooled_bayesian_ridge(logs: LoggedDecisions, arm_features: np.ndarray):
    from sklearn.linear_model import BayesianRidge

    return BayesianRidge(fit_intercept=False).fit(arm_features[logs.chosen], logs.reward)


def population_only(logs: LoggedDecisions, arm_features: np.ndarray) -> PreferenceFit:
    """No personalisation: everyone gets the pooled BayesianRidge posterior."""
    pooled = _pooled_bayesian_ridge(logs, arm_features)
    population = Preference(pooled.coef_.astype(np.float32), pooled.sigma_.astype(np.float32))
    return replace(
        PreferenceFit.cold_start(arm_features.shape[1], version="pooled"),
        population=population,
        noise_var=1 / pooled.alpha_,
    )


def bayesian_ridge_prior(logs: LoggedDecisions, arm_features: np.ndarray) -> PreferenceFit:
    """Per-shopper posteriors around the pooled BayesianRidge fit, isotropic prior 1/lambda."""
    pooled = _pooled_bayesian_ridge(logs, arm_features)
    d = arm_features.shape[1]
    prior = Preference(
        pooled.coef_.astype(np.float32), (np.eye(d) / pooled.lambda_).astype(np.float32)
    )
    return _with_prior(logs, arm_features, prior, 1 / pooled.alpha_)


def independent_ridge(logs: LoggedDecisions, arm_features: np.ndarray) -> PreferenceFit:
    """Each shopper alone: zero-mean ridge prior, nothing learned from other shoppers."""
    d = arm_features.shape[1]
    prior = Preference(np.zeros(d, np.float32), (0.01 * np.eye(d)).astype(np.float32))
    return _with_prior(logs, arm_features, prior, 0.1)


def hierarchical_diagonal(logs: LoggedDecisions, arm_features: np.ndarray) -> PreferenceFit:
    """Empirical Bayes like the chosen model, but a diagonal population covariance."""
    stats = _homoscedastic(logs, arm_features)
    d = arm_features.shape[1]
    mean, cov, noise_var = np.zeros(d), 0.01 * np.eye(d), 0.1
    for _ in range(100):  # plain EM: small data, no need for acceleration here
        post_mean, post_cov = _posteriors(stats, mean, cov, noise_var)
        mean = post_mean.mean(axis=0)
        cov = np.diag(np.diagonal(post_cov, axis1=1, axis2=2).mean(0) + post_mean.var(0)) + 1e-9
        residual = (
            stats.yty.sum()
            - 2 * np.einsum("ui,ui->", post_mean, stats.xty)
            + np.einsum("ui,uij,uj->", post_mean, stats.xtx, post_mean)
            + np.einsum("uij,uji->", stats.xtx, post_cov)
        )
        noise_var = residual / stats.weight.sum()
    prior = Preference(mean.astype(np.float32), cov.astype(np.float32))
    return _posterior_fit(stats, prior, float(noise_var), "diagonal", 100)


def ips_weighted(logs: LoggedDecisions, arm_features: np.ndarray) -> PreferenceFit:
    """The chosen model with importance weights 1/propensity (normalised, capped at 10)."""
    weight = np.minimum(1.0 / logs.propensity / np.mean(1.0 / logs.propensity), 10.0)
    return fit_preferences(
        logs.shopper, logs.chosen, logs.reward, arm_features, sample_weight=weight
    )


def one_noise_variance(logs: LoggedDecisions, arm_features: np.ndarray) -> PreferenceFit:
    """The chosen model with one noise variance for all arms (its first version)."""
    stats = _homoscedastic(logs, arm_features)
    mean, cov, noise_var, steps = _population(stats, max_iter=150, tol=1e-6)
    prior = Preference(mean.astype(np.float32), cov.astype(np.float32))
    return _posterior_fit(stats, prior, noise_var, "one-noise", steps)


def _homoscedastic(logs: LoggedDecisions, arm_features: np.ndarray):
    cells = _cells(logs.shopper, logs.chosen, logs.reward, arm_features, None)
    return cells.statistics(None)


def _with_prior(logs, arm_features, prior: Preference, noise_var: float) -> PreferenceFit:
    stats = _homoscedastic(logs, arm_features)
    return _posterior_fit(stats, prior, float(noise_var), "fixed-prior", 0)


MODELS = {
    "hierarchical EB in context (chosen)": refit_in_context,
    "hierarchical EB, context-blind": refit_all,
    "hierarchical EB, one noise variance": one_noise_variance,
    "hierarchical EB, diagonal cov": hierarchical_diagonal,
    "BayesianRidge pooled prior": bayesian_ridge_prior,
    "independent ridge per shopper": independent_ridge,
    "population only (BayesianRidge)": population_only,
    "hierarchical EB + IPS weights": ips_weighted,
}

WORLDS = {
    # name: (styles, shared_taste, taste_strength, categories: tastes per category if > 0)
    "fashion (8 styles, 90% shared taste)": (8, 0.9, 0.6, 0),
    "personal (6 styles, 30% shared taste)": (6, 0.3, 1.0, 0),
    "category (5 styles, 4 categories)": (5, 0.0, 1.0, 4),
}


def compare(args) -> None:
    """CTR / oracle of the deployed policy after 50 impressions per shopper (250 in the
    category world, whose tastes need more), per model."""
    settings = ExplorationSettings()
    print(f"policy: {settings}; {args.compare_shoppers} shoppers, 10 impressions per round")
    print(f"{'model':<38} {'world':<40} {'@50 vs oracle':>13} {'rounds':>10} {'fit s':>6}")
    for model_name, model in MODELS.items():
        for world_name, (n_styles, shared, strength, categories) in WORLDS.items():
            at_50, overall, fit_seconds = [], [], []
            for seed in range(args.compare_seeds):
                embeddings = synthetic_style_embeddings(n_styles, dim=512, seed=seed)
                arm_features = StyleSpace.fit(embeddings).arm_features(embeddings)
                rng = np.random.default_rng(seed)
                if categories:
                    shoppers = make_category_shoppers(
                        embeddings, args.compare_shoppers, categories, rng
                    )
                else:
                    shoppers = make_shoppers(
                        embeddings,
                        args.compare_shoppers,
                        rng,
                        shared_taste=shared,
                        taste_strength=strength,
                    )
                timed = _timed(model, fit_seconds)
                loop = run_loop(
                    shoppers,
                    arm_features,
                    rounds=25 if categories else 6,
                    impressions_per_round=10,
                    settings=settings,
                    rng=rng,
                    availability=0.9,
                    fit=timed,
                )
                ratios = [r.expected_ctr / r.oracle_ctr for r in loop.rounds]
                at_50.append(ratios[-1])
                overall.append(np.mean(ratios))
            print(
                f"{model_name:<38} {world_name:<40} {np.mean(at_50):>13.3f} "
                f"{np.mean(overall):>10.3f} {np.mean(fit_seconds):>6.3f}"
            )


def _timed(model, seconds: list[float]):
    def fit(logs, arm_features):
        started = time.perf_counter()
        result = model(logs, arm_features)
        seconds.append(time.perf_counter() - started)
        return result

    return fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shoppers", type=int, default=100_000)
    parser.add_argument("--decisions", type=int, default=5_000_000)
    parser.add_argument("--styles", type=int, default=None, help="20 (8 with --from-db)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--naive-sample", type=int, default=300)
    parser.add_argument("--compare", action="store_true", help="rank preference models")
    parser.add_argument("--from-db", action="store_true", help="stylerec_fit from PostgreSQL")
    parser.add_argument("--sizes", default="1000000,5000000", help="--from-db: decisions")
    parser.add_argument("--baseline", action="store_true", help="--from-db: old loading too")
    parser.add_argument("--keep", action="store_true", help="--from-db: keep the database")
    parser.add_argument("--compare-shoppers", type=int, default=800)
    parser.add_argument("--compare-seeds", type=int, default=3)
    args = parser.parse_args()
    if args.from_db:
        import fit_db

        args.styles = args.styles or 8
        fit_db.main(args)
    else:
        args.styles = args.styles or 20
        compare(args) if args.compare else benchmark(args)


if __name__ == "__main__":
    main()
