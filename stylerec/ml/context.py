"""Preferences that depend on the context of a decision (its category and device class).

theta(shopper u, context c) = w_u + gamma_c + delta_uc, and reward = x_arm . theta + noise:
  w_u ~ N(mu, Sigma)       the shopper's taste across contexts (em.py's whole model)
  gamma_c                  the crowd's offset in context c: a style that works on shoes;
                           a category's part plus a device class's (`offset_design`)
  delta_uc ~ N(0, Omega)   the shopper's own deviation there, shrunk to zero where their
                           decisions in c are few
Empirical Bayes fits mu, Sigma, Omega, gamma and the noise scale by EM on per-(shopper,
context, arm) counts, so memory is bounded by shoppers x contexts x arms, never by decisions.
The dimension stays that of the style space: contexts add cells, not features. Only the
K busiest contexts are modelled (`keys`); the rest share one pooled level that informs w_u
and gets the context-free part when served. bench/fit.py --compare measures it against em.py.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from stylerec.ml.context_fit import ContextFit
from stylerec.ml.em import _Cells, _population, reward_variance
from stylerec.ml.preferences import ContextPopulation

# Hyperparameters are population-level: a random sample of this many shoppers pins them
# down, and fitting time then stops growing with the shop (the posteriors still cover all).
EM_SHOPPERS = 3_000
# A shopper's own posterior in a context is kept (and served) from this many decisions
# there; below, the context-free part plus the crowd's offset is within noise of it, and
# profiles stay small (bench/fit.py --from-db).
MIN_ENTRY_DECISIONS = 8
_CHUNK_SHOPPERS = 4_000  # shoppers per pass: each (cells, d, d) working array ~20 MB
_FIT_THREADS = min(4, os.cpu_count() or 1)  # chunks fitted at once


@dataclass(frozen=True)
class ContextStatistics:
    """Per shopper, context level and arm: decisions, sum of rewards, sum of squared rewards.
    Level K (the last) pools every context not in the model's keys."""

    shoppers: np.ndarray  # (U,) sorted shopper ids
    count: np.ndarray  # (U, K + 1, A)
    reward: np.ndarray  # (U, K + 1, A)
    reward_sq: np.ndarray  # (U, K + 1, A)

    @classmethod
    def from_decisions(
        cls,
        shopper: np.ndarray,
        context: np.ndarray,
        arm: np.ndarray,
        reward: np.ndarray,
        *,
        n_levels: int,
        n_arms: int,
    ) -> ContextStatistics:
        """From per-decision arrays; `context` codes in 0..n_levels-1 (-1 or n_levels-1: pooled)."""
        shoppers, row = np.unique(np.asarray(shopper, dtype=np.int64), return_inverse=True)
        level = np.where((context < 0) | (context >= n_levels), n_levels - 1, context)
        cell = (row * n_levels + level) * n_arms + np.asarray(arm, dtype=np.int64)
        size = shoppers.size * n_levels * n_arms
        shape = (shoppers.size, n_levels, n_arms)
        reward = np.asarray(reward, dtype=np.float64)

        def per_cell(values):
            return np.bincount(cell, weights=values, minlength=size).reshape(shape)

        return cls(
            shoppers, per_cell(np.ones_like(reward)), per_cell(reward), per_cell(reward * reward)
        )

    @property
    def n_levels(self) -> int:
        return int(self.count.shape[1])


@dataclass(frozen=True)
class _Hyper:
    mean: np.ndarray  # mu (d,)
    shopper_cov: np.ndarray  # Sigma (d, d)
    context_cov: np.ndarray  # Omega (d, d)
    offsets: np.ndarray  # gamma (K + 1, d)
    noise_var: float


@dataclass(frozen=True)
class _CellTable:
    """The (shopper, context) cells with decisions, of some shoppers, in feature space."""

    owner: np.ndarray  # (E,) row of the shopper among those given, ascending
    level: np.ndarray  # (E,) context level
    xtx: np.ndarray  # (E, d, d) sum of x x^T / v
    xty: np.ndarray  # (E, d) sum of x r / v
    yty: np.ndarray  # (E,) sum of r^2 / v
    weight: np.ndarray  # (E,) decisions
    n_rows: int


