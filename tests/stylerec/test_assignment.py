"""Stable assignments: the same image of a product for a shopper on every view and channel,
a draw replayable from the log, and honest off-policy estimates with repeated views."""

import http.cookiejar
import json
import re
import time
import urllib.request

import numpy as np
import pytest
from django.core.cache import cache
from django.test import override_settings

from stylerec.fitting import preference_fit_full
from stylerec.ml.evaluate import LoggedDecisions, ips, single_arm_probabilities
from stylerec.models import Decision, Event, Shopper
from stylerec.serving.assignment import assignment_epoch, assignment_uniform, drawn_arm
from stylerec.serving.chooser import choose_images
from styletransfer import invalidation
from styletransfer.models import Rendition

from .helpers import images


def _unready(style: str) -> None:
    """The style's renditions stop being ready (re-rendering), as pages will see it."""
    renditions = Rendition.objects.filter(style__slug=style)
    renditions.update(status="pending")
    invalidation.sources_changed(renditions.values_list("source_hash", flat=True))


def _shown(html: str) -> dict:
    return {i["data-product"]: (i["data-style"], i["data-decision"]) for i in images(html)}


def test_a_page_opened_twice_shows_the_same_images(client, shop):
    preference_fit_full()
    first = _shown(client.get("/").content.decode())
    second = _shown(client.get("/").content.decode())
    assert len(first) == 6 and second == first
    assert Decision.objects.count() == 6  # repeated views reuse the page's decisions


def test_the_same_images_when_the_cache_forgot_them(client, shop):
    first = _shown(client.get("/").content.decode())
    cache.clear()  # evicted, or a cache that was away: the decision log still knows
    assert _shown(client.get("/").content.decode()) == first
    assert Decision.objects.count() == 6


def test_every_channel_shows_the_assigned_image(client, shop):
    preference_fit_full()
    catalogue = _shown(client.get("/").content.decode())
    product = shop["products"][0]
    page = _shown(client.get(product.get_absolute_url()).content.decode())
    assert page[str(product.pk)] == catalogue[str(product.pk)]
    listing = client.get("/api/v1/products/").json()["results"]
    for item in listing:  # the app's API, for the same (session) shopper
        style, decision = catalogue[str(item["id"])]
        assert item["personalized"]["style"] == style
        assert str(item["personalized"]["decision"]) == decision


def test_a_new_model_version_draws_again(client, shop):
    preference_fit_full()
    client.get("/")
    preference_fit_full()
    client.get("/")
    epochs = set(Decision.objects.values_list("assignment", flat=True))
    assert Decision.objects.count() == 12 and len(epochs) == 2


@override_settings(STYLEREC={"PRODUCT_MODEL": "storefront.Product", "REDRAW_INTERVAL": 1})
def test_the_redraw_interval_draws_again(client, shop):
    client.get("/")
    time.sleep(1.05)
    client.get("/")
    assert Decision.objects.count() == 12


def test_epochs_follow_the_interval():
    with override_settings(STYLEREC={"REDRAW_INTERVAL": 3600}):
        assert assignment_epoch("v1", now=7200.0) == assignment_epoch("v1", now=10799.0)
        assert assignment_epoch("v1", now=10800.0) != assignment_epoch("v1", now=10799.0)
        assert assignment_epoch("v2", now=7200.0) != assignment_epoch("v1", now=7200.0)
    with override_settings(STYLEREC={"REDRAW_INTERVAL": 0}):
        assert assignment_epoch("v1", now=0.0) == assignment_epoch("v1", now=1e9)


def test_an_image_no_longer_ready_is_drawn_again(client, shop):
    first = _shown(client.get("/").content.decode())
    styled = {p: s for p, (s, _) in first.items() if s != "original"}
    assert styled, "six products over four arms: some show a style"
    for style in set(styled.values()):
        _unready(style)
    second = _shown(client.get("/").content.decode())
    for product_id, style in styled.items():
        assert second[product_id][0] != style  # never a rendition that is gone
    for product_id, shown in first.items():
        if product_id not in styled:
            assert second[product_id] == shown


