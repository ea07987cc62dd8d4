"""Inputs at the edge: ids as the markup gives them, loop settings checked on every write
path, and pages that show originals when choosing fails."""

import pytest

from stylerec.models import Event

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
