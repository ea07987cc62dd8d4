"""Benchmark choosing styles for a 24-product page in-process; --compare ranks policies.

.venv/bin/python bench/choose.py              # ms per page vs a per-product baseline
.venv/bin/python bench/choose.py --compare    # which exploration policy earns most clicks
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stylerec.ml.policy import ExplorationSettings, choose  # noqa: E402
from stylerec.ml.preferences import Preference  # noqa: E402
from stylerec.ml.simulate import make_shoppers, run_loop, synthetic_style_embeddings  # noqa: E402
from stylerec.ml.space import StyleSpace  # noqa: E402

PAGE = 24
TARGET_MS = 2.0


def page_setup(n_styles: int, seed: int):
    """A fitted-looking shopper, the arm table, and a page where some renditions are missing."""
    rng = np.random.default_rng(seed)
    embeddings = synthetic_style_embeddings(n_styles, dim=1024, seed=seed)
    arm_features = StyleSpace.fit(embeddings).arm_features(embeddings)
    d = arm_features.shape[1]
    root = 0.02 * rng.standard_normal((d, d))
    preference = Preference(
        (0.03 * rng.standard_normal(d)).astype(np.float32),
        (root @ root.T + 1e-4 * np.eye(d)).astype(np.float32),
    )
    mask = rng.random((PAGE, len(arm_features))) < 0.85
    mask[:, 0] = True
    return preference, arm_features, mask


def naive_choose(preference, arm_features, mask, settings, rng):
    """The obvious version: per product, fresh multivariate-normal draws and rng.choice."""
    probabilities = np.zeros(mask.shape)
    chosen = np.zeros(len(mask), dtype=int)
    for row, candidates in enumerate(mask):
        arms = np.flatnonzero(candidates)
        draws = rng.multivariate_normal(preference.mean, preference.cov, size=settings.draws)
        best = (draws @ arm_features[arms].T).argmax(axis=1)
        thompson = np.bincount(best, minlength=arms.size) / settings.draws
        mixed = (1 - settings.uniform_share) * thompson + settings.uniform_share / arms.size
        probabilities[row, arms] = mixed
        chosen[row] = arms[rng.choice(arms.size, p=mixed)]
    return probabilities, chosen


def time_per_page(function, arguments: tuple, repeats: int) -> tuple[float, float, float]:
    """Mean, median and 99th percentile ms of `function(*arguments)` after a warm-up."""
    for _ in range(20):
        function(*arguments)
    laps = np.empty(repeats)
    for i in range(repeats):
        started = time.perf_counter()
        function(*arguments)
        laps[i] = time.perf_counter() - started
    return laps.mean() * 1e3, np.median(laps) * 1e3, np.percentile(laps, 99) * 1e3


def benchmark(args) -> None:
    rng = np.random.default_rng(args.seed)
    print(
        f"choosing for a {PAGE}-product page (about 15% of renditions not ready); "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(
        f"{'arms':>4} {'policy':<9} {'draws':>5} {'mean ms':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'naive ms':>9} {'speed-up':>8}"
    )
    for n_styles in args.styles:
        preference, arm_features, mask = page_setup(n_styles, args.seed)
        for policy in ("thompson", "greedy", "uniform"):
            settings = ExplorationSettings(policy=policy, draws=args.draws)
            arguments = (preference, arm_features, mask, settings, rng)
            mean_ms, median_ms, p99_ms = time_per_page(choose, arguments, args.repeats)
            naive = ""
            if policy == "thompson":
                naive_repeats = max(args.repeats // 20, 20)
                naive_ms = time_per_page(naive_choose, arguments, naive_repeats)[0]
                naive = f"{naive_ms:>9.2f} {naive_ms / mean_ms:>7.1f}x"
            verdict = "" if mean_ms <= TARGET_MS else "  (mean over the 2 ms target)"
            print(
                f"{len(arm_features):>4} {policy:<9} {settings.draws:>5} {mean_ms:>8.3f} "
                f"{median_ms:>7.3f} {p99_ms:>7.3f} {naive}{verdict}"
            )


POLICIES = {
    "thompson, strength 1.0": ExplorationSettings(strength=1.0),
    "thompson, strength 0.5": ExplorationSettings(strength=0.5),
    "thompson, strength 0.25 (chosen)": ExplorationSettings(strength=0.25),
    "greedy + 5% uniform": ExplorationSettings(policy="greedy"),
    "softmax, temperature 0.01": ExplorationSettings(policy="softmax", strength=0.01),
    "softmax, temperature 0.02": ExplorationSettings(policy="softmax", strength=0.02),
}

WORLDS = {
    # name: (styles, shared_taste, taste_strength), as in bench/fit.py --compare
    "fashion (8 styles, 90% shared)": (8, 0.9, 0.6),
    "personal (6 styles, 30% shared)": (6, 0.3, 1.0),
}


def compare(args) -> None:
    """Expected CTR / oracle at 50 and 200 impressions per shopper, and over all rounds."""
    print(f"{args.compare_shoppers} shoppers, 10 impressions per round, 20 rounds")
    print(f"{'policy':<33} {'world':<33} {'@50':>6} {'@200':>6} {'all rounds':>10}")
    for policy_name, settings in POLICIES.items():
        for world_name, (n_styles, shared, strength) in WORLDS.items():
            ratios = []
            for seed in range(args.compare_seeds):
                embeddings = synthetic_style_embeddings(n_styles, dim=512, seed=seed)
                arm_features = StyleSpace.fit(embeddings).arm_features(embeddings)
                rng = np.random.default_rng(seed)
                shoppers = make_shoppers(
                    embeddings,
                    args.compare_shoppers,
                    rng,
                    shared_taste=shared,
                    taste_strength=strength,
                )
                loop = run_loop(
                    shoppers,
                    arm_features,
                    rounds=20,
                    impressions_per_round=10,
                    settings=settings,
                    rng=rng,
                    availability=0.9,
                )
                ratios.append([r.expected_ctr / r.oracle_ctr for r in loop.rounds])
            mean = np.mean(ratios, axis=0)
            print(
                f"{policy_name:<33} {world_name:<33} {mean[5]:>6.3f} {mean[19]:>6.3f} "
                f"{mean.mean():>10.3f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--styles", type=int, nargs="+", default=[5, 8, 20])
    parser.add_argument("--draws", type=int, default=ExplorationSettings().draws)
    parser.add_argument("--repeats", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compare", action="store_true", help="rank exploration policies")
    parser.add_argument("--compare-shoppers", type=int, default=500)
    parser.add_argument("--compare-seeds", type=int, default=2)
    args = parser.parse_args()
    compare(args) if args.compare else benchmark(args)


if __name__ == "__main__":
    main()
