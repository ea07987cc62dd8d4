"""Synthetic shoppers with hidden tastes, driven through the real chooser and event path."""

import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.test.utils import override_settings

from stylerec.conf import conf
from stylerec.events import events_ingest
from stylerec.fitting import current_arms, preference_fit_full
from stylerec.ml.simulate import make_category_shoppers, make_shoppers
from stylerec.models import Decision, Shopper
from stylerec.serving.chooser import choose_images, seed_sampling
from stylerec.serving.state import current_model
from styletransfer.models import Style

DEVICES, DEVICE_SHARE = ["desktop", "mobile"], [0.7, 0.3]


class Command(BaseCommand):
    help = "Simulate shoppers against the real chooser, events and fits; print CTR per round."

    def add_arguments(self, parser):
        parser.add_argument("--shoppers", type=int, default=100)
        parser.add_argument("--rounds", type=int, default=5)
        parser.add_argument("--page", type=int, default=12, help="Products per page view.")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--keep", action="store_true", help="Keep the synthetic shoppers.")
        parser.add_argument(
            "--tastes",
            choices=["shared", "category"],
            default="shared",
            help="shared: one taste per shopper; category: tastes that depend on the "
            "product's category (the crowd's and each shopper's own).",
        )
        parser.add_argument(
            "--against-blind",
            action="store_true",
            help="Then play the same tastes again with context-blind fits, and compare.",
        )

    def handle(self, *args, seed, **options):
        # Every simulated shopper learns (no control group), and the assignments' hash draws
        # follow the seed rather than this machine's SECRET_KEY: one seed, one run anywhere.
        learning = {**getattr(settings, "STYLEREC", {}), "CONTROL_SHARE": 0.0}
        learning["ASSIGNMENT_SALT"] = f"stylerec-simulate-{seed}"
        with override_settings(STYLEREC=learning):
            self._simulate(seed=seed, **options)

    def _simulate(self, *, shoppers, rounds, page, seed, keep, tastes, against_blind, **options):
        if current_model() is None and preference_fit_full() is None:
            raise CommandError("No style has an embedding yet; start a render worker first.")
        arms = current_arms(current_model())
        active = set(Style.objects.filter(active=True).values_list("slug", flat=True))
        if len(active & set(arms.slugs)) < 2:
            raise CommandError("Need at least two active styles with embeddings and renditions.")
        embeddings = np.asarray(
            [Style.objects.get(slug=slug).embedding for slug in arms.slugs[1:]], dtype=np.float64
        )
        products = list(conf.product_model()._default_manager.all())
        categories = sorted({str(getattr(p, "category", "")) for p in products})
        category_of = {p.pk: categories.index(str(getattr(p, "category", ""))) for p in products}
        rng = np.random.default_rng(seed)
        if tastes == "category":
            world = make_category_shoppers(embeddings, shoppers, len(categories), rng)
            click_probability = world.click_probability
        else:  # the same taste in every category
            taste = make_shoppers(embeddings, shoppers, rng).click_probability
            click_probability = np.repeat(taste[:, None], len(categories), axis=1)
        device_of = rng.choice(len(DEVICES), shoppers, p=DEVICE_SHARE)
        world_seed = int(rng.integers(2**31))
        figures = self._play(
            click_probability, device_of, products, category_of, arms, page, rounds,
            world_seed, keep, with_context=True,
        )  # fmt: skip
        if against_blind:
            self.stdout.write("context-blind fits, the same shoppers' tastes:")
            blind = self._play(
                click_probability, device_of, products, category_of, arms, page, rounds,
                world_seed, keep, with_context=False,
            )  # fmt: skip
            last, last_blind = figures[-1], blind[-1]
            self.stdout.write(
                f"after {rounds * page} images per shopper: in context "
                f"{last['expected'] / last['oracle']:.3f} of the oracle, "
                f"{last['expected'] / last['uniform']:.2f}x uniform; context-blind "
                f"{last_blind['expected'] / last_blind['oracle']:.3f} of the oracle, "
                f"{last_blind['expected'] / last_blind['uniform']:.2f}x uniform"
            )
            self.stdout.write(_late_rounds(figures, blind, page))

    def _play(
        self, click_probability, device_of, products, category_of, arms, page, rounds, seed,
        keep, *, with_context,
    ) -> list[dict]:  # fmt: skip
        rng = np.random.default_rng(seed)
        seed_sampling(seed)  # the chooser's draws too: one seed, one run
        if not with_context:  # start where the context-aware run started: from no fit
            preference_fit_full(with_context=False)
        people = [Shopper.objects.create() for _ in range(len(click_probability))]
        index = arms.index()
        self.stdout.write(
            f"{'round':>5} {'impr/shopper':>12} {'CTR':>7} {'expected':>8} {'oracle':>7} "
            f"{'uniform':>7} {'vs oracle':>9} {'vs uniform':>10}"
        )
        rows = []
        try:
            for round_number in range(1, rounds + 1):
                figures = self._round(
                    people, products, page, click_probability, device_of, category_of, index, rng
                )
                preference_fit_full(with_context=with_context)
                rows.append(figures)
                # "expected": the click probability of what was shown, free of click noise;
                # the ratios use it, so a small run still says how close to the oracle it is.
                self.stdout.write(
                    f"{round_number:>5} {round_number * page:>12} {figures['ctr']:>7.4f} "
                    f"{figures['expected']:>8.4f} {figures['oracle']:>7.4f} "
                    f"{figures['uniform']:>7.4f} {figures['expected'] / figures['oracle']:>9.2f} "
                    f"{figures['expected'] / figures['uniform']:>10.2f}"
                )
        finally:
            if not keep:
                Shopper.objects.filter(pk__in=[p.pk for p in people]).delete()
        return rows

    def _round(
        self, people, products, page, click_probability, device_of, category_of, index, rng
    ) -> dict:
        clicks = expected = oracle = uniform = 0.0
        impressions = 0
        for row, shopper in enumerate(people):
            chosen = [products[i] for i in rng.choice(len(products), size=page, replace=False)]
            context = {"sim": True, "device": DEVICES[device_of[row]]}
            shown = choose_images(shopper=shopper, products=chosen, context=context)
            category = {str(p.pk): category_of[p.pk] for p in chosen}
            decisions = Decision.objects.filter(
                pk__in=[s.decision_id for s in shown.values()]
            ).values_list("pk", "product_id", "candidates", "chosen")
            events = []
            for pk, product_id, candidates, chosen_arm in decisions:
                probability = click_probability[row, category[product_id]]
                candidate_p = probability[[index[c] for c in candidates]]
                shown_p = probability[index[chosen_arm]]
                impressions += 1
                expected += shown_p
                oracle += candidate_p.max()
                uniform += candidate_p.mean()
                events.append({"kind": "impression", "decision": pk, "product_id": product_id})
                if rng.random() < shown_p:
                    clicks += 1
                    events.append({"kind": "click", "decision": pk, "product_id": product_id})
            events_ingest(shopper=shopper, events=events, source="simulation")
        return {
            "ctr": clicks / impressions,
            "expected": expected / impressions,
            "oracle": oracle / impressions,
            "uniform": uniform / impressions,
        }


LATE_ROUNDS = 5  # the summary pools the last rounds: one round of 100 shoppers is noisy


def _late_rounds(figures: list[dict], blind: list[dict], page: int) -> str:
    """One line for the last LATE_ROUNDS rounds pooled (bench/simulate.py --seeds reads it)."""
    first = max(len(figures) - LATE_ROUNDS, 0)

    def pooled(rows):
        expected = sum(r["expected"] for r in rows[first:])
        ratios = [r["expected"] / r["oracle"] for r in rows[first:]]
        oracle = sum(r["oracle"] for r in rows[first:])
        uniform = sum(r["uniform"] for r in rows[first:])
        return expected / oracle, min(ratios), max(ratios), expected / uniform

    ratio, low, high, over_uniform = pooled(figures)
    blind_ratio, _, _, blind_uniform = pooled(blind)
    return (
        f"images {first * page + 1}-{len(figures) * page} per shopper "
        f"(rounds {first + 1}-{len(figures)} pooled): in context {ratio:.3f} of the oracle "
        f"({low:.2f}-{high:.2f} by round), {over_uniform:.2f}x uniform; "
        f"context-blind {blind_ratio:.3f} of the oracle, {blind_uniform:.2f}x uniform"
    )
