"""The OpenAPI schema: valid, served with offline docs, and true to what the API answers."""

import io
import itertools
import json
import os

import pytest
import schemathesis
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle
from schemathesis.checks import negative_data_rejection

from stylerec.fitting import preference_fit_full
from stylerec.models import Shopper

# Generated cases per operation: the run stays under two minutes on two cores; the coverage
# phase adds the schema's boundary and invalid cases on top. Raise it for a deeper search.
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "25"))
SHOPPER_TOKEN = "schemathesis-shopper-token"
ACCOUNT_TOKEN = "0123456789abcdef0123456789abcdef01234567"


def test_the_schema_is_valid_openapi_3(db):
    from openapi_spec_validator import validate

    response = APIClient().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    spec = json.loads(response.content)
    validate(spec)
    assert spec["openapi"].startswith("3.")
    assert {"/api/v1/products/", "/api/v1/me/export/", "/api/v1/staff/styles/"} <= set(
        spec["paths"]
    )


def test_drf_spectacular_finds_nothing_to_warn_about(db):
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=io.StringIO())


def test_swagger_ui_needs_nothing_from_the_internet(db, client):
    page = client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "cdn." not in html and "https://" not in html.replace("https://swagger.io", "")
    bundle = next(
        part.split('"')[0]
        for part in html.split('src="')[1:]
        if "swagger-ui-bundle" in part.split('"')[0]
    )
    assert client.get(bundle).status_code == 200


def _served_schema():
    """The schema as served, with cases sent to the shop's WSGI app in this process."""
    from storefront.wsgi import application

    config = schemathesis.Config.from_dict(
        {
            "generation": {"max-examples": MAX_EXAMPLES},
            "checks": {
                # Business rules the schema cannot state (a decision must be the caller's,
                # credentials must exist) answer schema-valid input with a 400.
                "positive_data_acceptance": {"enabled": False},
            },
        }
    )
    return schemathesis.openapi.from_wsgi("/api/schema/?format=json", application, config=config)


schema = _served_schema()


@pytest.fixture
def callers(shop, django_user_model, monkeypatch):
    """Who calls, in turn: on staff URLs mostly staff, sometimes a shopper or nobody; elsewhere
    an app install, a signed-in account or nobody. Requests run inside the test's transaction
    as with Django's test client: closing "old" connections at the end of a request would
    close the test's own."""
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    # Generated traffic must reach the views, not the rate limits.
    monkeypatch.setattr(
        ScopedRateThrottle,
        "THROTTLE_RATES",
        dict.fromkeys(ScopedRateThrottle.THROTTLE_RATES, "100000/min"),
    )
    preference_fit_full()
    boss = django_user_model.objects.create_superuser("boss", password="pw-1234567")
    ann = django_user_model.objects.create_user("ann", password="pw-1234567")
    staff = {"Authorization": f"Token {Token.objects.create(user=boss).key}"}
    account = {"Authorization": f"Token {ACCOUNT_TOKEN}"}
    app = {"Authorization": f"Shopper {SHOPPER_TOKEN}"}
    yield {
        "staff": itertools.cycle([staff, staff, staff, account, {}]),
        "shopper": itertools.cycle([app, app, account, {}]),
        "account": ann,
    }
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.mark.slow
@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_keeps_to_its_schema(case, callers):
    """No 5xx, and every answer (errors included) as documented."""
    # Again, if a case forgot the shopper or signed the account out.
    Shopper.objects.get_or_create(token=SHOPPER_TOKEN)
    Token.objects.get_or_create(key=ACCOUNT_TOKEN, defaults={"user": callers["account"]})
    headers = next(callers["staff" if "/staff/" in case.path else "shopper"])
    # A form field is text: an invalid number or an empty list sent as multipart arrives as a
    # valid value or no field at all, so "invalid data accepted" cannot be judged there.
    multipart = (case.media_type or "").startswith("multipart/")
    case.call_and_validate(
        headers=headers, excluded_checks=[negative_data_rejection] if multipart else None
    )
