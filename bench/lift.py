"""Benchmark: how many shoppers the lift report needs before its interval excludes zero.

.venv/bin/python bench/lift.py [--runs 100]

On the simulator's shoppers (stylerec.dashboard.lift_world), 10 % of them in the control
group: where personalization helps (each shopper's best style 80 % of the time, about where
the loop gets to), the share of runs whose 95 % interval of each metric's lift excludes zero,
per number of shoppers; and where it changes nothing, how often the interval covers zero
(target about 95 %).
"""

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "storefront.settings")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()
    import django

    django.setup()
    import numpy as np

    from stylerec.dashboard.lift import lifts
    from stylerec.dashboard.lift_world import simulated_groups, world

    print(f"{args.runs} runs per row; 10 % control; a share of runs per metric")
    print(f"{'shoppers':>8} {'world':<8} click   cart    purchase revenue/shopper")
    for shoppers in (500, 1_000, 2_000, 4_000, 8_000, 16_000):
        clicks = world(shoppers, seed=shoppers).click_probability
        rng = np.random.default_rng(shoppers)
        for helps in (True, False):
            found = np.zeros(4)
            for _ in range(args.runs):
                for column, lift in enumerate(lifts(*simulated_groups(clicks, rng, helps=helps))):
                    found[column] += lift.excludes_zero if helps else lift.low <= 0 <= lift.high
            label = "helps:" if helps else "null:"
            shares = "  ".join(f"{share:6.2f}" for share in found / args.runs)
            what = "excludes 0" if helps else "covers 0"
            print(f"{shoppers:>8} {label:<8} {shares}  ({what})")


if __name__ == "__main__":
    main()