def _cell_table(stats, rows, features, precision) -> _CellTable:
    count = stats.count[rows]
    owner, level = np.nonzero(count.sum(axis=-1) > 0)
    n_arms, d = features.shape
    outer = (features[:, :, None] * features[:, None, :]).reshape(n_arms, d * d)
    scale = precision[level]
    cell_count = count[owner, level]
    return _CellTable(
        owner,
        level,
        ((cell_count * scale) @ outer).reshape(-1, d, d),
        (stats.reward[rows][owner, level] * scale) @ features,
        (stats.reward_sq[rows][owner, level] * scale).sum(axis=-1),
        cell_count.sum(axis=-1),
        len(rows),
    )


def _per_shopper(values: np.ndarray, owner: np.ndarray, n_rows: int) -> np.ndarray:
    out = np.zeros((n_rows,) + values.shape[1:])
    if owner.size:
        starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
        out[owner[starts]] = np.add.reduceat(values, starts, axis=0)
    return out


@dataclass(frozen=True)
class _Posterior:
    mean: np.ndarray  # (R, d) of w_u
    cov: np.ndarray  # (R, d, d) of w_u
    deviation: np.ndarray  # (E, d) E[delta_uc]
    theta_cov: np.ndarray  # (E, d, d) Cov[w_u + delta_uc]
    inner: np.ndarray  # (E, d, d) M = (Omega^-1 + B)^-1, B the cell's precision-scaled xtx
    inner_scaled: np.ndarray  # (E, d, d) M B

    def deviation_cov(self, owner: np.ndarray) -> np.ndarray:
        """Cov[delta_uc] (E, d, d): only EM needs it."""
        spread = self.inner_scaled @ self.cov[owner] @ self.inner_scaled.transpose(0, 2, 1)
        return self.inner + spread


def _posterior(cells: _CellTable, hyper: _Hyper, served: np.ndarray | None = None) -> _Posterior:
    """Exact Gaussian posteriors: each cell's delta integrated out (Woodbury), then w_u;
    the cells' own posteriors for the `served` cells only (all when None)."""
    d = hyper.mean.size
    eye = np.eye(d)
    shopper_precision = np.linalg.inv(hyper.shopper_cov)
    scaled = cells.xtx / hyper.noise_var  # B
    inner = np.linalg.inv(np.linalg.inv(hyper.context_cov)[None] + scaled)  # M
    target = cells.xty - (cells.xtx @ hyper.offsets[cells.level][:, :, None])[:, :, 0]
    target = target / hyper.noise_var  # b' / noise
    inner_scaled = inner @ scaled  # M B
    # Evidence about w_u from one cell: precision B - B M B, information (I - B M) b'.
    cell_precision = scaled - scaled @ inner_scaled
    cell_information = target - (inner_scaled.transpose(0, 2, 1) @ target[:, :, None])[:, :, 0]
    precision = shopper_precision[None] + _per_shopper(cell_precision, cells.owner, cells.n_rows)
    cov = np.linalg.inv(precision)
    cov = 0.5 * (cov + cov.transpose(0, 2, 1))
    information = (shopper_precision @ hyper.mean)[None] + _per_shopper(
        cell_information, cells.owner, cells.n_rows
    )
    mean = (cov @ information[:, :, None])[:, :, 0]
    some = slice(None) if served is None else served
    owner = cells.owner[some]
    inner_some, scaled_some = inner[some], scaled[some]
    left_over = target[some] - (scaled_some @ mean[owner][:, :, None])[:, :, 0]
    deviation = (inner_some @ left_over[:, :, None])[:, :, 0]
    keep = eye[None] - inner_scaled[some]
    theta_cov = keep @ cov[owner] @ keep.transpose(0, 2, 1) + inner_some
    return _Posterior(mean, cov, deviation, theta_cov, inner, inner_scaled)


