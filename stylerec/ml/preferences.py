"""Shopper preferences: posteriors over a preference vector, and a fit holding one per shopper.

reward = arm_features @ w_shopper + noise, with w_shopper ~ N(population.mean, population.cov);
a shopper never seen gets the population entry, and any arm, including a style added after
the fit, is scored from its features alone. The fit itself is in `em`.
"""

from __future__ import annotations

import functools
import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

_PREFERENCE_MAGIC = b"SRP1"
_CONTEXTUAL_MAGIC = b"SRC1"
# Before any data: zero preference, prior std 0.1 per feature (click rates are ~0.01-0.3),
# Bernoulli-sized noise. The first fit replaces all three.
COLD_START_VAR = 0.01
COLD_START_NOISE_VAR = 1.0
# On a handful of decisions the likelihood would fit them exactly with zero noise.
MIN_NOISE_VAR = 1e-3


@dataclass(frozen=True)
class Preference:
    """One shopper's (or the population's) posterior over the preference vector."""

    mean: np.ndarray  # (d,) float32: expected reward per unit of each arm feature
    cov: np.ndarray  # (d, d) float32: posterior covariance, the uncertainty Thompson explores

    def scores(self, arm_features: np.ndarray) -> np.ndarray:
        """Expected reward of each arm (rows of `arm_features`)."""
        return np.asarray(arm_features, dtype=np.float64) @ self.mean.astype(np.float64)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form for a JSONField or cache: {"mean": [...], "cov": [[...], ...]}."""
        return {"mean": self.mean.tolist(), "cov": self.cov.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preference:
        """A Preference, or the ContextPopulation a context-aware fit stored (its "contexts")."""
        mean = np.asarray(data["mean"], dtype=np.float32)
        cov = np.asarray(data["cov"], dtype=np.float32).reshape(mean.size, mean.size)
        if "contexts" in data:
            offsets = np.asarray(data["contexts"]["offsets"], dtype=np.float32)
            return ContextPopulation(
                mean, cov, tuple(data["contexts"]["keys"]), offsets.reshape(-1, mean.size)
            )
        return Preference(mean, cov)

    def to_bytes(self) -> bytes:
        """Compact form for a cache or BinaryField: magic, d (uint16), float32 LE mean and cov."""
        d = self.mean.size
        header = _PREFERENCE_MAGIC + struct.pack("<H", d)
        return header + self.mean.astype("<f4").tobytes() + self.cov.astype("<f4").tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> Preference:
        """A Preference, or the ContextualPreference a context-aware fit stored."""
        if data[:4] == _CONTEXTUAL_MAGIC:
            return ContextualPreference.from_bytes(data)
        if data[:4] != _PREFERENCE_MAGIC:
            raise ValueError("not a serialised Preference")
        (d,) = struct.unpack("<H", data[4:6])
        values = np.frombuffer(data, dtype="<f4", offset=6)
        if values.size != d + d * d:
            raise ValueError(
                f"serialised Preference has {values.size} values, expected {d + d * d}"
            )
        return cls(values[:d].astype(np.float32), values[d:].reshape(d, d).astype(np.float32))


def context_key(category: object, device: object) -> str:
    """The context a decision's logged category and device class fall in (the fit's SQL
    builds the same string from the logged JSON)."""
    return f"{'' if category is None else category}|{'' if device is None else device}"


@dataclass(frozen=True)
class ContextPopulation(Preference):
    """The population of a context-aware fit. `mean`/`cov` are its context-free part, what a
    context the fit did not model gets; a modelled context adds the crowd's offset there."""

    keys: tuple[str, ...]  # modelled context keys (`context_key`), codes 0..K-1
    offsets: np.ndarray  # (K, d) float32: the crowd's taste in each context, minus the mean

    def code(self, key: str | None) -> int | None:
        try:
            return self.keys.index(key)
        except ValueError:
            return None

    def to_dict(self) -> dict[str, Any]:
        contexts = {"keys": list(self.keys), "offsets": self.offsets.tolist()}
        return {**super().to_dict(), "contexts": contexts}


