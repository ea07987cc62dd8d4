"""The merchandiser's dashboard: figures per style, the loop's switches, rendering health."""

import re

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from stylerec.dashboard.analytics import style_performance, wilson_interval
from stylerec.dashboard.charts import Interval, Series, interval_chart, line_chart, stacked_bars
from stylerec.fitting import preference_fit_full
from stylerec.loop_settings import loop_settings
from stylerec.models import Decision, Event, LoopSettings, Shopper
from styletransfer import rendering
from styletransfer.models import Rendition

DASHBOARD = "/admin/stylerec/dashboard/"


@pytest.fixture
def boss(client, django_user_model):
    django_user_model.objects.create_superuser("boss", "boss@example.com", "pw-123456789")
    client.login(username="boss", password="pw-123456789")
    return client


def log(shopper, style: str, *, seen=True, clicked=False, carted=False, bought=False):
    """One decision for `style` and what the shopper did with it."""
    decision = Decision.objects.create(
        shopper=shopper,
        product_id="1",
        candidates=["original", "ink", "sun", "sea"],
        probabilities=[0.25] * 4,
        chosen=style,
        propensity=0.25,
        model_version="test",
        policy="uniform",
    )
    kinds = [
        ("impression", seen),
        ("click", clicked),
        ("add_to_cart", carted),
        ("purchase", bought),
    ]
    for kind, happened in kinds:
        if happened:
            Event.objects.create(
                shopper=shopper,
                kind=kind,
                decision=decision,
                product_id="1",
                style_slug=style,
                occurred_at=timezone.now(),
            )
    return decision


@pytest.fixture
def history(shop):
    """ink: 40 seen, 10 clicked, 3 carted, 1 bought; sun: 20 seen, 1 clicked; original: 40
    never seen; sea: nothing."""
    shopper = Shopper.objects.create()
    for n in range(40):
        log(shopper, "ink", clicked=n < 10, carted=n < 3, bought=n < 1)
    for n in range(20):
        log(shopper, "sun", clicked=n < 1)
    for _ in range(40):
        log(shopper, "original", seen=False)
    return shopper


def row(html: str, style: str, table: str = "style") -> list[str]:
    match = re.search(rf'<tr data-{table}="{style}">(.*?)</tr>', html, re.S)
    assert match, f"no row for {style}"
    cells = re.findall(r"<td.*?</td>", match[1], re.S)
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in cells]