def offset_design(keys: tuple[str, ...] | list[str]) -> np.ndarray:
    """(K + 1, F) 0/1: the factors each level's crowd offset adds up, a category's and a
    device class's (`context_key`, "category|device"); the pooled level K has one of its own.
    Hoodies on mobile then learn from hoodies on desktop and from mobile on every category,
    instead of from their own decisions alone (bench/simulate.py --tastes category)."""
    parts = [key.rsplit("|", 1) if "|" in key else [key, ""] for key in keys]
    categories = sorted({category for category, _ in parts})
    devices = sorted({device for _, device in parts})
    design = np.zeros((len(keys) + 1, len(categories) + len(devices) + 1))
    for level, (category, device) in enumerate(parts):
        design[level, categories.index(category)] = 1.0
        design[level, len(categories) + devices.index(device)] = 1.0
    design[len(keys), -1] = 1.0
    return design


def _crowd_offsets(design, level_xtx, level_xty) -> np.ndarray:
    """Least squares for gamma = design @ factors, (L, d), from each level's x'x and x'r left
    over; a tiny ridge picks one of the equivalent splits (a category's and a device's parts
    share a constant, which the re-centring below removes anyway)."""
    n_levels, d = level_xty.shape
    n_factors = design.shape[1]
    # Block (f, g) of the normal equations: sum over levels with both factors of x'x.
    normal = np.einsum("lf,lg,lij->figj", design, design, level_xtx).reshape(
        n_factors * d, n_factors * d
    )
    target = np.einsum("lf,li->fi", design, level_xty).reshape(-1)
    ridge = 1e-6 * max(np.trace(level_xtx.sum(axis=0)) / d, 1e-12)
    factors = np.linalg.solve(normal + ridge * np.eye(n_factors * d), target)
    return design @ factors.reshape(n_factors, d)


def _em_step(cells: _CellTable, hyper: _Hyper, design: np.ndarray | None = None) -> _Hyper:
    post = _posterior(cells, hyper)
    d, n_levels = hyper.mean.size, len(hyper.offsets)
    mean = post.mean.mean(axis=0)
    spread = post.mean - mean
    shopper_cov = post.cov.mean(axis=0) + spread.T @ spread / len(spread)
    deviation = post.deviation
    context_cov = post.deviation_cov(cells.owner).mean(axis=0)
    context_cov += deviation.T @ deviation / len(deviation)
    # The crowd's offsets: weighted least squares on what the shoppers' tastes leave over.
    theta = post.mean[cells.owner] + deviation
    left_over = cells.xty - (cells.xtx @ theta[:, :, None])[:, :, 0]
    level_xtx = np.zeros((n_levels, d, d))
    level_xty = np.zeros((n_levels, d))
    np.add.at(level_xtx, cells.level, cells.xtx)
    np.add.at(level_xty, cells.level, left_over)
    if design is None:  # one offset per level
        ridge = 1e-6 * max(np.trace(level_xtx.sum(axis=0)) / d, 1e-12) * np.eye(d)
        offsets = np.linalg.solve(level_xtx + ridge, level_xty[:, :, None])[:, :, 0]
    else:
        offsets = _crowd_offsets(design, level_xtx, level_xty)
    theta = theta + offsets[cells.level]
    residual = (
        cells.yty.sum()
        - 2 * np.einsum("ei,ei->", theta, cells.xty)
        + np.einsum("ei,eij,ej->", theta, cells.xtx, theta)
        + np.einsum("eij,eji->", cells.xtx, post.theta_cov)
    )
    # gamma and mu only meet as mu + gamma_c: keep the decision-weighted mean offset at zero,
    # so the context-free part is the shopper's average taste.
    level_weight = np.bincount(cells.level, weights=cells.weight, minlength=n_levels)
    shift = level_weight @ offsets / max(level_weight.sum(), 1e-12)

    def jittered(cov):
        cov = 0.5 * (cov + cov.T)
        return cov + 1e-9 * max(np.trace(cov) / d, 1e-12) * np.eye(d)

    return _Hyper(
        mean + shift,
        jittered(shopper_cov),
        jittered(context_cov),
        offsets - shift,
        max(residual / max(cells.weight.sum(), 1e-12), 1e-3),
    )


