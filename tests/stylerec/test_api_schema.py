"""The OpenAPI schema: valid, served with offline docs, and true to what the API answers."""

import io
import itertools
import json
import os

import pytest
import schemathesis
from django.core.cache import cache
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from schemathesis.checks import ignored_auth, negative_data_rejection

from stylerec.fitting import preference_fit_full
from stylerec.models import Shopper
from styletransfer.api.base import ScopedRateThrottle

# Generated cases per operation: the run stays under two minutes on two cores; the coverage
# phase adds the schema's boundary and invalid cases on top. Raise it for a deeper search.
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "25"))
STATEFUL_EXAMPLES = int(os.environ.get("SCHEMATHESIS_STATEFUL_EXAMPLES", "15"))
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
            # The stateful phase chains calls through links inferred from the schema (the id a
            # POST answered, passed to the calls that take one).
            "phases": {"stateful": {"inference": {"algorithms": ["dependency-analysis"]}}},
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
    rotations = {"staff": [staff, staff, staff, account, {}], "shopper": [app, app, account, {}]}
    yield {
        "staff": itertools.cycle(rotations["staff"]),
        "shopper": itertools.cycle(rotations["shopper"]),
        "account": ann,
        "rotations": rotations,
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
    case.call_and_validate(headers=headers, excluded_checks=_multipart_exclusions(case))


def _multipart_exclusions(case) -> list:
    """A form field is text: an invalid number or an empty list sent as multipart arrives as a
    valid value or no field at all, so "invalid data accepted" cannot be judged there."""
    multipart = (case.media_type or "").startswith("multipart/")
    return [negative_data_rejection] if multipart else []


@pytest.mark.slow
def test_sequences_of_calls_keep_to_the_schema(callers):
    """The stateful phase: a style created, then activated, fetched, its renditions listed and
    retried, by the same callers in turn, and every answer as documented."""

    class Workflow(schema.as_state_machine()):
        # Each sequence starts from the same shop, callers and cache: Hypothesis replays them.
        def setup(self) -> None:
            self.savepoint = transaction.savepoint()
            self.turns = {kind: itertools.cycle(r) for kind, r in callers["rotations"].items()}
            cache.clear()

        def teardown(self) -> None:
            transaction.savepoint_rollback(self.savepoint)
            cache.clear()

        def get_call_kwargs(self, case) -> dict:
            Shopper.objects.get_or_create(token=SHOPPER_TOKEN)
            Token.objects.get_or_create(key=ACCOUNT_TOKEN, defaults={"user": callers["account"]})
            return {"headers": next(self.turns["staff" if "/staff/" in case.path else "shopper"])}

        def validate_response(self, response, case, additional_checks=None, **kwargs) -> None:
            case.validate_response(
                response,
                additional_checks=additional_checks,
                # A sequence keeps its cookies, so a call it resends without credentials still
                # carries the session shopper it started: "auth ignored" cannot be judged.
                excluded_checks=[*_multipart_exclusions(case), ignored_auth],
                transport_kwargs=kwargs,
            )

    run_state_machine_as_test(
        Workflow,
        settings=settings(
            max_examples=STATEFUL_EXAMPLES,
            stateful_step_count=6,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