def test_wilson_interval_matches_published_values():
    assert wilson_interval(10, 40) == pytest.approx((0.1419, 0.4019), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(5, 5)[1] == 1.0 and wilson_interval(0, 0) == (0.0, 1.0)


def test_performance_per_style(history):
    since = timezone.now() - timezone.timedelta(days=1)
    by_style = {p.style: p for p in style_performance(since=since)}
    ink = by_style["ink"]
    assert (ink.decisions, ink.impressions, ink.clicks) == (40, 40, 10)
    assert (ink.add_to_carts, ink.purchases) == (3, 1)
    assert ink.ctr == 0.25 and ink.share == 0.4
    assert by_style["original"].impressions == 0 and by_style["original"].ctr is None
    assert by_style["sea"].decisions == 0, "active styles are listed before any decision"


def test_staff_find_the_dashboard_from_the_admin_index(boss, history):
    index = boss.get("/admin/").content.decode()
    assert f'href="{DASHBOARD}"' in index
    response = boss.get(DASHBOARD)
    assert response.status_code == 200
    html = response.content.decode()
    assert row(html, "ink") == [
        "Ink",
        "40.0%",
        "40",
        "10",
        "25.00%",
        "14.19% – 40.19%",
        "3",
        "1",
    ]
    assert row(html, "original")[4] == "–"
    for chart in ("ctr", "ctr-by-day", "share-by-day"):
        assert f'data-chart="{chart}"' in html
    assert "admin/css/base.css" in html, "inside the admin's look"


def test_the_window_is_chosen_from_a_short_list(boss, history):
    Decision.objects.filter(chosen="sun").update(created_at=timezone.now() - timezone.timedelta(10))
    assert row(boss.get(DASHBOARD, {"days": 7}).content.decode(), "sun")[2] == "0"
    assert row(boss.get(DASHBOARD, {"days": 30}).content.decode(), "sun")[2] == "20"
    assert boss.get(DASHBOARD, {"days": "banana"}).status_code == 200


def test_only_staff_with_the_permission_see_it(client, django_user_model, shop):
    django_user_model.objects.create_user("shopper", password="pw-123456789")
    client.login(username="shopper", password="pw-123456789")
    assert client.get(DASHBOARD).status_code == 302, "to the admin login"
    clerk = django_user_model.objects.create_user("clerk", password="pw-123456789", is_staff=True)
    client.login(username="clerk", password="pw-123456789")
    assert client.get(DASHBOARD).status_code == 403
    assert DASHBOARD not in client.get("/admin/").content.decode()
    clerk.user_permissions.add(Permission.objects.get(codename="view_dashboard"))
    html = client.get(DASHBOARD).content.decode()
    assert "Turn personalization off" not in html, "looking is not changing"
    response = client.post(DASHBOARD, {"action": "personalization", "enabled": "off"})
    assert response.status_code == 403
    assert loop_settings().personalization_enabled


def test_the_switch_turns_personalization_off_at_once(boss, client, shop):
    from django.test import Client

    shopper_page = Client()
    assert "Turn personalization off" in boss.get(DASHBOARD).content.decode()
    response = boss.post(DASHBOARD, {"action": "personalization", "enabled": "off"})
    assert response.status_code == 302
    assert LoopSettings.objects.get().personalization_enabled is False
    html = shopper_page.get("/").content.decode()
    assert set(re.findall(r'data-style="([^"]+)"', html)) == {"original"}
    assert "off: everyone sees the original photos" in boss.get(DASHBOARD).content.decode()
    boss.post(DASHBOARD, {"action": "personalization", "enabled": "on"})
    assert loop_settings().personalization_enabled is True


def test_exploration_settings_are_changed_and_checked(boss, shop):
    response = boss.post(
        DASHBOARD,
        {
            "action": "exploration",
            "policy": "softmax",
            "uniform_percent": "10",
            "exploration_strength": "0.5",
        },
    )
    assert response.status_code == 302
    settings = loop_settings()
    assert (settings.policy, settings.uniform_share, settings.exploration_strength) == (
        "softmax",
        0.1,
        0.5,
    )
    refused = boss.post(
        DASHBOARD,
        {
            "action": "exploration",
            "policy": "softmax",
            "uniform_percent": "5",
            "exploration_strength": "0",
        },
        follow=True,
    )
    assert "strength" in refused.content.decode()
    assert loop_settings().uniform_share == 0.1, "nothing changed"
    out_of_range = boss.post(
        DASHBOARD,
        {"action": "exploration", "policy": "greedy", "uniform_percent": "150"},
        follow=True,
    )
    assert "Uniform bucket" in out_of_range.content.decode()
    assert loop_settings().policy == "softmax"


def test_the_loop_shows_its_model_and_offline_evaluation(boss, history):
    html = boss.get(DASHBOARD).content.decode()
    assert "No model has been fitted yet" in html
    model = preference_fit_full()
    boss.post(DASHBOARD, {"action": "evaluate"})
    html = boss.get(DASHBOARD).content.decode()
    assert model.version in html
    for policy in ("current", "greedy", "uniform", "original", "best_style"):
        assert f'data-policy="{policy}"' in html
    assert 'data-chart="evaluation"' in html


def test_rendering_health_shows_coverage_queues_and_failures(boss, shop):
    rendition = Rendition.objects.filter(style__slug="sea").first()
    rendering.rendition_fail(rendition_id=rendition.pk, error="CUDA error: out of memory <oops>")
    html = boss.get(DASHBOARD).content.decode()
    assert row(html, "sea", table="coverage")[2:] == ["5", "0", "1", "6"]
    assert "CUDA error: out of memory &lt;oops&gt;" in html
    depths = re.findall(r'data-queue="(\w+)"><strong>([^<]+)</strong>', html)
    assert {name for name, _ in depths} == {"render", "default"}
    assert all(value.isdigit() for _, value in depths), "Redis answers LLEN"


def test_queue_depth_is_unknown_when_the_broker_is_down(boss, shop, monkeypatch):
    from celery import current_app
    from kombu import Connection

    monkeypatch.setattr(
        current_app,
        "connection_for_read",
        lambda **options: Connection("redis://127.0.0.1:1/0", connect_timeout=1),
    )
    html = boss.get(DASHBOARD).content.decode()
    assert re.findall(r'data-queue="\w+"><strong>([^<]+)</strong>', html) == ["unknown"] * 2
    assert boss.get("/api/v1/staff/rendering/").json()["queues"] == {
        "render": None,
        "default": None,
    }


def test_charts_escape_names_and_break_lines_on_missing_days():
    hostile = "<script>alert(1)</script>"
    svg = line_chart("x", "t", [Series(hostile, "#000", [0.1, None, 0.3])], ["a", "b", "c"])
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert svg.count("<polyline") == 2, "a day without impressions breaks the line"
    bars = stacked_bars(
        "s", "t", [Series("a", "#111", [1, 0]), Series("b", "#222", [3, 0])], ["d1", "d2"]
    )
    assert bars.count("<rect") == 2 + 2, "two legend swatches, two bars; the empty day stays empty"
    assert "75%" in bars
    intervals = interval_chart(
        "i", "t", [Interval("A", "#000", 0.2, 0.1, 0.3), Interval("B", "#000", None, 0, 1)]
    )
    assert intervals.count("<circle") == 1 and "no data yet" in intervals