def _level_references(stats: ContextStatistics, features: np.ndarray, base: np.ndarray):
    """Pooled taste per context level, shrunk to `base` where a level has few decisions:
    the expected rewards that shape each level's noise variance."""
    count = stats.count.sum(axis=0)  # (L, A)
    reward = stats.reward.sum(axis=0)
    prior = 50.0  # decisions' worth of the context-free prediction
    expected = (reward + prior * (features @ base)[None]) / (count + prior)
    return np.array([np.linalg.lstsq(features, e, rcond=None)[0] for e in expected])


def _hyper_start(stats, rows, features) -> tuple[_Hyper, np.ndarray, int]:
    """em.py's context-free model on the sample: mu, a split of its Sigma, noise, references."""
    pooled = _Cells(
        stats.shoppers[rows],
        features,
        stats.count[rows].sum(axis=1),
        stats.reward[rows].sum(axis=1),
        stats.reward_sq[rows].sum(axis=1),
    )
    first = pooled.statistics(None)
    d = features.shape[1]
    total = first.xtx.sum(axis=0)
    ridge = 1e-3 * max(np.trace(total) / d, 1e-12) * np.eye(d)
    pooled_mean = np.linalg.solve(total + ridge, first.xty.sum(axis=0))
    mean, cov, noise_var, steps = _population(
        pooled.statistics(pooled_mean), max_iter=150, tol=1e-6
    )
    references = _level_references(stats, features, mean)
    offsets = references - mean
    hyper = _Hyper(mean, 0.7 * cov, 0.3 * cov + 1e-6 * np.eye(d), offsets, noise_var)
    return hyper, references, steps


def _pack(hyper: _Hyper) -> np.ndarray:
    return np.concatenate(
        [
            hyper.mean,
            hyper.shopper_cov.ravel(),
            hyper.context_cov.ravel(),
            hyper.offsets.ravel(),
            [hyper.noise_var],
        ]
    )


def _change(new: _Hyper, old: _Hyper) -> float:
    """Largest relative change of one block of hyperparameters (each on its own scale)."""
    pairs = [
        (new.mean, old.mean),
        (new.shopper_cov, old.shopper_cov),
        (new.context_cov, old.context_cov),
        (new.offsets, old.offsets),
        (np.array([new.noise_var]), np.array([old.noise_var])),
    ]
    return max(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12) for a, b in pairs)


def fit_context_preferences(
    stats: ContextStatistics,
    arm_features: np.ndarray,
    keys: tuple[str, ...] | list[str],
    *,
    max_iter: int = 20,
    tol: float = 1e-3,
    em_shoppers: int = EM_SHOPPERS,
    min_entry_decisions: float = MIN_ENTRY_DECISIONS,
    seed: int = 0,
    additive: bool = True,
) -> ContextFit:
    """Full refit; `keys` name the modelled levels 0..K-1 of `stats` (level K is pooled).
    The crowd's offsets add a category's and a device class's (`offset_design`); with
    `additive=False` each level has its own."""
    features = np.asarray(arm_features, dtype=np.float64)
    keys = tuple(keys)
    if stats.n_levels != len(keys) + 1:
        raise ValueError(f"{stats.n_levels} context levels for {len(keys)} keys (+1 pooled)")
    active = np.flatnonzero(stats.count.sum(axis=(1, 2)) > 0)
    rng = np.random.default_rng(seed)
    sample = active
    if active.size > em_shoppers:
        sample = np.sort(rng.choice(active, em_shoppers, replace=False))
    hyper, references, steps = _hyper_start(stats, sample, features)
    design = offset_design(keys) if additive else None
    precision = 1.0 / reward_variance(references @ features.T)  # (L, A)
    cells = _cell_table(stats, sample, features, precision)
    for steps in range(1, max_iter + 1):  # noqa: B007 (the count is reported)
        previous, hyper = hyper, _em_step(cells, hyper, design)
        if _change(hyper, previous) < tol:
            break
    return _final_fit(
        stats, active, features, precision, hyper, references, keys, steps, min_entry_decisions
    )


