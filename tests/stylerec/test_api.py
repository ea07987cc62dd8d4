"""The mobile API: shoppers, products with personalized images, preferences, export, forget."""

import pytest
from django.test import Client
from rest_framework.test import APIClient

from stylerec.fitting import preference_fit_full
from stylerec.loop_settings import loop_settings_changed
from stylerec.models import Decision, Event, LoopSettings, Shopper, ShopperProfile
from stylerec.serving.state import current_model
from styletransfer.api.base import ScopedRateThrottle

from .api_client import app_install, event, signed_in

PASSWORD = "pw-correct-horse-7"


@pytest.fixture
def ann(django_user_model):
    return django_user_model.objects.create_user("ann", password=PASSWORD)


def products(client, **params) -> dict:
    response = client.get("/api/v1/products/", params)
    assert response.status_code == 200, response.content
    return response.json()


# --- Shoppers ----------------------------------------------------------------------------------


def test_a_fresh_install_gets_an_anonymous_shopper(db):
    client, token = app_install()
    shopper = Shopper.objects.get(token=token)
    assert shopper.user is None
    me = client.get("/api/v1/me/").json()
    assert me["id"] == shopper.pk and me["registered"] is False and me["username"] is None


def test_unknown_or_missing_credentials_are_refused(db):
    assert APIClient().get("/api/v1/me/").status_code == 401
    for header in ["Shopper nope", "Token nope", "Shopper a b", "Shopper a\x00b", "Token a\x00b"]:
        response = APIClient().get("/api/v1/me/", HTTP_AUTHORIZATION=header)
        assert response.status_code == 401
        assert set(response.json()) == {"detail"}