@dataclass(frozen=True)
class ContextualPreference(Preference):
    """A shopper's posterior in a context-aware fit: `mean`/`cov` the context-free part (with
    the spread of contexts in `cov`), plus a posterior in each modelled context they were
    seen in. Elsewhere `preference_in_context` adds the crowd's offset to the free part."""

    contexts: np.ndarray  # (n,) codes into the population's keys
    context_means: np.ndarray  # (n, d) float32
    context_covs: np.ndarray  # (n, d, d) float32

    def to_bytes(self) -> bytes:
        """Magic, d and n (uint16), the n codes (uint16), then float32 LE: the mean, the n
        context means, and the upper triangles of the cov and the n context covs
        (symmetric: half the bytes in every profile row and cache entry)."""
        d, n = self.mean.size, self.contexts.size
        upper = _upper(d)
        covs = np.concatenate([self.cov[None], self.context_covs.reshape(n, d, d)])
        return b"".join(
            [
                _CONTEXTUAL_MAGIC + struct.pack("<HH", d, n),
                self.contexts.astype("<u2").tobytes(),
                self.mean.astype("<f4").tobytes(),
                self.context_means.astype("<f4").tobytes(),
                covs[:, upper[0], upper[1]].astype("<f4").tobytes(),
            ]
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> ContextualPreference:
        d, n = struct.unpack("<HH", data[4:8])
        codes = np.frombuffer(data, dtype="<u2", count=n, offset=8).astype(np.int64)
        values = np.frombuffer(data, dtype="<f4", offset=8 + 2 * n).astype(np.float32)
        triangle = d * (d + 1) // 2
        if values.size != (1 + n) * (d + triangle):
            raise ValueError(f"serialised ContextualPreference has {values.size} values")
        means = values[: (1 + n) * d].reshape(1 + n, d)
        covs = np.zeros((1 + n, d, d), np.float32)
        upper = _upper(d)
        covs[:, upper[0], upper[1]] = values[(1 + n) * d :].reshape(1 + n, triangle)
        covs = covs + np.triu(covs, 1).transpose(0, 2, 1)
        return cls(means[0], covs[0], codes, means[1:], covs[1:])


@functools.cache
def _upper(d: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(d)


def preference_in_context(
    preference: Preference, population: Preference, key: str | None
) -> Preference:
    """What the chooser scores a product with: the shopper's (or population's) posterior in
    the decision's context. A fit without contexts, or a context it did not model (a new
    or rare category), gets the context-free part."""
    code = population.code(key) if isinstance(population, ContextPopulation) else None
    if code is None:
        return Preference(preference.mean, preference.cov)
    if isinstance(preference, ContextualPreference):
        seen = np.flatnonzero(preference.contexts == code)
        if seen.size:
            return Preference(preference.context_means[seen[0]], preference.context_covs[seen[0]])
    return Preference(preference.mean + population.offsets[code], preference.cov)


@dataclass(frozen=True)
class PreferenceFit:
    """A fitted model: the population entry plus one posterior per shopper seen in the logs."""

    version: str
    population: Preference
    noise_var: float  # noise scale: a decision's variance is this x reward_variance(its mean)
    shoppers: np.ndarray  # (U,) int64, sorted shopper ids (whatever ints the caller uses)
    means: np.ndarray  # (U, d) float32
    covs: np.ndarray  # (U, d, d) float32
    decisions: np.ndarray  # (U,) float64, (weighted) decisions each posterior was fitted on
    iterations: int = 0  # EM iterations the population took (0 for an incremental update)

    @classmethod
    def cold_start(cls, n_features: int, version: str = "cold-start") -> PreferenceFit:
        """The fit to serve before the first refit: no shoppers, a broad zero-mean population."""
        population = Preference(
            np.zeros(n_features, np.float32),
            (COLD_START_VAR * np.eye(n_features)).astype(np.float32),
        )
        return cls(
            version,
            population,
            COLD_START_NOISE_VAR,
            np.zeros(0, np.int64),
            np.zeros((0, n_features), np.float32),
            np.zeros((0, n_features, n_features), np.float32),
            np.zeros(0),
        )

    @property
    def n_features(self) -> int:
        return int(self.population.mean.size)

    def preference(self, shopper: int) -> Preference:
        """The shopper's posterior, or the population entry for a shopper not in this fit."""
        row = self._rows(np.asarray([shopper]))[0]
        if row < 0:
            return self.population
        return Preference(self.means[row], self.covs[row])

    def preferences(self, shoppers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Means (n, d) and covs (n, d, d) for many shoppers, population rows for unknown ones."""
        rows = self._rows(np.asarray(shoppers, dtype=np.int64))
        known = rows >= 0
        if self.shoppers.size == 0:
            count = rows.size
            return (
                np.broadcast_to(self.population.mean, (count, self.n_features)).copy(),
                np.broadcast_to(self.population.cov, (count,) + self.population.cov.shape).copy(),
            )
        means = np.where(known[:, None], self.means[np.maximum(rows, 0)], self.population.mean)
        covs = np.where(known[:, None, None], self.covs[np.maximum(rows, 0)], self.population.cov)
        return means.astype(np.float32), covs.astype(np.float32)

    def items(self) -> Iterator[tuple[int, Preference]]:
        """(shopper id, Preference) for every shopper in the fit, e.g. to write profile rows."""
        for row, shopper in enumerate(self.shoppers.tolist()):
            yield shopper, Preference(self.means[row], self.covs[row])

    def merge(self, update: PreferenceFit) -> PreferenceFit:
        """This fit with the shoppers of `update` (an incremental refit) replaced or added."""
        keep = ~np.isin(self.shoppers, update.shoppers)
        order = np.argsort(np.concatenate([self.shoppers[keep], update.shoppers]), kind="stable")

        def join(mine: np.ndarray, theirs: np.ndarray) -> np.ndarray:
            return np.concatenate([mine[keep], theirs])[order]

        return PreferenceFit(
            self.version,
            self.population,
            self.noise_var,
            join(self.shoppers, update.shoppers),
            join(self.means, update.means),
            join(self.covs, update.covs),
            join(self.decisions, update.decisions),
            self.iterations,
        )

    def to_bytes(self) -> bytes:
        """The whole fit as an .npz (no pickle); `from_bytes` restores it."""
        buffer = io.BytesIO()
        np.savez(
            buffer,
            version=np.array(self.version),
            population_mean=self.population.mean,
            population_cov=self.population.cov,
            noise_var=np.array(self.noise_var),
            shoppers=self.shoppers,
            means=self.means,
            covs=self.covs,
            decisions=self.decisions,
            iterations=np.array(self.iterations),
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> PreferenceFit:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            return cls(
                str(arrays["version"]),
                Preference(arrays["population_mean"], arrays["population_cov"]),
                float(arrays["noise_var"]),
                arrays["shoppers"],
                arrays["means"],
                arrays["covs"],
                arrays["decisions"],
                int(arrays["iterations"]),
            )

    def _rows(self, shoppers: np.ndarray) -> np.ndarray:
        if self.shoppers.size == 0:
            return np.full(shoppers.shape, -1, dtype=np.int64)
        rows = np.minimum(np.searchsorted(self.shoppers, shoppers), self.shoppers.size - 1)
        return np.where(self.shoppers[rows] == shoppers, rows, -1)
