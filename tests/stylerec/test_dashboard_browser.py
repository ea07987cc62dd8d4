"""The dashboard in a real browser: staff sign in to the admin and see the charts drawn."""

import pytest
from django.test import Client

from stylerec.fitting import preference_fit_full
from stylerec.models import Decision, Event, LoopSettings

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHARTS = ["ctr", "ctr-by-day", "share-by-day", "evaluation"]

DRAWN = """name => {
  const svg = document.querySelector(`svg[data-chart="${name}"]`);
  if (!svg) return null;
  const box = svg.getBoundingClientRect();
  const marks = [...svg.querySelectorAll('circle, polyline, rect')].filter(mark => {
    const r = mark.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && getComputedStyle(mark).visibility !== 'hidden';
  });
  return {width: box.width, height: box.height, marks: marks.length};
}"""


def shoppers_browse(count: int = 4) -> None:
    """Shoppers see the catalogue and click now and then, through the real event path."""
    for number in range(count):
        shopper = Client()
        shopper.get("/")
        decisions = list(Decision.objects.filter(events__isnull=True).order_by("pk")[:6])
        events = [
            {"type": "impression", "decision": d.pk, "product": d.product_id} for d in decisions
        ]
        events += [
            {"type": "click", "decision": d.pk, "product": d.product_id}
            for d in decisions[: number + 1]
        ]
        response = shopper.post("/api/v1/events/", {"events": events}, "application/json")
        assert response.status_code == 202


def test_staff_see_the_charts_drawn(live_server, page, shop, django_user_model):
    shoppers_browse()
    preference_fit_full()
    assert Event.objects.filter(kind="click").exists()
    django_user_model.objects.create_superuser("boss", "boss@example.com", "pw-123456789")
    failed = []
    page.on("response", lambda r: r.status >= 400 and failed.append(f"{r.status} {r.url}"))

    page.goto(f"{live_server.url}/admin/")
    page.fill("#id_username", "boss")
    page.fill("#id_password", "pw-123456789")
    page.click("input[type=submit]")
    page.click("a[href='/admin/stylerec/dashboard/']")
    page.wait_for_selector("svg[data-chart]")
    assert page.title().startswith("Dashboard")
    for name in CHARTS:
        drawn = page.evaluate(DRAWN, name)
        assert drawn is not None, f"no {name} chart"
        assert drawn["width"] > 300 and drawn["height"] > 100, (name, drawn)
        assert drawn["marks"] >= 3, (name, drawn)
    assert page.locator("[data-queue=render] strong").inner_text().isdigit()

    page.click("#personalization-switch")
    page.wait_for_selector(".stylerec-status.off")
    assert LoopSettings.objects.get().personalization_enabled is False
    # The admin declares no favicon; the browser's guess at one is the only miss allowed.
    assert [url for url in failed if not url.endswith("/favicon.ico")] == []
    assert [e for e in page.console_errors if not e.startswith("Failed to load resource")] == []