def test_sign_in_merges_the_install_history_into_the_account(shop, ann):
    client, token = app_install()
    listing = products(client)["results"]
    assert client.post(
        "/api/v1/events/", {"events": [event("click", listing[0])]}, format="json"
    ).status_code == (202)
    anonymous = Shopper.objects.get(token=token)

    response = APIClient().post(
        "/api/v1/shoppers/sign-in/",
        {"username": "ann", "password": PASSWORD, "anonymous_token": token},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["merged"] is True and body["shopper"]["registered"] is True
    account = Shopper.objects.get(user=ann)
    assert not Shopper.objects.filter(pk=anonymous.pk).exists()
    assert Decision.objects.filter(shopper=account).count() == 6
    assert Event.objects.get().shopper == account
    # The install's token is spent; the account token works.
    assert client.get("/api/v1/me/").status_code == 401
    client.credentials(HTTP_AUTHORIZATION=f"Token {body['token']}")
    assert client.get("/api/v1/me/").json()["username"] == "ann"
    ann.refresh_from_db()
    assert ann.last_login is not None


def test_sign_in_merges_the_shopper_the_app_calls_as(shop, ann):
    """An app that signs in with the Shopper header it has sent so far merges that history:
    no body field to know about."""
    client, token = app_install()
    listing = products(client)["results"]
    client.post("/api/v1/events/", {"events": [event("click", listing[0])]}, format="json")
    response = client.post(
        "/api/v1/shoppers/sign-in/", {"username": "ann", "password": PASSWORD}, format="json"
    )
    assert response.status_code == 200 and response.json()["merged"] is True
    assert Event.objects.get().shopper == Shopper.objects.get(user=ann)
    again = client.post(
        "/api/v1/shoppers/sign-in/", {"username": "ann", "password": PASSWORD}, format="json"
    )
    assert again.status_code == 200 and again.json()["merged"] is False, "a spent token"
    for header in ("Shopper a\x00b", "Shopper " + "x" * 65):
        refused = APIClient().post(
            "/api/v1/shoppers/sign-in/",
            {"username": "ann", "password": PASSWORD},
            format="json",
            HTTP_AUTHORIZATION=header,
        )
        assert refused.status_code == 200 and refused.json()["merged"] is False


def test_signing_in_again_is_harmless(shop, ann):
    first = signed_in("ann", PASSWORD, anonymous_token="already-merged-or-made-up")
    second = APIClient().post(
        "/api/v1/shoppers/sign-in/", {"username": "ann", "password": PASSWORD}, format="json"
    )
    assert second.json()["merged"] is False
    assert first.get("/api/v1/me/").status_code == 200


def test_wrong_password_gets_a_401_and_no_token(db, ann):
    response = APIClient().post(
        "/api/v1/shoppers/sign-in/", {"username": "ann", "password": "wrong"}, format="json"
    )
    assert response.status_code == 401 and response["WWW-Authenticate"] == "Token"
    assert response.json() == {"detail": "Unable to sign in with these details."}
    missing = APIClient().post("/api/v1/shoppers/sign-in/", {"username": "ann"}, format="json")
    assert missing.status_code == 400 and "password" in missing.json()
    assert not Shopper.objects.filter(user=ann).exists()


def test_a_race_for_the_accounts_shopper_is_settled(db, ann, monkeypatch):
    """Two requests of one account create (or one forgets) its shopper at the same time."""
    from django.db import IntegrityError

    from stylerec import shoppers

    calls = []

    def racing(user):
        calls.append(user)
        if len(calls) == 1:
            raise IntegrityError("duplicate key value violates unique constraint")
        return Shopper.objects.get_or_create(user=user)[0]

    monkeypatch.setattr(shoppers, "shopper_for_user", racing)
    client = signed_in("ann", PASSWORD)
    calls.clear()
    response = client.get("/api/v1/me/")
    assert response.status_code == 200 and response.json()["username"] == "ann"
    assert len(calls) == 2


def test_sign_out_revokes_the_token(db, ann):
    client = signed_in("ann", PASSWORD)
    assert client.post("/api/v1/shoppers/sign-out/").status_code == 204
    assert client.get("/api/v1/me/").status_code == 401


# --- Products ----------------------------------------------------------------------------------


def test_products_carry_the_image_chosen_for_the_caller(shop):
    client, token = app_install()
    page = products(client)
    assert page["count"] == 6 and len(page["results"]) == 6
    shopper = Shopper.objects.get(token=token)
    decisions = {d.pk: d for d in Decision.objects.filter(shopper=shopper)}
    assert len(decisions) == 6
    for product in page["results"]:
        shown = product["personalized"]
        decision = decisions[shown["decision"]]
        assert decision.product_id == str(product["id"])
        assert decision.chosen == shown["style"]
        assert decision.context["channel"] == "api"
        assert product["image"].startswith("http://testserver/media/")
        assert {"name", "price", "category", "slug", "url"} <= set(product)
        if shown["style"] != "original":
            assert "/renditions/" in shown["url"]
        assert Client().get(shown["url"].removeprefix("http://testserver")).status_code == 200


def test_one_product_logs_one_decision(shop):
    client, token = app_install()
    product = shop["products"][2]
    response = client.get(f"/api/v1/products/{product.pk}/")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == product.pk and body["name"] == product.name
    decision = Decision.objects.get(shopper__token=token)
    assert body["personalized"]["decision"] == decision.pk


@pytest.mark.parametrize("pk", ["abc", "0", "99999999999999999999999", "%00"])
def test_missing_products_are_404(shop, pk):
    response = APIClient().get(f"/api/v1/products/{pk}/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_callers_nobody_knows_see_originals_and_leave_no_trace(shop):
    page = products(APIClient())
    assert {p["personalized"]["style"] for p in page["results"]} == {"original"}
    assert {p["personalized"]["decision"] for p in page["results"]} == {None}
    assert not Shopper.objects.exists() and not Decision.objects.exists()


def test_filter_search_and_pages(shop):
    from storefront.models import Category, Product

    other = Category.objects.create(name="Plates", slug="plates")
    Product.objects.filter(pk=shop["products"][0].pk).update(category=other, name="Blue plate")
    client, _ = app_install()
    assert [p["name"] for p in products(client, category="plates")["results"]] == ["Blue plate"]
    assert products(client, category="nope")["count"] == 0
    assert [p["name"] for p in products(client, search="PLATE")["results"]] == ["Blue plate"]
    first = products(client, page_size=4)
    assert len(first["results"]) == 4 and first["next"] and first["previous"] is None
    second = client.get(first["next"]).json()
    assert len(second["results"]) == 2
    ids = [p["id"] for p in first["results"] + second["results"]]
    assert sorted(ids) == sorted(p.pk for p in shop["products"])
    assert len(products(client, page_size=100)["results"]) == 6
    for size in (0, 101, "x"):
        response = client.get("/api/v1/products/", {"page_size": size})
        assert response.status_code == 400 and "page_size" in response.json()
    assert products(client, search="", category="")["count"] == 6, "blank filters are unset"
    assert client.get("/api/v1/products/", {"page": 9}).status_code == 404
    assert client.get("/api/v1/products/", {"search": "x" * 101}).status_code == 400
    assert client.get("/api/v1/products/", {"search": "a\x00b"}).status_code == 400


def test_a_category_lookup_that_cannot_take_the_value_is_a_400(shop, settings):
    settings.STYLEREC = {**settings.STYLEREC, "PRODUCT_CATEGORY_LOOKUP": "category_id"}
    response = APIClient().get("/api/v1/products/", {"category": "abc"})
    assert response.status_code == 400 and "category" in response.json()


def test_shops_without_a_product_serializer_get_id_name_and_url(shop, settings):
    settings.STYLEREC = {"PRODUCT_MODEL": "storefront.Product"}
    product = APIClient().get("/api/v1/products/").json()["results"][0]
    assert set(product) == {"id", "name", "url", "price", "image", "personalized"}
    assert isinstance(product["id"], str)
    assert product["url"].startswith("http://testserver/") and product["price"] is None


def test_originals_only_and_personalization_off_show_originals(shop):
    client, token = app_install()
    response = client.patch("/api/v1/me/", {"originals_only": True}, format="json")
    assert response.status_code == 200 and response.json()["originals_only"] is True
    assert {p["personalized"]["style"] for p in products(client)["results"]} == {"original"}
    client.patch("/api/v1/me/", {"originals_only": False}, format="json")
    LoopSettings.objects.create(personalization_enabled=False)
    loop_settings_changed()
    assert {p["personalized"]["style"] for p in products(client)["results"]} == {"original"}
    for wrong in ("maybe", 0, "on"):
        response = client.patch("/api/v1/me/", {"originals_only": wrong}, format="json")
        assert response.status_code == 400
    form = client.patch("/api/v1/me/", {"originals_only": "true"}, format="multipart")
    assert form.status_code == 415


# --- Events from apps --------------------------------------------------------------------------


def test_app_events_join_the_decisions_the_api_made(shop):
    client, token = app_install()
    listing = products(client)["results"]
    batch = [event("impression", p) for p in listing] + [event("click", listing[1])]
    response = client.post("/api/v1/events/", {"events": batch}, format="json")
    assert response.status_code == 202 and response.json() == {"stored": 7, "duplicates": 0}
    click = Event.objects.get(kind="click")
    assert click.decision_id == listing[1]["personalized"]["decision"]
    assert click.shopper.token == token and click.style_slug == listing[1]["personalized"]["style"]


@pytest.mark.parametrize("batch", [5, -6.1e-05, None, {"type": "click"}, "events", True])
def test_batches_that_are_not_lists_get_a_400(db, batch):
    client, _ = app_install()
    response = client.post("/api/v1/events/", {"events": batch}, format="json")
    assert response.status_code == 400 and "events" in response.json()


def test_a_shopper_cannot_post_events_on_another_shoppers_decisions(shop):
    mine, _ = app_install()
    theirs, _ = app_install()
    their_product = products(theirs)["results"][0]
    response = mine.post(
        "/api/v1/events/", {"events": [event("click", their_product)]}, format="json"
    )
    assert response.status_code == 400 and "decision" in str(response.json())
    assert not Event.objects.exists()


# --- Preferences, export, forget ---------------------------------------------------------------


def test_preferences_before_any_fit_say_so(shop):
    client, _ = app_install()
    body = client.get("/api/v1/me/preferences/").json()
    assert body["model_version"] is None and body["styles"] == []
    assert "not learnt" in body["summary"]


@pytest.mark.slow
def test_preferences_rank_what_the_shopper_clicks_first(shop):
    client, token = app_install()
    shopper = Shopper.objects.get(token=token)
    product = shop["products"][0]
    for _ in range(40):
        for style in ["ink", "sun", "sea", "original"]:
            decision = Decision.objects.create(
                shopper=shopper,
                product_id=str(product.pk),
                candidates=["original", "ink", "sun", "sea"],
                probabilities=[0.25] * 4,
                chosen=style,
                propensity=0.25,
                model_version="test",
                policy="uniform",
            )
            if style == "sun":
                Event.objects.create(
                    shopper=shopper,
                    kind="click",
                    decision=decision,
                    product_id=str(product.pk),
                    occurred_at=decision.created_at,
                )
    preference_fit_full()
    body = client.get("/api/v1/me/preferences/").json()
    assert body["personalized"] is True and body["decisions"] == 160
    ranked = body["styles"]
    assert [entry["rank"] for entry in ranked] == [1, 2, 3, 4]
    assert {entry["style"] for entry in ranked} == {"original", "ink", "sun", "sea"}
    assert ranked[0]["style"] == "sun" and ranked[0]["verdict"] == "your favourite"
    assert ranked[0]["engagement_per_100_views"] > ranked[-1]["engagement_per_100_views"]
    assert sum(entry["shown_percent"] for entry in ranked) == pytest.approx(100, abs=0.5)
    assert body["summary"].startswith("You respond most to Sun")
    # Another shopper, never fitted, gets the population's view and is told so.
    newcomer, _ = app_install()
    theirs = newcomer.get("/api/v1/me/preferences/").json()
    assert theirs["personalized"] is False and theirs["summary"].startswith("You are new here")


def test_export_holds_everything_about_me_and_nothing_about_others(shop):
    mine, my_token = app_install()
    theirs, _ = app_install()
    for client in (mine, theirs):
        listing = products(client)["results"]
        client.post("/api/v1/events/", {"events": [event("click", listing[0])]}, format="json")
    preference_fit_full()
    response = mine.get("/api/v1/me/export/")
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    export = response.json()
    me = Shopper.objects.get(token=my_token)
    assert export["shopper"]["id"] == me.pk
    assert sorted(d["id"] for d in export["decisions"]) == sorted(
        Decision.objects.filter(shopper=me).values_list("pk", flat=True)
    )
    assert [e["id"] for e in export["events"]] == list(
        Event.objects.filter(shopper=me).values_list("pk", flat=True)
    )
    assert export["profile"]["model_version"] == current_model().version
    assert len(export["profile"]["preference_mean"]) == len(
        export["profile"]["preference_covariance"]
    )


def test_forgetting_me_deletes_my_data_only(shop):
    mine, my_token = app_install()
    theirs, their_token = app_install()
    for client in (mine, theirs):
        listing = products(client)["results"]
        client.post("/api/v1/events/", {"events": [event("click", listing[0])]}, format="json")
    preference_fit_full()
    response = mine.delete("/api/v1/me/")
    assert response.status_code == 200
    assert response.json() == {"events": 1, "decisions": 6, "profiles": 1}
    assert not Shopper.objects.filter(token=my_token).exists()
    other = Shopper.objects.get(token=their_token)
    assert Decision.objects.count() == Decision.objects.filter(shopper=other).count() == 6
    assert Event.objects.filter(shopper=other).count() == 1
    assert ShopperProfile.objects.filter(shopper=other).exists()
    assert mine.get("/api/v1/me/").status_code == 401


def test_a_signed_in_account_can_forget_and_start_afresh(shop, ann):
    client = signed_in("ann", PASSWORD)
    products(client)
    assert client.delete("/api/v1/me/").json()["decisions"] == 6
    assert client.get("/api/v1/me/").status_code == 200  # the account remains, with a new shopper
    assert not Decision.objects.exists()


def test_a_web_session_reaches_its_own_shopper_and_csrf_guards_writes(shop):
    browser = Client(enforce_csrf_checks=True)
    assert browser.get("/api/v1/me/").status_code == 401  # no shopper yet
    browser.get("/")
    shopper = Shopper.objects.get()
    assert browser.get("/api/v1/me/").json()["id"] == shopper.pk
    assert browser.delete("/api/v1/me/").status_code == 403
    assert Shopper.objects.filter(pk=shopper.pk).exists()


# --- Errors and limits -------------------------------------------------------------------------


def test_throttled_scopes_answer_429(db, settings):
    # The shop names one scope's rate, the way any shop would; the others keep the apps' own.
    settings.REST_FRAMEWORK = {"DEFAULT_THROTTLE_RATES": {"shoppers": "2/min"}}
    client = APIClient()
    codes = [client.post("/api/v1/shoppers/anonymous/").status_code for _ in range(3)]
    assert codes == [201, 201, 429]
    response = client.post("/api/v1/shoppers/anonymous/")
    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    assert set(response.json()) == {"detail"}
    assert client.get("/api/v1/styles/").status_code == 200  # other scopes are not affected


def test_each_app_install_has_its_own_rate_limit(shop, monkeypatch):
    monkeypatch.setattr(
        ScopedRateThrottle,
        "THROTTLE_RATES",
        {**ScopedRateThrottle.THROTTLE_RATES, "catalog": "2/min"},
    )
    first, _ = app_install()
    second, _ = app_install()
    assert [first.get("/api/v1/products/").status_code for _ in range(3)] == [200, 200, 429]
    assert second.get("/api/v1/products/").status_code == 200, "not counted with the first"


def test_unknown_api_urls_answer_json_404(db):
    response = APIClient().get("/api/v1/nothing-here/")
    assert response.status_code == 404 and response.json() == {"detail": "Not found."}


def test_wrong_methods_answer_405(db):
    client, _ = app_install()
    response = client.post("/api/v1/me/preferences/")
    assert response.status_code == 405 and set(response.json()) == {"detail"}


def test_a_differently_shaped_shop_gets_the_same_api(db, settings):
    """String primary keys, photos in a related table, no serializer of its own."""
    from django.core.files.base import ContentFile

    from styletransfer import rendering, services
    from tests.styletransfer.helpers import make_style, product_png
    from tests.testshop.models import Item, ItemPhoto

    from .helpers import give_embedding

    settings.STYLETRANSFER = {
        "PRODUCT_MODEL": "testshop.Item",
        "PRODUCT_IMAGES": "tests.testshop.models.item_photos",
    }
    settings.STYLEREC = {"PRODUCT_MODEL": "testshop.Item", "PRODUCT_SEARCH_FIELDS": ["title"]}
    lamp = Item.objects.create(sku="SKU/1 lamp", title="Lamp")
    Item.objects.create(sku="SKU-2", title="Rug")
    photo = ItemPhoto(item=lamp)
    photo.picture.save("lamp.png", ContentFile(product_png((30, 90, 200))), save=True)
    style = make_style("glow", active=True)
    give_embedding(style, 0)
    source = services.source_images_of([lamp])[lamp.pk]
    rendering.rendition_render(
        rendition_id=services.rendition_request(source=source, style=style).pk
    )

    client, token = app_install()
    page = products(client, search="lam")
    assert [p["id"] for p in page["results"]] == ["SKU/1 lamp"]
    lamp_json = page["results"][0]
    assert lamp_json["name"] == "Lamp" and lamp_json["image"].endswith(".png")
    decision = Decision.objects.get(pk=lamp_json["personalized"]["decision"])
    assert decision.product_id == "SKU/1 lamp"
    rug = client.get("/api/v1/products/SKU-2/").json()
    assert rug["image"] is None and rug["personalized"]["style"] == "original"
    response = client.post(
        "/api/v1/events/", {"events": [event("click", lamp_json)]}, format="json"
    )
    assert response.status_code == 202
