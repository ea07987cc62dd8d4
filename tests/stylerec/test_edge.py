"""Inputs at the edge: ids as the markup gives them, loop settings checked on every write
path, and pages that show originals when choosing fails."""

import logging

import pytest

from stylerec.fitting import preference_fit_full
from stylerec.loop_settings import loop_settings, loop_settings_changed
from stylerec.models import Event, LoopSettings

from .helpers import images, post_events


def _image(client) -> dict:
    return images(client.get("/").content.decode())[0]


@pytest.mark.parametrize(
    ("decision", "product"),
    [(str, str), (int, int), (str, int), (int, str)],
)
def test_ids_as_json_numbers_or_numeric_strings(client, shop, decision, product):
    image = _image(client)
    event = {
        "type": "click",
        "decision": decision(image["data-decision"]),
        "product": product(image["data-product"]),
    }
    response = post_events(client, [event])
    assert response.status_code == 202, response.content
    stored = Event.objects.get()
    assert str(stored.decision_id) == image["data-decision"]
    assert stored.product_id == image["data-product"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"decision": 1.0}, "decision"),
        ({"decision": "1.0"}, "decision"),
        ({"decision": " 1"}, "decision"),
        ({"decision": True}, "decision"),
        ({"decision": 0}, "decision"),
        ({"decision": "9" * 20}, "decision"),
        ({"decision": [1]}, "decision"),
        ({"product": 1.5}, "product"),
        ({"product": False}, "product"),
        ({"product": ""}, "product"),
        ({"product": "x" * 65}, "product"),
        ({"product": {"id": 1}}, "product"),
    ],
)
def test_ids_of_other_shapes_are_refused_by_name(client, shop, change, field):
    image = _image(client)
    event = {"type": "click", "decision": image["data-decision"], "product": image["data-product"]}
    response = post_events(client, [{**event, **change}])
    assert response.status_code == 400
    assert field in response.json()["events"][0], response.json()


def test_the_schema_says_ids_are_numbers_or_strings(client, db):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    event = schema["components"]["schemas"]["EventRequest"]["properties"]
    assert {v["type"] for v in event["decision"]["oneOf"]} == {"integer", "string"}
    assert {v["type"] for v in event["product"]["oneOf"]} == {"integer", "string"}
    assert {v["type"] for v in event["value"]["oneOf"]} == {"number", "string"}
    assert "currency" in event


@pytest.fixture
def staff(client, django_user_model):
    django_user_model.objects.create_superuser("boss", "boss@example.com", "pw-123456789")
    client.login(username="boss", password="pw-123456789")
    return client


SETTINGS_URL = "/api/v1/staff/loop-settings/"


def test_the_api_changes_loop_settings_only_when_valid(staff, shop):
    assert staff.get(SETTINGS_URL).json()["policy"] == "thompson"
    for invalid in (
        {"policy": "random"},
        {"uniform_share": 1.5},
        {"exploration_strength": -1},
        {"policy": "softmax", "exploration_strength": 0},
        {"personalization_enabled": "yes"},
    ):
        response = staff.patch(SETTINGS_URL, invalid, content_type="application/json")
        assert response.status_code == 400, (invalid, response.content)
        assert not LoopSettings.objects.exists()  # nothing saved: the live settings as before
    response = staff.patch(
        SETTINGS_URL, {"policy": "greedy", "uniform_share": 0.1}, content_type="application/json"
    )
    assert response.status_code == 200
    assert loop_settings().policy == "greedy" and loop_settings().uniform_share == 0.1


def test_only_staff_change_loop_settings(client, shop, django_user_model):
    assert client.patch(SETTINGS_URL, {}, content_type="application/json").status_code in (401, 403)
    django_user_model.objects.create_user("clerk", password="pw-123456789", is_staff=True)
    client.login(username="clerk", password="pw-123456789")
    assert client.get(SETTINGS_URL).status_code == 200
    response = client.patch(SETTINGS_URL, {"policy": "greedy"}, content_type="application/json")
    assert response.status_code == 403


def test_the_admin_form_refuses_invalid_settings(staff, shop):
    response = staff.post(
        "/admin/stylerec/loopsettings/add/",
        {
            "personalization_enabled": "on",
            "policy": "softmax",
            "uniform_share": "0.05",
            "exploration_strength": "0",
        },
    )
    assert response.status_code == 200 and not LoopSettings.objects.exists()


def test_settings_broken_behind_the_app_show_originals_not_errors(client, shop, caplog):
    """A row changed behind the app's back (SQL, a migration): pages and the API show the
    original photos and log why, never a 500."""
    preference_fit_full()  # the policy is used once there is a model
    LoopSettings.objects.create()
    LoopSettings.objects.update(policy="no-such-policy")
    loop_settings_changed()
    caplog.set_level(logging.ERROR)
    response = client.get("/")
    assert response.status_code == 200
    assert {image["data-style"] for image in images(response.content.decode())} == {"original"}
    listing = client.get("/api/v1/products/")
    assert listing.status_code == 200
    assert {p["personalized"]["style"] for p in listing.json()["results"]} == {"original"}
    assert sum("showing originals" in record.getMessage() for record in caplog.records) >= 2
