"""The lift report: honest intervals over shoppers, and the report from real logs."""

import io
import json
import re

import numpy as np
import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from stylerec.dashboard.lift import lift_report, lifts
from stylerec.dashboard.lift_world import simulated_groups, world
from stylerec.models import Decision, Event, Shopper
from stylerec.serving.assignment import in_control_group
from stylerec.serving.chooser import choose_images

METRICS = ["click_rate", "add_to_cart_rate", "purchase_rate", "revenue_per_shopper"]


def test_intervals_cover_zero_where_personalization_changes_nothing():
    shoppers = world(2_000, seed=11).click_probability
    rng = np.random.default_rng(12)
    runs = 300
    covered = dict.fromkeys(METRICS, 0)
    for _ in range(runs):
        for lift in lifts(*simulated_groups(shoppers, rng, helps=False)):
            covered[lift.metric] += lift.low <= 0 <= lift.high
    for metric, count in covered.items():
        # 95 % nominal; 300 runs put a right interval within 0.91-0.99 (three standard errors).
        assert 0.91 <= count / runs <= 0.99, (metric, count / runs)


def test_intervals_exclude_zero_where_personalization_helps():
    shoppers = world(4_000, seed=13).click_probability
    rng = np.random.default_rng(14)
    found = [lifts(*simulated_groups(shoppers, rng, helps=True))[0] for _ in range(20)]
    assert all(lift.metric == "click_rate" and lift.low > 0 for lift in found)
    assert all(lift.relative_low > 0 for lift in found)


def _browse(shop, shopper, *, clicks: int, purchase: float | None = None) -> None:
    shown = choose_images(shopper=shopper, products=shop["products"])
    now = timezone.now()
    for product in shop["products"][:clicks]:
        decision = shown[product.pk].decision_id
        for kind in ("impression", "click"):
            Event.objects.create(
                shopper=shopper,
                kind=kind,
                decision_id=decision,
                product_id=str(product.pk),
                occurred_at=now,
            )
    if purchase is not None:
        product = shop["products"][0]
        Event.objects.create(
            shopper=shopper,
            kind="purchase",
            decision_id=shown[product.pk].decision_id,
            product_id=str(product.pk),
            occurred_at=now,
            value=purchase,
            currency="EUR",
        )


def _two_groups(shop) -> tuple[list, list]:
    """Shoppers of both groups browsing: control clicks 1 image in 6, personalized 3 in 6."""
    shoppers = Shopper.objects.bulk_create([Shopper() for _ in range(40)])
    control = [s for s in shoppers if in_control_group(s.pk)]
    treated = [s for s in shoppers if not in_control_group(s.pk)]
    assert len(control) >= 5 and len(treated) >= 5
    for shopper in control:
        _browse(shop, shopper, clicks=1, purchase=10)
    for shopper in treated:
        _browse(shop, shopper, clicks=3, purchase=20)
    return control, treated


TWO_GROUPS = override_settings(
    STYLEREC={"PRODUCT_MODEL": "storefront.Product", "CONTROL_SHARE": 0.5}
)


@TWO_GROUPS
def test_the_report_reads_both_groups_from_the_logs(shop):
    control, treated = _two_groups(shop)
    # The control group was shown originals only, and logged as such.
    logged = Decision.objects.filter(shopper__in=control)
    assert set(logged.values_list("policy", flat=True)) == {"control"}
    assert set(logged.values_list("chosen", flat=True)) == {"original"}
    assert {tuple(c) for c in logged.values_list("candidates", flat=True)} == {("original",)}
    report = lift_report(days=30)
    assert report.shoppers == {"personalized": len(treated), "control": len(control)}
    assert report.decisions == {"personalized": 6 * len(treated), "control": 6 * len(control)}
    by_metric = {lift.metric: lift for lift in report.lifts}
    assert by_metric["click_rate"].personalized == pytest.approx(3 / 6)
    assert by_metric["click_rate"].control == pytest.approx(1 / 6)
    assert by_metric["click_rate"].difference == pytest.approx(2 / 6)
    assert by_metric["revenue_per_shopper"].difference == pytest.approx(10)
    assert report.currency == "EUR"
    assert {row["style"] for row in report.per_style} <= {"original", "ink", "sun", "sea"}

    out = io.StringIO()
    call_command("stylerec_report", "--json", stdout=out)
    document = json.loads(out.getvalue())
    assert document["shoppers"] == report.shoppers
    assert [lift["metric"] for lift in document["lifts"]] == METRICS
    out = io.StringIO()
    call_command("stylerec_report", stdout=out)
    text = out.getvalue()
    assert "click rate" in text and "50.00 % vs 16.67 %" in text
    assert "revenue per shopper" in text and "EUR" in text


def test_the_report_without_a_control_group_says_so(shop):
    _browse(shop, Shopper.objects.create(), clicks=2)
    out = io.StringIO()
    call_command("stylerec_report", stdout=out)
    assert "No control group yet" in out.getvalue()
    assert "n/a" in out.getvalue()


@TWO_GROUPS
def test_the_dashboard_shows_the_lift(client, shop, django_user_model):
    _two_groups(shop)
    django_user_model.objects.create_superuser("boss", "boss@example.com", "pw-123456789")
    client.login(username="boss", password="pw-123456789")
    html = client.get("/admin/stylerec/dashboard/").content.decode()
    row = re.search(r'<tr data-lift="click_rate"([^>]*)>(.*?)</tr>', html, re.S)
    assert row and "significant" in row.group(1)
    assert "50.00%" in row.group(2) and "16.67%" in row.group(2) and "+200.0%" in row.group(2)
    assert 'data-lift="revenue_per_shopper"' in html and "EUR" in html
