"""The apps carry their own API defaults: rate limits, schema, authentication, permissions and
pagination hold whatever the shop's REST_FRAMEWORK says for its own views."""

import json

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from .helpers import images, post_events

# A shop whose own API is locked down and paged, with throttles of its own and DRF's schema.
STRICT_SHOP = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.BasicAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 1,
    "DEFAULT_THROTTLE_CLASSES": ["rest_framework.throttling.AnonRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"anon": "1/day"},
    "DEFAULT_SCHEMA_CLASS": "rest_framework.schemas.openapi.AutoSchema",
}


@pytest.fixture
def strict_shop(settings):
    settings.REST_FRAMEWORK = STRICT_SHOP


def test_the_apps_api_works_inside_a_strict_shop(strict_shop, shop, client):
    shown = images(client.get("/").content.decode())
    events = [
        {"type": "impression", "decision": int(i["data-decision"]), "product": i["data-product"]}
        for i in shown
    ]
    assert post_events(client, events).status_code == 202, "the beacon, anonymous"
    api = APIClient()
    for _ in range(3):  # the shop's 1/day anon limit is its own views' business
        styles = api.get("/api/v1/styles/")
        assert styles.status_code == 200 and isinstance(styles.json(), list)
    products = api.get("/api/v1/products/").json()
    assert len(products["results"]) == len(shop["products"]), "the apps' own page size"
    assert api.post("/api/v1/shoppers/anonymous/").status_code == 201


def test_the_schema_is_drf_spectaculars_whatever_the_shops_schema_class(strict_shop, tmp_path):
    out = tmp_path / "schema.json"
    call_command("spectacular", "--file", str(out), "--format", "openapi-json", "--validate")
    schema = json.loads(out.read_text())
    assert "/api/v1/events/" in schema["paths"] and "/api/v1/staff/styles/" in schema["paths"]


def test_the_schema_and_swagger_ui_are_mounted_by_the_one_include(strict_shop, client, db):
    schema = client.get("/api/schema/", {"format": "json"})
    assert schema.status_code == 200 and schema.json()["info"]["title"] == "StyleRec API"
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger-ui" in docs.content
