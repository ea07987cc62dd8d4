"""A context-aware fit as stored and served: per shopper a context-free posterior and one per
modelled context they were seen in (the fitting is in `context`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from stylerec.ml.preferences import ContextPopulation, ContextualPreference


@dataclass(frozen=True)
class ContextFit:
    """A context-aware fit: population, hyperparameters, and per shopper the context-free
    posterior plus one entry per modelled context the shopper was seen in."""

    version: str
    population: ContextPopulation
    noise_var: float
    shopper_cov: np.ndarray  # Sigma
    context_cov: np.ndarray  # Omega
    references: np.ndarray  # (K + 1, d) tastes whose expected rewards shape each level's noise
    pooled_offset: np.ndarray  # (d,) the crowd's offset in the pooled level (refits need it)
    shoppers: np.ndarray  # (U,) sorted ids
    means: np.ndarray  # (U, d) E[w_u]
    covs: np.ndarray  # (U, d, d) Cov[w_u] + Omega: the context-free part served
    decisions: np.ndarray  # (U,)
    entry_row: np.ndarray  # (E,) shopper row, ascending
    entry_level: np.ndarray  # (E,) modelled context code
    entry_means: np.ndarray  # (E, d)
    entry_covs: np.ndarray  # (E, d, d)
    iterations: int = 0

    @property
    def n_features(self) -> int:
        return int(self.population.mean.size)

    def hyperparameters(self) -> dict:
        """JSON-safe: what an incremental refit needs besides the population."""
        return {
            "shopper_cov": self.shopper_cov.tolist(),
            "context_cov": self.context_cov.tolist(),
            "references": self.references.tolist(),
            "pooled_offset": self.pooled_offset.tolist(),
        }

    @classmethod
    def from_hyperparameters(
        cls, version: str, population: ContextPopulation, noise_var: float, hyper: dict
    ) -> ContextFit:
        """A fit with no shoppers, from a stored model: what `refit_context_shoppers` needs."""
        d = population.mean.size
        empty = np.zeros(0, np.int64)
        return cls(
            version,
            population,
            float(noise_var),
            np.asarray(hyper["shopper_cov"], dtype=np.float64),
            np.asarray(hyper["context_cov"], dtype=np.float64),
            np.asarray(hyper["references"], dtype=np.float64),
            np.asarray(hyper["pooled_offset"], dtype=np.float64),
            empty,
            np.zeros((0, d), np.float32),
            np.zeros((0, d, d), np.float32),
            np.zeros(0),
            empty,
            empty,
            np.zeros((0, d), np.float32),
            np.zeros((0, d, d), np.float32),
        )

    def items(self) -> Iterator[tuple[int, ContextualPreference]]:
        """(shopper id, ContextualPreference) for every shopper in the fit."""
        bounds = np.searchsorted(self.entry_row, np.arange(self.shoppers.size + 1))
        for row, shopper in enumerate(self.shoppers.tolist()):
            entries = slice(bounds[row], bounds[row + 1])
            yield (
                shopper,
                ContextualPreference(
                    self.means[row],
                    self.covs[row],
                    self.entry_level[entries],
                    self.entry_means[entries],
                    self.entry_covs[entries],
                ),
            )

    def preferences(
        self, shoppers: np.ndarray, levels: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Means (n, d) and covs (n, d, d) per (shopper, context code) pair; a code outside
        0..K-1 gets the context-free part, an unknown shopper the population's."""
        shoppers = np.asarray(shoppers, dtype=np.int64)
        levels = np.asarray(levels, dtype=np.int64)
        n_keys = len(self.population.keys)
        rows = np.full(shoppers.shape, -1)
        if self.shoppers.size:
            found = np.minimum(np.searchsorted(self.shoppers, shoppers), self.shoppers.size - 1)
            rows = np.where(self.shoppers[found] == shoppers, found, -1)
        known = rows >= 0
        means = np.where(known[:, None], self.means[np.maximum(rows, 0)], self.population.mean)
        covs = np.where(
            known[:, None, None], self.covs[np.maximum(rows, 0)], self.population.cov
        ).astype(np.float64)
        modelled = (levels >= 0) & (levels < n_keys)
        means = means + np.where(modelled[:, None], self.population.offsets[levels % n_keys], 0)
        entry_key = self.entry_row * n_keys + self.entry_level
        wanted = rows * n_keys + levels
        if entry_key.size:
            at = np.minimum(np.searchsorted(entry_key, wanted), entry_key.size - 1)
            hit = known & modelled & (entry_key[at] == wanted)
            means[hit] = self.entry_means[at[hit]]
            covs[hit] = self.entry_covs[at[hit]]
        return means.astype(np.float32), covs.astype(np.float32)
