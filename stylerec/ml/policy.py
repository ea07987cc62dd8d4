"""Choosing an arm per product with honest probabilities: Thompson, softmax, greedy, uniform.

Thompson sampling (strength 0.25 plus the uniform bucket by default; bench/choose.py
--compare ranks the alternatives) keeps exploring new shoppers and styles in proportion to
their uncertainty. Its propensities have no closed form: they are estimated from `draws`
posterior samples shared by a page, and the arm is then drawn from that estimate, so the
logged probability is exactly the one the draw used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stylerec.ml.preferences import Preference, preference_in_context

POLICIES = ("thompson", "softmax", "greedy", "uniform")
# The uniform share shrinks as a shopper's posterior in a context narrows, down to this part
# of it: uniform draws are what a new shopper needs and what offline evaluation needs kept
# above zero, but an established shopper's cost more clicks than they teach (measured with
# bench/simulate.py --tastes category --seeds).
UNIFORM_FLOOR = 0.2
# Bounds the (shoppers x products x draws x arms) working array of batch calls.
_CHUNK_ELEMENTS = 4_000_000


@dataclass(frozen=True)
class ExplorationSettings:
    """How much to explore. `strength`: Thompson multiplies the posterior std by it (0 is
    greedy); softmax uses it as the temperature in reward units. `uniform_share` of the
    draws are uniformly random over the candidates, which keeps offline evaluation of any
    policy unbiased: all of it for a shopper the model knows nothing of, less as their
    posterior narrows (`uniform_shares`), to `uniform_floor` of it (1: a fixed share)."""

    policy: str = "thompson"
    uniform_share: float = 0.05
    strength: float = 0.25
    draws: int = 256
    uniform_floor: float = UNIFORM_FLOOR

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, not {self.policy!r}")
        if not 0.0 <= self.uniform_share <= 1.0:
            raise ValueError("uniform_share must be within [0, 1]")
        if not 0.0 <= self.uniform_floor <= 1.0:
            raise ValueError("uniform_floor must be within [0, 1]")
        if self.strength < 0 or (self.policy == "softmax" and self.strength == 0):
            raise ValueError("strength must be >= 0 (> 0 for softmax)")
        if self.draws < 1:
            raise ValueError("draws must be >= 1")


@dataclass(frozen=True)
class Choice:
    """One page: the probability of every arm per product and the arm drawn."""

    probabilities: np.ndarray  # (P, A): zero off-candidate, rows sum to 1
    chosen: np.ndarray  # (P,) arm index drawn from each row


def choose(
    preference: Preference,
    arm_features: np.ndarray,
    candidate_mask: np.ndarray,
    settings: ExplorationSettings,
    rng: np.random.Generator,
    prior: Preference | None = None,
) -> Choice:
    """The request-path call: choose an arm for each product of one shopper's page.

    `arm_features` (A, d) is the cached arm table (row 0 the original, by convention),
    `candidate_mask` (P, A) bool marks, per product, the arms it may show (ready
    renditions plus the original). Use the population `Preference` for unknown shoppers;
    `prior` (the population's, in the same context) lets the uniform share shrink with what
    is known of this shopper (`uniform_shares`).
    """
    mask = np.asarray(candidate_mask, dtype=bool)
    probabilities = page_probabilities(
        preference.mean[None],
        preference.cov[None],
        arm_features,
        mask[None],
        settings,
        rng,
        prior_cov=None if prior is None else prior.cov,
    )[0]
    return Choice(probabilities, sample_arms(probabilities, rng))


def choose_in_contexts(
    preference: Preference,
    population: Preference,
    arm_features: np.ndarray,
    candidate_mask: np.ndarray,
    contexts: list[str],
    settings: ExplorationSettings,
    rng: np.random.Generator,
) -> Choice:
    """`choose` for a page whose products are in different contexts (`context_key` each):
    each context's products are scored with the shopper's posterior there. (One call per
    context on the page: batching them all into one numpy call measured slower.)"""
    mask = np.asarray(candidate_mask, dtype=bool)
    probabilities = np.zeros(mask.shape)
    chosen = np.zeros(len(mask), dtype=np.int64)
    for key in dict.fromkeys(contexts):
        rows = np.array([c == key for c in contexts])
        choice = choose(
            preference_in_context(preference, population, key),
            arm_features,
            mask[rows],
            settings,
            rng,
            prior=population,
        )
        probabilities[rows], chosen[rows] = choice.probabilities, choice.chosen
    return Choice(probabilities, chosen)


def page_probabilities(
    means: np.ndarray,
    covs: np.ndarray,
    arm_features: np.ndarray,
    candidate_mask: np.ndarray,
    settings: ExplorationSettings,
    rng: np.random.Generator,
    prior_cov: np.ndarray | None = None,
) -> np.ndarray:
    """Probabilities (G, P, A) for G shoppers' pages of P products: means (G, d), covs
    (G, d, d), candidate_mask (G, P, A). Draws are shared within a page, as in `choose`.
    With `prior_cov` (d, d) the uniform share of each page follows `uniform_shares`."""
    mask = np.asarray(candidate_mask, dtype=bool)
    if not mask.any(axis=-1).all():
        raise ValueError("every product needs at least one candidate arm (the original)")
    features = np.asarray(arm_features, dtype=np.float64)
    means = np.asarray(means, dtype=np.float64)
    uniform = mask / mask.sum(axis=-1, keepdims=True)
    if settings.policy == "uniform":
        return uniform
    if settings.policy == "thompson" and settings.strength > 0:
        policy = np.empty(mask.shape)
        step = max(1, _CHUNK_ELEMENTS // (mask.shape[1] * settings.draws * mask.shape[2]))
        for start in range(0, len(means), step):
            pages = slice(start, start + step)
            policy[pages] = _thompson(
                means[pages], covs[pages], features, mask[pages], settings, rng
            )
    else:
        scores = np.where(mask, (means @ features.T)[:, None, :], -np.inf)
        if settings.policy == "softmax":
            policy = np.exp((scores - scores.max(axis=-1, keepdims=True)) / settings.strength)
        else:  # greedy, or Thompson with no exploration: ties share the mass
            policy = (scores == scores.max(axis=-1, keepdims=True)).astype(np.float64)
        policy /= policy.sum(axis=-1, keepdims=True)
    share = uniform_shares(covs, prior_cov, features, settings)[:, None, None]
    return (1.0 - share) * policy + share * uniform


def uniform_shares(
    covs: np.ndarray, prior_cov: np.ndarray | None, arm_features: np.ndarray, settings
) -> np.ndarray:
    """Per shopper (G,): `uniform_share` x (floor + (1 - floor) r^2), r the
    variance of the arms' expected rewards left in the posterior over that of the prior
    (1 for a new shopper, towards 0 as their decisions pile up); without a prior, the share.
    The square: r falls slowly (about 1 / (1 + n / n0) after n decisions), and measured,
    the uniform draws of a half-known shopper cost more than they taught."""
    share = np.full(len(covs), settings.uniform_share)
    if prior_cov is None:
        return share
    features = np.asarray(arm_features, dtype=np.float64)
    prior = np.einsum("ai,ij,aj->", features, np.asarray(prior_cov, np.float64), features)
    left = np.einsum("ai,gij,aj->g", features, np.asarray(covs, np.float64), features)
    ratio = np.clip(left / max(prior, 1e-12), 0.0, 1.0)
    floor = settings.uniform_floor
    return share * (floor + (1.0 - floor) * ratio**2)


def decision_probabilities(
    means: np.ndarray,
    covs: np.ndarray,
    arm_features: np.ndarray,
    candidate_mask: np.ndarray,
    settings: ExplorationSettings,
    rng: np.random.Generator,
    prior_cov: np.ndarray | None = None,
) -> np.ndarray:
    """Probabilities (N, A) for N independent decisions, each with its own shopper's
    posterior (means (N, d), covs (N, d, d)): the target policy in offline evaluation."""
    mask = np.asarray(candidate_mask, dtype=bool)
    return page_probabilities(
        means, covs, arm_features, mask[:, None, :], settings, rng, prior_cov
    )[:, 0]


def sample_arms(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw one arm per row of `probabilities` (..., A); never an arm of probability 0."""
    cumulative = np.cumsum(probabilities, axis=-1)
    # Scaling by the row total keeps the draw inside the row despite rounding.
    threshold = rng.random(cumulative.shape[:-1]) * cumulative[..., -1]
    return np.argmax(cumulative > threshold[..., None], axis=-1)


def _thompson(
    means: np.ndarray,
    covs: np.ndarray,
    features: np.ndarray,
    mask: np.ndarray,
    settings: ExplorationSettings,
    rng: np.random.Generator,
) -> np.ndarray:
    pages, products, n_arms = mask.shape
    factor = _cov_factor(np.asarray(covs, dtype=np.float64))
    noise = rng.standard_normal((pages, settings.draws, means.shape[1]))
    samples = means[:, None, :] + settings.strength * noise @ factor.transpose(0, 2, 1)
    scores = samples @ features.T  # (G, S, A)
    masked = np.where(mask[:, :, None, :], scores[:, None, :, :], -np.inf)
    best = masked.argmax(axis=-1)  # (G, P, S)
    cell = np.arange(pages * products).reshape(pages, products, 1) * n_arms
    counts = np.bincount((cell + best).ravel(), minlength=pages * products * n_arms)
    return counts.reshape(pages, products, n_arms) / settings.draws


def _cov_factor(covs: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.cholesky(covs)
    except np.linalg.LinAlgError:
        # float32 round-trips can leave a tiny negative eigenvalue; clip it instead of failing.
        values, vectors = np.linalg.eigh(covs)
        return vectors * np.sqrt(np.clip(values, 0.0, None))[..., None, :]
