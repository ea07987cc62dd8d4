"""Impressions in a real browser: counted for images a shopper actually sees, not the rest."""

import time

import pytest

from stylerec.models import Event

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VISIBLE = """() => [...document.querySelectorAll('img[data-decision]')].filter(img => {
  const r = img.getBoundingClientRect();
  const shown = Math.max(0, Math.min(r.bottom, innerHeight) - Math.max(r.top, 0));
  return img.naturalWidth > 0 && shown >= r.height / 2;
}).map(img => Number(img.dataset.decision))"""

ALL = "[...document.querySelectorAll('img[data-decision]')].map(i => Number(i.dataset.decision))"


def impressions() -> set[int]:
    return set(Event.objects.filter(kind="impression").values_list("decision_id", flat=True))


def wait_for_impressions(expected: set[int], timeout: float = 10) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and impressions() != expected:
        time.sleep(0.2)
    return impressions()


def test_impressions_only_for_visible_images(live_server, page, shop):
    page.set_viewport_size({"width": 360, "height": 560})
    page.goto(live_server.url + "/")
    page.wait_for_function("document.querySelectorAll('img[data-decision]').length === 6")
    page.wait_for_timeout(500)
    visible = set(page.evaluate(VISIBLE))
    everything = set(page.evaluate(ALL))
    assert 0 < len(visible) < len(everything), "the test needs some images below the fold"
    page.evaluate("window.stylerec.flush()")
    assert wait_for_impressions(visible) == visible
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for_timeout(800)
    page.evaluate("window.stylerec.flush()")
    assert wait_for_impressions(everything) == everything
    assert Event.objects.filter(kind="impression").count() == len(everything), "one per decision"
    assert page.console_errors == []


def test_add_to_cart_is_tracked(live_server, page, shop):
    product = shop["products"][0]
    page.goto(live_server.url + product.get_absolute_url())
    page.click("[data-stylerec-add-to-cart]")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not Event.objects.filter(kind="add_to_cart").exists():
        time.sleep(0.2)
    event = Event.objects.get(kind="add_to_cart")
    assert event.product_id == str(product.pk) and event.decision_id is not None
    # The button's price goes with it, in the shop's currency (STYLEREC["CURRENCY"]).
    assert event.value == product.price and event.currency == "USD"
    assert page.console_errors == []
