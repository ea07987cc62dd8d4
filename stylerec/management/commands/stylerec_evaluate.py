"""Offline evaluation of policies from the logged decisions and their probabilities."""

import json

from django.core.management.base import BaseCommand, CommandError

from stylerec.fitting import evaluate_current

LABELS = {
    "current": "current policy",
    "greedy": "greedy",
    "uniform": "uniform random",
    "original": "always original",
    "best_style": "best single style",
}


class Command(BaseCommand):
    help = (
        "IPS, SNIPS and doubly-robust estimates (95% CI) of current, greedy, uniform, best style."
    )

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, help="Only decisions of the last N days.")
        parser.add_argument(
            "--holdout",
            type=float,
            default=0.3,
            help="Share of the newest decisions to score on (the rest fit the policies).",
        )
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="Print the report as JSON."
        )

    def handle(self, *args, days=None, holdout=0.3, as_json=False, **options):
        if not 0 < holdout < 1:
            raise CommandError("--holdout must be between 0 and 1.")
        report = evaluate_current(days=days, holdout=holdout)
        if report is None:
            raise CommandError("No model yet: run stylerec_fit first.")
        if as_json:
            self.stdout.write(json.dumps(report, indent=2))
            return
        self.stdout.write(
            f"Model {report['version']}: {report['decisions']} logged decisions, the newest "
            f"{report['scored']} scored; their realised reward per decision "
            f"{report.get('realised_reward', 0):.4f}"
        )
        self.stdout.write(f"{'policy':<34}{'IPS':>24}{'SNIPS':>24}{'DR':>24}")
        for name, entry in report["policies"].items():
            label = LABELS.get(name, name)
            if entry.get("arm"):
                label += f" ({entry['arm']})"
            cells = "".join(
                f"{entry[k]['value']:>8.4f} [{entry[k]['low']:.4f}, {entry[k]['high']:.4f}]"
                for k in ("ips", "snips", "dr")
            )
            self.stdout.write(f"{label:<34}{cells}")
