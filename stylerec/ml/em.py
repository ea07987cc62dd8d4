"""Fitting preferences: empirical Bayes (EM on per-shopper sufficient statistics).

The population mean, full covariance and noise scale are fitted by EM; each shopper's
posterior then shrinks a light shopper towards the population and lets a heavy shopper's
own clicks dominate. The alternatives tried are compared in bench/fit.py --compare.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

import numpy as np

from stylerec.ml.preferences import (
    COLD_START_NOISE_VAR,
    COLD_START_VAR,
    MIN_NOISE_VAR,
    Preference,
    PreferenceFit,
)


@dataclass(frozen=True)
class _Statistics:
    """Per-shopper sufficient statistics, each decision weighted by its noise precision."""

    shoppers: np.ndarray  # (U,) sorted shopper ids
    weight: np.ndarray  # (U,) decisions (sum of sample weights)
    xtx: np.ndarray  # (U, d, d) sum of w x x^T / v
    xty: np.ndarray  # (U, d) sum of w x r / v
    yty: np.ndarray  # (U,) sum of w r^2 / v


@dataclass(frozen=True)
class _Cells:
    """The logs compressed to (shopper, arm) cells: all a fit needs, whatever the noise."""

    shoppers: np.ndarray  # (U,) sorted shopper ids
    arm_features: np.ndarray  # (A, d) float64
    count: np.ndarray  # (U, A) decisions (sum of sample weights)
    reward: np.ndarray  # (U, A) sum of rewards
    reward_sq: np.ndarray  # (U, A) sum of squared rewards

    def statistics(self, reference_mean: np.ndarray | None) -> _Statistics:
        """Statistics with each arm's noise variance shaped by its expected reward under
        `reference_mean` (the population's, see `reward_variance`); None: one variance."""
        table = self.arm_features
        if reference_mean is None:
            precision = np.ones(len(table))
        else:
            precision = 1.0 / reward_variance(table @ reference_mean)
        n_arms, d = table.shape
        outer = (table[:, :, None] * table[:, None, :]).reshape(n_arms, d * d)
        return _Statistics(
            self.shoppers,
            self.count.sum(axis=1),
            ((self.count * precision) @ outer).reshape(len(self.shoppers), d, d),
            (self.reward * precision) @ table,
            self.reward_sq @ precision,
        )


def reward_variance(expected_reward: np.ndarray) -> np.ndarray:
    """Shape of the noise variance of a decision's reward, given its expected reward.

    Clicks are Bernoulli: a 20% arm is far noisier than a 3% arm. With one variance for
    all arms, the fit read that extra noise as shoppers disagreeing about popular styles
    and under-shrank them. The fitted `noise_var` scales it, so weighted rewards above 1
    still work; clipping keeps a rare arm's few clicks from counting as near-certain evidence.
    """
    clipped = np.clip(expected_reward, 0.01, 0.5)
    return clipped * (1.0 - clipped)


def fit_preferences(
    shopper: np.ndarray,
    arm: np.ndarray,
    reward: np.ndarray,
    arm_features: np.ndarray | None = None,
    *,
    sample_weight: np.ndarray | None = None,
    version: str | None = None,
    max_iter: int = 150,
    tol: float = 1e-6,
) -> PreferenceFit:
    """Full refit from logged decisions joined to their rewards.

    `shopper` (N,) ints, any ids; `arm` (N,) arm indices into `arm_features` (A, d), or
    `arm` (N, d) per-decision arm features (rows of a finite arm table) with
    `arm_features=None`; `reward` (N,); `sample_weight` (N,) counts a decision as that
    many. Propensities are not needed: the choice depended only on earlier logged data,
    so the likelihood (and this posterior) is unbiased without importance weights, which
    only add variance (bench/fit.py --compare).
    """
    cells = _cells(shopper, arm, reward, arm_features, sample_weight)
    return fit_counts(
        cells.shoppers,
        cells.count,
        cells.reward,
        cells.reward_sq,
        cells.arm_features,
        version=version,
        max_iter=max_iter,
        tol=tol,
    )


def fit_counts(
    shoppers: np.ndarray,
    count: np.ndarray,
    reward: np.ndarray,
    reward_sq: np.ndarray,
    arm_features: np.ndarray,
    *,
    version: str | None = None,
    max_iter: int = 150,
    tol: float = 1e-6,
) -> PreferenceFit:
    """`fit_preferences` from per (shopper, arm) decisions, sums of rewards and of squared
    rewards, each (U, A) with `shoppers` (U,) sorted: what a streamed log adds up to."""
    cells = _Cells(
        np.asarray(shoppers, dtype=np.int64),
        np.asarray(arm_features, dtype=np.float64),
        np.asarray(count, dtype=np.float64),
        np.asarray(reward, dtype=np.float64),
        np.asarray(reward_sq, dtype=np.float64),
    )
    # The noise shape needs expected rewards: take them from a pooled fit first.
    pooled = cells.statistics(None)
    total_xtx = pooled.xtx.sum(axis=0)
    ridge = 1e-3 * max(np.trace(total_xtx) / len(total_xtx), 1e-12) * np.eye(len(total_xtx))
    pooled_mean = np.linalg.solve(total_xtx + ridge, pooled.xty.sum(axis=0))
    mean, cov, noise_var, iterations = _population(
        cells.statistics(pooled_mean), max_iter=max_iter, tol=tol
    )
    population = Preference(mean.astype(np.float32), cov.astype(np.float32))
    stats = cells.statistics(population.mean.astype(np.float64))
    if version is None:
        digest = hashlib.sha256(population.to_bytes() + struct.pack("<d", noise_var))
        digest.update(stats.shoppers.tobytes() + stats.weight.tobytes())
        version = f"pf-{digest.hexdigest()[:12]}"
    return _posterior_fit(stats, population, noise_var, version, iterations)


def refit_shoppers(
    fit: PreferenceFit,
    shopper: np.ndarray,
    arm: np.ndarray,
    reward: np.ndarray,
    arm_features: np.ndarray | None = None,
    *,
    sample_weight: np.ndarray | None = None,
) -> PreferenceFit:
    """Incremental update: posteriors of the shoppers in these logs, under `fit`'s population.

    Pass ALL logged decisions of the recently active shoppers (not only the new ones):
    the update recomputes their posteriors from scratch, so a retried task gives the
    same answer instead of counting events twice. Returns a fit holding only those
    shoppers, with `fit`'s version; `fit.merge(update)` combines them in memory.
    """
    cells = _cells(shopper, arm, reward, arm_features, sample_weight)
    stats = cells.statistics(fit.population.mean.astype(np.float64))
    return _posterior_fit(stats, fit.population, fit.noise_var, fit.version, 0)


def refit_counts(
    fit: PreferenceFit,
    shoppers: np.ndarray,
    count: np.ndarray,
    reward: np.ndarray,
    reward_sq: np.ndarray,
    arm_features: np.ndarray,
) -> PreferenceFit:
    """`refit_shoppers` from per (shopper, arm) counts and reward sums, as `fit_counts`."""
    cells = _Cells(
        np.asarray(shoppers, dtype=np.int64),
        np.asarray(arm_features, dtype=np.float64),
        np.asarray(count, dtype=np.float64),
        np.asarray(reward, dtype=np.float64),
        np.asarray(reward_sq, dtype=np.float64),
    )
    stats = cells.statistics(fit.population.mean.astype(np.float64))
    return _posterior_fit(stats, fit.population, fit.noise_var, fit.version, 0)


def _cells(
    shopper: np.ndarray,
    arm: np.ndarray,
    reward: np.ndarray,
    arm_features: np.ndarray | None,
    sample_weight: np.ndarray | None,
) -> _Cells:
    arm = np.asarray(arm)
    if arm_features is None:  # per-decision features: recover the arm table they came from
        table, arm = np.unique(np.asarray(arm, dtype=np.float64), axis=0, return_inverse=True)
    else:
        table = np.asarray(arm_features, dtype=np.float64)
    shoppers, code = np.unique(np.asarray(shopper, dtype=np.int64), return_inverse=True)
    reward = np.asarray(reward, dtype=np.float64)
    weight = np.ones_like(reward) if sample_weight is None else np.asarray(sample_weight, float)
    n_cells = shoppers.size * len(table)
    if n_cells > 200_000_000:
        raise ValueError(f"{len(table)} distinct arms x {shoppers.size} shoppers is too many")
    cell = code * len(table) + arm.reshape(-1).astype(np.int64)

    def per_cell(values: np.ndarray) -> np.ndarray:
        return np.bincount(cell, weights=values, minlength=n_cells).reshape(-1, len(table))

    weighted = weight * reward
    return _Cells(
        shoppers, table, per_cell(weight), per_cell(weighted), per_cell(weighted * reward)
    )


def _posteriors(
    stats: _Statistics, mean: np.ndarray, cov: np.ndarray, noise_var: float
) -> tuple[np.ndarray, np.ndarray]:
    prior_precision = np.linalg.inv(cov)
    precision = prior_precision[None] + stats.xtx / noise_var
    post_cov = np.linalg.inv(precision)
    post_cov = 0.5 * (post_cov + post_cov.transpose(0, 2, 1))
    evidence = (prior_precision @ mean)[None] + stats.xty / noise_var
    post_mean = (post_cov @ evidence[:, :, None])[:, :, 0]
    return post_mean, post_cov


# (population mean, population cov, noise variance): what empirical Bayes estimates.
_Population = tuple[np.ndarray, np.ndarray, float]


def _population(
    stats: _Statistics, *, max_iter: int, tol: float
) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Empirical Bayes: EM for the population, accelerated by SQUAREM.

    Plain EM crawls here (light shoppers carry little information about the population
    covariance). SQUAREM (Varadhan & Roland 2008) extrapolates along two EM steps and keeps
    the jump only if the marginal likelihood does not drop.
    Stops when a round gains under `tol` nats per decision, or after `max_iter` EM steps.
    """
    d = stats.xtx.shape[1]
    eye = np.eye(d)
    if stats.shoppers.size == 0:
        return np.zeros(d), COLD_START_VAR * eye, COLD_START_NOISE_VAR, 0
    n = max(stats.weight.sum(), 1e-12)
    total_xtx, total_xty = stats.xtx.sum(axis=0), stats.xty.sum(axis=0)
    # Start from the pooled ridge fit: everyone alike, broad prior around it.
    ridge = 1e-3 * max(np.trace(total_xtx) / d, 1e-12)
    mean = np.linalg.solve(total_xtx + ridge * eye, total_xty)
    residual = stats.yty.sum() - 2 * mean @ total_xty + mean @ total_xtx @ mean
    noise_var = max(residual / n, MIN_NOISE_VAR)
    population: _Population = (mean, noise_var * eye, noise_var)
    steps, previous = 0, -np.inf
    while steps + 3 <= max_iter:
        first, _ = _em_step(stats, population, likelihood=False)
        second, likelihood = _em_step(stats, first)
        start, step = _pack(population), _pack(first) - _pack(population)
        curvature = _pack(second) - _pack(first) - step
        alpha = min(-np.linalg.norm(step) / max(np.linalg.norm(curvature), 1e-300), -1.0)
        jumped, jumped_likelihood = _em_step(
            stats, _unpack(start - 2 * alpha * step + alpha * alpha * curvature, d)
        )
        steps += 3
        if jumped_likelihood >= likelihood:
            population = jumped
        else:  # the jump overshot: fall back to plain EM, which never loses likelihood
            population = _em_step(stats, second, likelihood=False)[0]
            steps += 1
        best = max(likelihood, jumped_likelihood)
        if (best - previous) / n < tol:
            break
        previous = best
    return (*population, steps)


def _em_step(
    stats: _Statistics, population: _Population, *, likelihood: bool = True
) -> tuple[_Population, float]:
    """One EM update, and the marginal log-likelihood of the population it started from
    (NaN when not asked for: it costs a batched determinant)."""
    mean, cov, noise_var = population
    post_mean, post_cov = _posteriors(stats, mean, cov, noise_var)
    n, n_shoppers = stats.weight.sum(), len(post_mean)
    log_likelihood = np.nan
    if likelihood:
        prior_precision = np.linalg.inv(cov)
        evidence = (prior_precision @ mean)[None] + stats.xty / noise_var
        log_likelihood = -0.5 * (
            n * np.log(2 * np.pi * noise_var)
            + n_shoppers * np.linalg.slogdet(cov)[1]
            - np.linalg.slogdet(post_cov)[1].sum()
            + stats.yty.sum() / noise_var
            + n_shoppers * mean @ prior_precision @ mean
            - np.einsum("ui,ui->", post_mean, evidence)
        )
    new_mean = post_mean.mean(axis=0)
    spread = post_mean - new_mean
    new_cov = post_cov.mean(axis=0) + spread.T @ spread / n_shoppers
    residual = (
        stats.yty.sum()
        - 2 * np.einsum("ui,ui->", post_mean, stats.xty)
        + np.einsum("ui,uij,uj->", post_mean, stats.xtx, post_mean)
        + np.einsum("uij,uji->", stats.xtx, post_cov)
    )
    # Jitter keeps the prior invertible when shoppers agree exactly along a direction.
    new_cov = 0.5 * (new_cov + new_cov.T)
    new_cov += 1e-9 * max(np.trace(new_cov) / len(new_cov), 1e-12) * np.eye(len(new_cov))
    new_population = (new_mean, new_cov, max(residual / n, MIN_NOISE_VAR))
    return new_population, float(log_likelihood)


def _pack(population: _Population) -> np.ndarray:
    # Extrapolate the Cholesky factor and log noise: any jump stays a valid population.
    mean, cov, noise_var = population
    values, vectors = np.linalg.eigh(cov)
    floor = 1e-9 * max(values.max(), 1e-12)
    factor = np.linalg.cholesky((vectors * np.maximum(values, floor)) @ vectors.T)
    return np.concatenate([mean, factor[np.tril_indices(len(cov))], [np.log(noise_var)]])


def _unpack(packed: np.ndarray, d: int) -> _Population:
    factor = np.zeros((d, d))
    factor[np.tril_indices(d)] = packed[d:-1]
    cov = factor @ factor.T
    cov += 1e-9 * max(np.trace(cov) / d, 1e-12) * np.eye(d)
    return packed[:d], cov, max(float(np.exp(packed[-1])), MIN_NOISE_VAR)


def _posterior_fit(
    stats: _Statistics, population: Preference, noise_var: float, version: str, iterations: int
) -> PreferenceFit:
    mean = population.mean.astype(np.float64)
    cov = population.cov.astype(np.float64)
    post_mean, post_cov = _posteriors(stats, mean, cov, noise_var)
    return PreferenceFit(
        version=version,
        population=population,
        noise_var=noise_var,
        shoppers=stats.shoppers,
        means=post_mean.astype(np.float32),
        covs=post_cov.astype(np.float32),
        decisions=stats.weight,
        iterations=iterations,
    )
