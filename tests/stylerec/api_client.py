"""Helpers the API tests share: clients that call as an app install, an account or nobody."""

from rest_framework.test import APIClient


def app_install() -> tuple[APIClient, str]:
    """A client holding the anonymous shopper token a fresh install asks for."""
    client = APIClient()
    response = client.post("/api/v1/shoppers/anonymous/")
    assert response.status_code == 201, response.content
    token = response.json()["token"]
    client.credentials(HTTP_AUTHORIZATION=f"Shopper {token}")
    return client, token


def signed_in(username: str, password: str, anonymous_token: str | None = None) -> APIClient:
    client = APIClient()
    body = {"username": username, "password": password}
    if anonymous_token:
        body["anonymous_token"] = anonymous_token
    response = client.post("/api/v1/shoppers/sign-in/", body, format="json")
    assert response.status_code == 200, response.content
    client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    return client


def event(kind: str, product: dict) -> dict:
    """An event about a product as the products endpoint returned it."""
    return {
        "type": kind,
        "decision": product["personalized"]["decision"],
        "product": str(product["id"]),
    }
