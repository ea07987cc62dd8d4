"""Print the lift of personalized images over the control group, as text or JSON."""

import json

from django.core.management.base import BaseCommand, CommandError

from stylerec.dashboard.lift import lift_report

NAMES = {
    "click_rate": "click rate",
    "add_to_cart_rate": "add-to-cart rate",
    "purchase_rate": "purchase rate",
    "revenue_per_shopper": "revenue per shopper",
}


def _number(value, *, percent: bool) -> str:
    if value is None:
        return "n/a"
    return f"{value * 100:.2f} %" if percent else f"{value:.2f}"


def _interval(lift, *, percent: bool) -> str:
    if lift.difference is None:
        return "n/a (too few shoppers in a group)"
    text = (
        f"{_number(lift.difference, percent=percent)} "
        f"[{_number(lift.low, percent=percent)}, {_number(lift.high, percent=percent)}]"
    )
    if lift.relative is not None:
        text += (
            f", relative {lift.relative * 100:+.1f} % "
            f"[{lift.relative_low * 100:+.1f} %, {lift.relative_high * 100:+.1f} %]"
        )
    return text


class Command(BaseCommand):
    help = (
        "Lift of personalized images over the control group (shoppers who always see the "
        "original photos): click, add-to-cart and purchase rates per decision and revenue per "
        "shopper, with 95% intervals over shoppers, sample sizes, and per style."
    )

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=30, help="Window in days (0: all).")
        parser.add_argument("--json", action="store_true", help="Print JSON.")

    def handle(self, *args, days, json: bool = False, **options):
        if days < 0:
            raise CommandError("--days must be 0 (all) or more.")
        report = lift_report(days=days or None)
        if json:
            self.stdout.write(_json(report.to_dict()))
            return
        self._text(report)

    def _text(self, report) -> None:
        window = f"last {report.days} days" if report.days else "all decisions"
        write = self.stdout.write
        write(f"Lift of personalized images over the control group ({window})")
        for group in ("personalized", "control"):
            write(
                f"  {group:<13} {report.shoppers[group]:>8} shoppers "
                f"{report.decisions[group]:>10} decisions"
            )
        if not report.shoppers["control"]:
            write("  No control group yet: set STYLEREC['CONTROL_SHARE'] (default 0.1).")
        elif min(report.shoppers.values()) < 100:
            # bench/lift.py: with ~50 shoppers in a group, 95 % intervals cover 84-93 %.
            write("  Fewer than 100 shoppers in a group: the intervals are approximate.")
        write("metric: personalized vs control, difference [95% interval]")
        for lift in report.lifts:
            percent = lift.metric != "revenue_per_shopper"
            unit = f" {report.currency}" if not percent and report.currency else ""
            write(
                f"  {NAMES[lift.metric]:<20} {_number(lift.personalized, percent=percent)}{unit} "
                f"vs {_number(lift.control, percent=percent)}{unit}: "
                f"{_interval(lift, percent=percent)}"
            )
        if report.per_style:
            write("per style shown to the personalized group, against the control's originals:")
        for row in report.per_style:
            click = row["lifts"][0]
            interval = (
                "n/a"
                if click["difference"] is None
                else f"{click['difference'] * 100:+.2f} % "
                f"[{click['low'] * 100:+.2f} %, {click['high'] * 100:+.2f} %]"
            )
            rate = _number(click["personalized"], percent=True)
            write(
                f"  {row['style']:<20} {row['shoppers']:>7} shoppers {row['decisions']:>9} "
                f"decisions, click rate {rate}, lift {interval}"
            )


def _json(report: dict) -> str:
    return json.dumps(report, indent=2, allow_nan=False, default=float)
