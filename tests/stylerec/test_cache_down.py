"""With the cache (Redis) away, pages and the API keep answering, and no event is lost."""

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from stylerec.models import Event

from .helpers import images

NOWHERE = "redis://127.0.0.1:1/0"  # nothing listens on port 1


@pytest.fixture
def cache_down(settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": NOWHERE,
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }


def test_pages_and_events_go_on_while_the_cache_is_away(client, shop, cache_down):
    page = client.get("/")
    assert page.status_code == 200
    shown = images(page.content.decode())
    assert len(shown) == 6
    response = client.post(
        "/api/v1/events/",
        {
            "events": [
                {
                    "type": "click",
                    "decision": int(shown[0]["data-decision"]),
                    "product": shown[0]["data-product"],
                }
            ]
        },
        content_type="application/json",
    )
    assert response.status_code == 202, response.content
    assert Event.objects.filter(kind="click").count() == 1


def test_the_rate_limited_api_lets_requests_through_while_the_cache_is_away(
    shop, cache_down, django_user_model
):
    assert APIClient().get("/api/v1/products/").status_code == 200
    assert APIClient().get("/api/v1/styles/").status_code == 200
    staff = APIClient()
    boss = django_user_model.objects.create_superuser("boss", password="pw-1234567")
    staff.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=boss).key}")
    assert staff.get("/api/v1/staff/styles/").status_code == 200
