"""Benchmark the loop on the simulator: a freshly seeded demo shop, shoppers with hidden tastes.

.venv/bin/python bench/simulate.py [--shoppers 100] [--rounds 5] [--page 10] [--seed 0]
                                  [--tastes shared|category] [--against-blind]
                                  [--seeds 0,1,2]

Seeds the demo (5 styles from the paintings, renditions made in-process) on its own
PostgreSQL database (BENCH_DATABASE_URL, default stylerec_simulate, dropped and made
again first, so no earlier fit or shopper leaks into the run), then runs
`manage.py stylerec_simulate`, which drives the real chooser, event path and fits and
prints, per round, the CTR of what was shown against the oracle and uniform random.
Targets (issue 5): >= 0.90 of the oracle after 50 impressions per shopper, >= 1.5x uniform.
Issue 18: with --tastes category (tastes that depend on the product's category) --rounds 25
--against-blind, >= 0.90 of the oracle after 250 images per shopper and >= 1.8x uniform,
with the context-blind fits' figures on the same tastes printed beside them.
--seeds runs each seed in a process of its own (a fresh database each) and prints the mean
and range over seeds of the last rounds' pooled figures (worlds differ: one seed says little).
"""

import argparse
import os
import re
import subprocess
import sys

os.environ.setdefault("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/stylerec_simulate")

from shop import DATABASE_URL, seeded_shop  # noqa: E402


def drop_database() -> None:
    import psycopg

    name = DATABASE_URL.rsplit("/", 1)[1]
    server = DATABASE_URL.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shoppers", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--page", type=int, default=10, help="products per page view")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tastes", choices=["shared", "category"], default="shared")
    parser.add_argument("--against-blind", action="store_true")
    parser.add_argument("--seeds", help="comma-separated seeds, each run in its own process")
    args = parser.parse_args()
    if args.seeds:
        return over_seeds(args)
    drop_database()
    seeded_shop()
    from django.core.management import call_command

    call_command(
        "stylerec_simulate",
        shoppers=args.shoppers,
        rounds=args.rounds,
        page=args.page,
        seed=args.seed,
        tastes=args.tastes,
        against_blind=args.against_blind,
    )


_LATE = re.compile(
    r"in context (?P<ratio>[\d.]+) of the oracle .*?, (?P<uniform>[\d.]+)x uniform; "
    r"context-blind (?P<blind>[\d.]+) of the oracle"
)


def over_seeds(args) -> None:
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        command = [
            sys.executable, __file__, "--seed", str(seed), "--shoppers", str(args.shoppers),
            "--rounds", str(args.rounds), "--page", str(args.page), "--tastes", args.tastes,
            "--against-blind",
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        line = [row for row in done.stdout.splitlines() if row.startswith("images ")][-1]
        found = _LATE.search(line)
        rows.append({name: float(found[name]) for name in ("ratio", "uniform", "blind")})
        print(f"seed {seed}: {line}", flush=True)
    for name, label in (("ratio", "of the oracle"), ("uniform", "x uniform")):
        values = [row[name] for row in rows]
        print(
            f"in context, {len(rows)} seeds: {sum(values) / len(values):.3f} {label} "
            f"(range {min(values):.3f}-{max(values):.3f})"
        )
    blind = [row["blind"] for row in rows]
    print(
        f"context-blind, same seeds: {sum(blind) / len(blind):.3f} of the oracle "
        f"(range {min(blind):.3f}-{max(blind):.3f})"
    )


if __name__ == "__main__":
    main()
