"""Numbers no database column holds, digits that are not ASCII: answers, never a server error."""

import textwrap

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.helpers import run_with_shop_settings

from .api_client import app_install

HUGE = str(2**64)


def test_an_event_naming_a_decision_beyond_any_id_is_a_field_error(client, shop):
    app, _ = app_install()
    response = app.post(
        "/api/v1/events/",
        {"events": [{"type": "click", "decision": 2**64, "product": "1"}]},
        format="json",
    )
    assert response.status_code == 400
    assert "decision" in response.json()["events"][0]


@pytest.mark.parametrize("value", [HUGE, "²", "١٢"])  # superscript two, Arabic-Indic digits
def test_a_click_through_with_an_odd_decision_still_serves_the_page(client, shop, value):
    assert client.get("/", {"sr": value}).status_code == 200


@pytest.mark.parametrize("size", ["²", "١٢", HUGE])
def test_a_page_size_in_other_digits_is_refused(client, shop, size):
    response = APIClient().get("/api/v1/products/", {"page_size": size})
    assert response.status_code == 400
    assert "page_size" in response.json()


def test_ids_beyond_any_key_are_missing_objects(client, shop, django_user_model):
    staff = APIClient()
    boss = django_user_model.objects.create_superuser("boss", password="pw-1234567")
    staff.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=boss).key}")
    for path in (
        f"/api/v1/staff/styles/{HUGE}/",
        "/api/v1/staff/styles/²/",
        f"/api/v1/staff/renditions/{HUGE}/",
        f"/api/v1/products/{HUGE}/",
        "/api/v1/products/-1/",
    ):
        assert staff.get(path).status_code == 404, path


# SQLite, the embedded default, raises OverflowError for such numbers where PostgreSQL
# compares them: the same requests, on a fresh SQLite database in its own process.
SQLITE_SCRIPT = textwrap.dedent(
    """
    import django
    django.setup()
    from django.core.management import call_command
    call_command("migrate", verbosity=0)
    from django.contrib.auth.models import User
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient
    from django.test import Client

    boss = User.objects.create_superuser("boss", password="pw-1234567")
    staff = APIClient(SERVER_NAME="localhost")
    staff.credentials(HTTP_AUTHORIZATION="Token " + Token.objects.create(user=boss).key)
    huge = str(2**64)
    codes = [
        staff.get(f"/api/v1/staff/styles/{huge}/").status_code,
        staff.get(f"/api/v1/staff/renditions/{huge}/").status_code,
        staff.get(f"/api/v1/products/{huge}/").status_code,
        staff.post(
            "/api/v1/events/",
            {"events": [{"type": "click", "decision": 2**64, "product": "1"}]},
            format="json",
        ).status_code,
        Client(SERVER_NAME="localhost").get("/", {"sr": huge}).status_code,
    ]
    print(codes)
    """
)


@pytest.mark.slow
def test_the_embedded_sqlite_default_answers_the_same(tmp_path):
    result = run_with_shop_settings(["-c", SQLITE_SCRIPT], {"STOREFRONT_VAR_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[404, 404, 404, 400, 200]"


def test_a_decision_sent_as_the_markup_has_it_a_string_of_digits_is_found(client, shop):
    from .helpers import images

    shown = images(client.get("/").content.decode())[0]
    response = client.post(
        "/api/v1/events/",
        {
            "events": [
                {
                    "type": "click",
                    "decision": shown["data-decision"],
                    "product": shown["data-product"],
                }
            ]
        },
        content_type="application/json",
    )
    assert response.status_code == 202, response.content
    assert response.json()["stored"] == 1