def test_the_draw_is_replayed_from_the_log(client, shop):
    preference_fit_full()
    client.get("/")
    for decision in Decision.objects.all():
        uniform = assignment_uniform(decision.shopper_id, decision.product_id, decision.assignment)
        replayed = drawn_arm(decision.probabilities, uniform)
        assert decision.candidates[replayed] == decision.chosen
        share = decision.probabilities[replayed] / sum(decision.probabilities)
        assert decision.propensity == pytest.approx(share, rel=1e-12)


def test_the_salt_changes_every_draw():
    with override_settings(STYLEREC={"ASSIGNMENT_SALT": "one"}):
        one = [assignment_uniform(7, str(p), "v.1") for p in range(50)]
    with override_settings(STYLEREC={"ASSIGNMENT_SALT": "two"}):
        two = [assignment_uniform(7, str(p), "v.1") for p in range(50)]
    assert all(0 <= u < 1 for u in one + two)
    assert sum(a != b for a, b in zip(one, two, strict=True)) == 50


def test_a_followed_link_shows_the_clicked_image(client, shop):
    product = shop["products"][0]
    client.get("/")
    shopper = Shopper.objects.get()
    assigned = Decision.objects.get(product_id=str(product.pk))
    # A link from an earlier epoch's page, with another image than today's assignment.
    other = next(s for s in ("ink", "sun", "sea") if s != assigned.chosen)
    clicked = Decision.objects.create(
        shopper=shopper,
        product_id=str(product.pk),
        candidates=["original", other],
        probabilities=[0.5, 0.5],
        chosen=other,
        propensity=0.5,
        model_version="older",
        policy="uniform",
        assignment="older.0",
    )
    html = client.get(f"{product.get_absolute_url()}?sr={clicked.pk}").content.decode()
    assert _shown(html)[str(product.pk)] == (other, str(clicked.pk))
    kinds = set(Event.objects.filter(decision=clicked).values_list("kind", flat=True))
    assert kinds == {"impression", "click"}  # clicking the image is having seen it
    # Once that rendition is gone, the page shows what it can: the current assignment.
    _unready(other)
    html = client.get(f"{product.get_absolute_url()}?sr={clicked.pk}").content.decode()
    assert _shown(html)[str(product.pk)][1] != str(clicked.pk)


def test_repeated_views_keep_inverse_propensity_estimates_unbiased():
    """One decision per assignment, rewarded with what the shopper did over all its views:
    IPS of each single-arm policy matches that arm's true value within its interval."""
    rng = np.random.default_rng(3)
    n, arms = 20_000, 3
    logging_policy = np.array([0.5, 0.3, 0.2])
    click = np.array([0.05, 0.10, 0.02])  # per view
    views = rng.integers(1, 6, size=n)  # each assignment is seen one to five times
    with override_settings(STYLEREC={"ASSIGNMENT_SALT": "ips"}):
        chosen = np.array(
            [drawn_arm(logging_policy, assignment_uniform(s, "p", "v.0")) for s in range(n)]
        )
    # Any click over the assignment's views: the reward the fit joins to its decision.
    reward = (rng.random(n) > (1 - click[chosen]) ** views).astype(float)
    logs = LoggedDecisions(
        shopper=np.arange(n),
        candidate_mask=np.ones((n, arms), dtype=bool),
        chosen=chosen,
        propensity=logging_policy[chosen],
        reward=reward,
    )
    assert np.bincount(chosen, minlength=arms) / n == pytest.approx(logging_policy, abs=0.015)
    for arm in range(arms):
        truth = np.mean(1 - (1 - click[arm]) ** views)
        estimate = ips(logs, single_arm_probabilities(logs.candidate_mask, arm))
        assert estimate.low <= truth <= estimate.high, (arm, truth, estimate)


