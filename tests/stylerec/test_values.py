"""Values of add-to-carts and purchases, value-weighted rewards, and stylerec.track from a
shop's own code (the README's recipe, run as written)."""

import logging
import re
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory, override_settings

import stylerec
from stylerec import fitting
from stylerec.events import reward_weight
from stylerec.models import Decision, Event, Shopper

from .helpers import images, post_events

README = Path(__file__).resolve().parents[2] / "README.md"


def _first_image(client) -> dict:
    return images(client.get("/").content.decode())[0]


def test_purchases_carry_a_value_as_a_number_or_a_string(client, shop):
    image = _first_image(client)
    event = {"decision": image["data-decision"], "product": image["data-product"]}
    response = post_events(
        client,
        [
            {**event, "type": "add_to_cart", "value": 19.99, "currency": "eur"},
            {**event, "type": "purchase", "value": "39.98"},  # the shop's CURRENCY: USD
        ],
    )
    assert response.status_code == 202, response.content
    stored = dict(Event.objects.values_list("kind", "value"))
    assert stored == {"add_to_cart": Decimal("19.99"), "purchase": Decimal("39.98")}
    currencies = dict(Event.objects.values_list("kind", "currency"))
    assert currencies == {"add_to_cart": "EUR", "purchase": "USD"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"value": -1}, "value"),
        ({"value": "NaN"}, "value"),
        ({"value": "1e3"}, "value"),
        ({"value": "-1"}, "value"),
        ({"value": "a lot"}, "value"),
        ({"value": True}, "value"),
        ({"value": 1e20}, "value"),
        ({"value": 5, "currency": "EURO"}, "currency"),
        ({"value": 5, "currency": "ABC"}, "currency"),
        ({"type": "click", "value": 5}, "value"),
        ({"currency": "EUR"}, "value"),
    ],
)
def test_bad_values_are_refused_with_the_field_named(client, shop, change, field):
    image = _first_image(client)
    event = {
        "type": "purchase",
        "decision": image["data-decision"],
        "product": image["data-product"],
    }
    response = post_events(client, [{**event, **change}])
    assert response.status_code == 400
    assert field in response.json()["events"][0], response.json()
    assert not Event.objects.filter(kind="purchase").exists()


def test_rewards_are_weighted_by_value_when_asked(shop):
    shopper = Shopper.objects.create()
    decision = Decision.objects.create(
        shopper=shopper,
        product_id="1",
        candidates=["original"],
        probabilities=[1.0],
        chosen="original",
        propensity=1.0,
        model_version="v",
        policy="uniform",
    )
    for kind, value in (("click", None), ("purchase", Decimal("250"))):
        Event.objects.create(
            shopper=shopper,
            kind=kind,
            decision=decision,
            product_id="1",
            occurred_at=decision.created_at,
            value=value,
            currency="USD" if value else "",
        )
    ids = np.array([decision.pk])
    decisions = Decision.objects.all()
    assert fitting.event_outcomes(decisions, ids)[0][0] == pytest.approx(1.0 + 1.0)
    with override_settings(
        STYLEREC={"PRODUCT_MODEL": "storefront.Product", "REWARD_BY_VALUE": True}
    ):
        assert reward_weight("purchase", Decimal("50")) == pytest.approx(0.5)
        assert reward_weight("click", Decimal("50")) == pytest.approx(1.0)
        assert fitting.event_outcomes(decisions, ids)[0][0] == pytest.approx(1.0 + 2.5)


def _recipe() -> dict:
    """The README's recipe, executed as written."""
    text = README.read_text()
    section = text.split("### Recording baskets and orders from your own code", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 (the recipe itself)
    return namespace


def _request_of(client, method: str = "post", path: str = "/basket/"):
    request = getattr(RequestFactory(), method)(path)
    request.session = client.session
    request.user = AnonymousUser()
    return request


def test_the_readme_recipe_records_baskets_and_orders(client, shop):
    recipe = _recipe()
    shown = {
        i["data-product"]: i["data-decision"] for i in images(client.get("/").content.decode())
    }
    product = shop["products"][1]
    request = _request_of(client)
    response = recipe["add_to_basket"](request, product.pk)
    assert response.status_code == 200
    recipe["order_paid"](_request_of(client), [(product, 2)])
    shopper = Shopper.objects.get()
    events = {e.kind: e for e in Event.objects.filter(shopper=shopper)}
    assert set(events) == {"add_to_cart", "purchase"}
    assert events["add_to_cart"].value == product.price
    assert events["purchase"].value == product.price * 2
    assert events["purchase"].currency == "USD"
    for event in events.values():  # joined to the decision of the image the shopper saw
        assert str(event.decision_id) == shown[str(product.pk)]
        assert event.source == "server"


def test_track_never_raises_into_the_shop(client, shop, caplog):
    client.get("/")
    product = shop["products"][0]
    caplog.set_level(logging.WARNING, logger="stylerec.tracking")
    assert stylerec.track(_request_of(client), "purchase", product, value=-5) is False
    assert stylerec.track(_request_of(client), "bought", product) is False
    no_session = RequestFactory().post("/")  # no session middleware: no shopper
    no_session.user = AnonymousUser()
    assert stylerec.track(no_session, "purchase", product, value=5) is False
    assert not Event.objects.exists()
    assert len(caplog.records) == 3
    # A product never shown still records a purchase (revenue), without a decision.
    assert stylerec.track(_request_of(client), "purchase", "999999", value=5) is True
    assert Event.objects.get().decision_id is None


def test_the_add_to_cart_button_carries_the_price_the_beacon_sends(client, shop):
    """The beacon sends the button's data-stylerec-value as the add-to-cart's value (the
    browser test clicks it); here: the markup holds a value the API takes as it is."""
    product = shop["products"][0]
    html = client.get(product.get_absolute_url()).content.decode()
    value = re.search(r'data-stylerec-value="([^"]*)"', html).group(1)
    image = images(html)[0]
    event = {"type": "add_to_cart", "decision": image["data-decision"], "value": value}
    response = post_events(client, [{**event, "product": image["data-product"]}])
    assert response.status_code == 202, response.content
    assert Event.objects.get().value == product.price
