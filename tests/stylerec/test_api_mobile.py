"""A scripted mobile app over real HTTP: install, browse, send events, sign in, export, leave."""

import json
import urllib.error
import urllib.request

import pytest
from django.utils import timezone

from stylerec.models import Decision, Event, Shopper

pytestmark = pytest.mark.django_db(transaction=True)


class MobileApp:
    """What an app does with the API: JSON over HTTP, one Authorization header."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.authorization = None

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, object]:
        url = path if path.startswith("http") else f"{self.base_url}/api/v1{path}"
        request = urllib.request.Request(url, method=method)
        request.add_header("User-Agent", "StyleRecApp/1.0 (iPhone; Mobile)")
        request.add_header("Accept", "application/json")
        if self.authorization:
            request.add_header("Authorization", self.authorization)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, data=data, timeout=30) as response:
                status, payload = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, payload = error.code, error.read()
        return status, json.loads(payload) if payload else None

    def fetch(self, url: str) -> tuple[int, str]:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.headers["Content-Type"]


def test_an_app_installs_browses_signs_in_exports_and_leaves(live_server, shop, django_user_model):
    app = MobileApp(live_server.url)

    # A fresh install asks for its own shopper.
    status, install = app.call("POST", "/shoppers/anonymous/")
    assert status == 201
    app.authorization = f"Shopper {install['token']}"

    # Browsing: styles, two pages of products, one product.
    status, styles = app.call("GET", "/styles/")
    assert status == 200 and {s["slug"] for s in styles} == {"ink", "sun", "sea"}
    status, first = app.call("GET", "/products/?page_size=4")
    assert status == 200 and first["count"] == 6 and len(first["results"]) == 4
    status, second = app.call("GET", first["next"])
    assert status == 200 and len(second["results"]) == 2
    listing = first["results"] + second["results"]
    status, detail = app.call("GET", f"/products/{listing[0]['id']}/")
    assert status == 200 and detail["id"] == listing[0]["id"]
    for product in listing:
        assert app.fetch(product["personalized"]["url"])[0] == 200
        assert product["personalized"]["decision"] is not None

    # What the shopper saw and did, in one batch, with the decisions the API made.
    now = timezone.now().isoformat()
    seen = [
        {"type": "impression", "decision": p["personalized"]["decision"], "product": str(p["id"])}
        for p in listing
    ]
    liked = detail["personalized"]["decision"]
    acted = [
        {"type": kind, "decision": liked, "product": str(detail["id"]), "ts": now}
        for kind in ("impression", "click", "add_to_cart", "purchase")
    ]
    status, stored = app.call("POST", "/events/", {"events": seen + acted})
    assert status == 202 and stored == {"stored": 10, "duplicates": 0}
    status, again = app.call("POST", "/events/", {"events": acted})  # a retried batch
    assert again == {"stored": 0, "duplicates": 4}
    status, preferences = app.call("GET", "/me/preferences/")
    assert status == 200 and preferences["summary"]

    # The shopper signs in with an account made elsewhere; the install's history follows.
    django_user_model.objects.create_user("mia", password="pw-mobile-12345")
    anonymous_token = install["token"]
    app.authorization = None
    status, signed_in = app.call(
        "POST",
        "/shoppers/sign-in/",
        {"username": "mia", "password": "pw-mobile-12345", "anonymous_token": anonymous_token},
    )
    assert status == 200 and signed_in["merged"] is True
    app.authorization = f"Token {signed_in['token']}"
    status, me = app.call("GET", "/me/")
    assert me["registered"] is True and me["username"] == "mia"
    status, export = app.call("GET", "/me/export/")
    assert status == 200
    # Six in the listing; the product's own page showed the listing's image, same decision.
    assert len(export["decisions"]) == 6
    assert liked == listing[0]["personalized"]["decision"]
    assert sorted(e["kind"] for e in export["events"]) == sorted(
        ["impression"] * 7 + ["click", "add_to_cart", "purchase"]
    )
    assert {d["context"]["channel"] for d in export["decisions"]} == {"api"}
    assert {d["context"]["device"] for d in export["decisions"]} == {"mobile"}
    stale = MobileApp(live_server.url)
    stale.authorization = f"Shopper {anonymous_token}"
    assert stale.call("GET", "/me/")[0] == 401

    # The shopper leaves: everything about them goes, the account stays the shop's.
    status, forgotten = app.call("DELETE", "/me/")
    assert status == 200 and forgotten == {"events": 10, "decisions": 6, "profiles": 0}
    assert not Decision.objects.exists() and not Event.objects.exists()
    status, export = app.call("GET", "/me/export/")
    assert export["decisions"] == [] and export["events"] == []
    assert Shopper.objects.filter(user__username="mia").count() == 1, "a fresh, empty shopper"