def refit_context_shoppers(
    fit: ContextFit,
    stats: ContextStatistics,
    arm_features: np.ndarray,
    *,
    min_entry_decisions: float = MIN_ENTRY_DECISIONS,
) -> ContextFit:
    """Incremental update: posteriors of the shoppers in `stats` (all their decisions) under
    `fit`'s hyperparameters; same version, only those shoppers."""
    features = np.asarray(arm_features, dtype=np.float64)
    precision = 1.0 / reward_variance(fit.references @ features.T)
    population = fit.population
    hyper = _Hyper(
        population.mean.astype(np.float64),
        fit.shopper_cov,
        fit.context_cov,
        np.vstack([population.offsets, fit.pooled_offset[None]]).astype(np.float64),
        fit.noise_var,
    )
    active = np.flatnonzero(stats.count.sum(axis=(1, 2)) > 0)
    update = _final_fit(
        stats,
        active,
        features,
        precision,
        hyper,
        fit.references,
        population.keys,
        0,
        min_entry_decisions,
    )
    return ContextFit(**{**update.__dict__, "version": fit.version})


def _final_fit(
    stats, active, features, precision, hyper, references, keys, steps, min_entry_decisions
) -> ContextFit:
    n_keys, d = len(keys), features.shape[1]

    def chunk(start: int) -> tuple[np.ndarray, ...]:
        rows = active[start : start + _CHUNK_SHOPPERS]
        cells = _cell_table(stats, rows, features, precision)
        # The pooled level is served the context-free part; so is a context where the shopper
        # has few decisions, whose deviation barely moves (those decisions count in w_u).
        served = (cells.level < n_keys) & (cells.weight >= min_entry_decisions)
        post = _posterior(cells, hyper, served)
        owner, level = cells.owner[served], cells.level[served]
        theta = post.mean[owner] + post.deviation + hyper.offsets[level]
        return (
            post.mean.astype(np.float32),
            (post.cov + hyper.context_cov).astype(np.float32),
            owner + start,
            level,
            theta.astype(np.float32),
            post.theta_cov.astype(np.float32),
        )

    # numpy's batched linear algebra lets go of the GIL: chunks fit side by side on the
    # cores there are, a few in flight at a time, in order.
    with ThreadPoolExecutor(max_workers=_FIT_THREADS) as pool:
        parts = list(pool.map(chunk, range(0, active.size, _CHUNK_SHOPPERS)))
    means, covs, entry_row, entry_level, entry_means, entry_covs = (
        [part[i] for part in parts] for i in range(6)
    )

    def joined(parts, shape, dtype=np.float32):
        return np.concatenate(parts) if parts else np.zeros(shape, dtype)

    population = ContextPopulation(
        hyper.mean.astype(np.float32),
        (hyper.shopper_cov + hyper.context_cov).astype(np.float32),
        keys,
        hyper.offsets[:n_keys].astype(np.float32),
    )
    digest = hashlib.sha256(population.to_bytes() + _pack(hyper).tobytes())
    digest.update(stats.shoppers[active].tobytes())
    return ContextFit(
        version=f"pc-{digest.hexdigest()[:12]}",
        population=population,
        noise_var=float(hyper.noise_var),
        shopper_cov=hyper.shopper_cov,
        context_cov=hyper.context_cov,
        references=np.asarray(references, dtype=np.float64),
        pooled_offset=hyper.offsets[n_keys].astype(np.float64),
        shoppers=stats.shoppers[active],
        means=joined(means, (0, d)),
        covs=joined(covs, (0, d, d)),
        decisions=stats.count[active].sum(axis=(1, 2)),
        entry_row=joined(entry_row, (0,), np.int64),
        entry_level=joined(entry_level, (0,), np.int64),
        entry_means=joined(entry_means, (0, d)),
        entry_covs=joined(entry_covs, (0, d, d)),
        iterations=steps,
    )
