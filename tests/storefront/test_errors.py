"""A database that is away answers 503 with Retry-After, on pages and in the API alike."""

import pytest
from django.db import OperationalError
from django.test import Client

from storefront import errors, views
from stylerec.api import views as api_views


@pytest.fixture
def client():
    return Client(raise_request_exception=False)


def test_a_page_while_the_database_is_away_is_a_503_to_retry(client, db, monkeypatch):
    def away(*args, **kwargs):
        raise OperationalError("connection to server at 127.0.0.1 failed")

    monkeypatch.setattr(views, "get_object_or_404", away)
    response = client.get("/p/any-product/")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert "try again" in response.content.decode()


def test_the_api_says_so_in_its_own_shape(client, db, monkeypatch):
    def away(*args, **kwargs):
        raise OperationalError("terminating connection due to administrator command")

    monkeypatch.setattr(api_views, "products_for_api", away)
    response = client.get("/api/v1/products/")
    assert response.status_code == 503
    assert response.json() == {"detail": errors.UNAVAILABLE}
    assert response["Retry-After"] == "5"


def test_any_other_failure_is_still_a_plain_500(client, db, monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError

    monkeypatch.setattr(api_views, "products_for_api", broken)
    assert client.get("/api/v1/products/").status_code == 500