def test_choose_images_reuses_assignments_across_calls(shop):
    shopper = Shopper.objects.create()
    products = shop["products"]
    first = choose_images(shopper=shopper, products=products)
    again = choose_images(shopper=shopper, products=list(reversed(products)))
    assert {pk: (s.style, s.decision_id) for pk, s in first.items()} == {
        pk: (s.style, s.decision_id) for pk, s in again.items()
    }


class _Browser:
    """A shopper's client over real HTTP that reads only the markup, as a crawler would."""

    def __init__(self, base: str):
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def get(self, path: str) -> str:
        with self.opener.open(self.base + path, timeout=30) as response:
            return response.read().decode()

    def post_json(self, path: str, body: dict) -> int:
        request = urllib.request.Request(
            self.base + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with self.opener.open(request, timeout=30) as response:
            return response.status


LINKED_IMAGE = re.compile(r'<a href="([^"]*)" class="card-link">\s*<div class="card-image"><img ')


def test_over_http_reloads_keep_images_and_links_keep_the_clicked_image(
    live_server, shop_committed
):
    browser = _Browser(live_server.url)
    category = shop_committed["products"][0].category
    first_html = browser.get(category.get_absolute_url())
    first = _shown(first_html)
    second = _shown(browser.get(category.get_absolute_url()))
    same = sum(second.get(product) == shown for product, shown in first.items())
    assert len(first) == 6 and same / len(first) >= 0.95
    links = LINKED_IMAGE.findall(first_html)
    assert len(links) == 6
    for link, image in zip(links, images(first_html), strict=True):
        page = _shown(browser.get(link))
        assert page[image["data-product"]] == (image["data-style"], image["data-decision"])
        # Ids exactly as the markup gives them: strings.
        event = {"type": "add_to_cart", "decision": image["data-decision"]}
        status = browser.post_json(
            "/api/v1/events/", {"events": [{**event, "product": image["data-product"]}]}
        )
        assert status == 202
    assert Event.objects.filter(kind="click").count() == 6
    assert Event.objects.filter(kind="add_to_cart").count() == 6


def test_a_page_seen_before_runs_no_query_and_new_products_skip_the_log(shop):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    preference_fit_full()
    shopper = Shopper.objects.create()
    products = shop["products"]
    first = choose_images(shopper=shopper, products=products[:3])
    with CaptureQueriesContext(connection) as queries:
        again = choose_images(shopper=shopper, products=products[:3])
    assert queries.captured_queries == [] and again == first
    with CaptureQueriesContext(connection) as queries:
        choose_images(shopper=shopper, products=products[3:])
    # The cache holds every assignment of this epoch: new products are drawn without looking
    # for old decisions (the only statements are the new decisions' INSERT).
    looked = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT")]
    assert not [sql for sql in looked if "stylerec_decision" in sql], looked


def test_signing_in_to_an_account_seen_before_keeps_the_sessions_images(
    client, shop, django_user_model
):
    user = django_user_model.objects.create_user("ann", password="pw-123456789")
    account = Shopper.objects.create(user=user)
    choose_images(shopper=account, products=shop["products"][:2])  # the account's own history
    before = _shown(client.get("/").content.decode())  # an anonymous session, all six
    client.login(username="ann", password="pw-123456789")
    after = _shown(client.get("/").content.decode())
    assert {p: after[p] for p in before if p not in _account_products(shop)} == {
        p: before[p] for p in before if p not in _account_products(shop)
    }


def _account_products(shop) -> set:
    return {str(p.pk) for p in shop["products"][:2]}


def test_a_new_shoppers_first_page_looks_up_no_history(client, shop):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    preference_fit_full()
    with CaptureQueriesContext(connection) as queries:
        first = _shown(client.get("/").content.decode())
    looked = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT")]
    assert not [sql for sql in looked if "stylerec_decision" in sql or "profile" in sql], looked
    cache.delete_many(
        [k for k in cache.keys("stylerec:assign:*")] if hasattr(cache, "keys") else []
    )
    assert _shown(client.get("/").content.decode()) == first
