"""The personalization loop in the shop: decisions, events, fitting, shoppers' data."""

import re
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from stylerec.fitting import preference_fit_full
from stylerec.loop_settings import loop_settings_changed
from stylerec.models import Decision, Event, LoopSettings, Shopper, ShopperProfile
from stylerec.serving import state
from stylerec.serving.chooser import choose_images
from stylerec.shoppers import shopper_forget

from .helpers import give_embedding, images, log_uniform_decisions, post_events


def test_catalogue_logs_a_decision_per_image(client, shop):
    response = client.get("/")
    assert response.status_code == 200
    shown = images(response.content.decode())
    assert len(shown) == 6
    shopper = Shopper.objects.get()
    decisions = {d.pk: d for d in Decision.objects.filter(shopper=shopper)}
    assert len(decisions) == 6
    for image in shown:
        decision = decisions[int(image["data-decision"])]
        assert decision.product_id == image["data-product"]
        assert decision.chosen == image["data-style"]
        assert set(decision.candidates) == {"original", "ink", "sun", "sea"}
        assert sum(decision.probabilities) == pytest.approx(1.0, abs=1e-4)
        chosen = decision.candidates.index(decision.chosen)
        assert decision.propensity == pytest.approx(decision.probabilities[chosen], abs=1e-5)
        if image["data-style"] != "original":
            assert "/renditions/" in image["src"]
        assert client.get(image["src"]).status_code == 200


def test_candidates_are_only_ready_renditions(client, shop):
    from styletransfer.models import Rendition

    Rendition.objects.filter(style__slug="sea").update(status="pending")
    client.get("/")
    for decision in Decision.objects.all():
        assert "sea" not in decision.candidates
        assert decision.chosen != "sea"


def test_probabilities_match_the_sampling(shop):
    preference_fit_full()
    product = shop["products"][0]
    counts = {}
    # One draw per shopper and product (repeated views reuse it): 600 shoppers, one draw each.
    for shopper in Shopper.objects.bulk_create([Shopper() for _ in range(600)]):
        shown = choose_images(shopper=shopper, products=[product])[product.pk]
        counts[shown.style] = counts.get(shown.style, 0) + 1
    # Thompson's probabilities are Monte-Carlo estimates that vary a little per call: compare
    # the draws with the mean logged probability of each arm.
    logged = list(Decision.objects.all())
    assert len(logged) == 600
    arms = logged[0].candidates
    mean = np.mean([d.probabilities for d in logged], axis=0)
    for arm, probability in zip(arms, mean, strict=True):
        observed = counts.get(arm, 0) / 600
        assert (
            abs(observed - probability) < 4 * np.sqrt(probability * (1 - probability) / 600) + 0.01
        )


def test_events_round_trip_and_retries_do_not_double_count(client, shop):
    client.get("/")
    decision = Decision.objects.first()
    batch = [
        {
            "type": "impression",
            "decision": decision.pk,
            "product": decision.product_id,
            "ts": timezone.now().isoformat(),
        },
        {
            "type": "click",
            "decision": decision.pk,
            "product": decision.product_id,
            "ts": timezone.now().isoformat(),
        },
    ]
    first = post_events(client, batch)
    assert first.status_code == 202, first.content
    assert first.json() == {"stored": 2, "duplicates": 0}
    again = post_events(client, batch)
    assert again.json() == {"stored": 0, "duplicates": 2}
    assert Event.objects.count() == 2
    click = Event.objects.get(kind="click")
    assert click.style_slug == decision.chosen and click.decision_id == decision.pk


@pytest.mark.parametrize(
    "events, field",
    [
        ([{"type": "click", "decision": 999999, "product": "1"}], "decision"),
        ([{"type": "wink", "decision": 1, "product": "1"}], "type"),
        ([{"type": "click", "product": "1", "ts": "yesterday"}], "ts"),
        ([{"decision": 1}], "type"),
    ],
)
def test_bad_events_get_field_errors_and_nothing_is_written(client, shop, events, field):
    client.get("/")
    good = Decision.objects.first()
    batch = [{"type": "impression", "decision": good.pk, "product": good.product_id}, *events]
    response = post_events(client, batch)
    assert response.status_code == 400
    assert field in str(response.json()["events"][1])
    assert Event.objects.count() == 0, "nothing half-written"


def test_malformed_and_oversized_batches(client, shop):
    assert (
        client.post("/api/v1/events/", "{not json", content_type="application/json").status_code
        == 400
    )
    assert post_events(client, []).status_code == 400
    assert (
        client.post("/api/v1/events/", {"events": "x"}, content_type="application/json").status_code
        == 400
    )
    huge = [{"type": "impression", "decision": 1, "product": "1"}] * 501
    response = post_events(client, huge)
    assert response.status_code == 400 and "500" in str(response.json())


def test_a_shopper_cannot_use_another_shoppers_decisions(client, shop, django_user_model):
    from django.test import Client

    other = Client()
    other.get("/")
    theirs = Decision.objects.first()
    client.get("/")
    response = post_events(
        client, [{"type": "click", "decision": theirs.pk, "product": theirs.product_id}]
    )
    assert response.status_code == 400
    assert Event.objects.count() == 0


def test_click_through_is_recorded_without_javascript(client, shop):
    response = client.get("/")
    link = re.search(r'href="(/p/[^"]+\?sr=(\d+))"', response.content.decode())
    assert link, "product links carry their decision"
    assert client.get(link.group(1)).status_code == 200
    click = Event.objects.get(kind="click")
    assert click.decision_id == int(link.group(2)) and click.source == "server"


def test_fit_moves_a_shopper_towards_what_they_click(shop):
    preference_fit_full()
    model = state.current_model()
    fan = Shopper.objects.create()
    arms = state.arm_table(model, list(shop["styles"]))
    before = state.shopper_preference(model, fan.pk).scores(arms)
    log_uniform_decisions(fan, shop["products"][0], clicked="sun")
    preference_fit_full()
    model = state.current_model()
    after = state.shopper_preference(model, fan.pk).scores(state.arm_table(model, shop["styles"]))
    sun = 2  # arms: original, ink, sun, sea
    assert after[sun] == max(after), "the clicked style scores highest"
    assert after[sun] - np.mean(after) > before[sun] - np.mean(before)
    assert ShopperProfile.objects.filter(shopper=fan, model_version=model.version).exists()


def test_a_new_shopper_gets_the_population_preference(shop):
    preference_fit_full()
    model = state.current_model()
    newcomer = Shopper.objects.create()
    preference = state.shopper_preference(model, newcomer.pk)
    assert np.allclose(preference.mean, model.population.mean)


def test_a_new_style_is_scored_before_any_click(shop):
    from tests.styletransfer.helpers import make_style

    preference_fit_full()
    late = make_style("late", engine="color", active=True, seed=7)
    give_embedding(late, 7)
    from styletransfer import rendering, services

    product = shop["products"][0]
    source = services.source_images_of([product])[product.pk]
    rendering.rendition_render(
        rendition_id=services.rendition_request(source=source, style=late).pk
    )
    shopper = Shopper.objects.create()
    choose_images(shopper=shopper, products=[product])
    decision = Decision.objects.get(shopper=shopper)
    assert "late" in decision.candidates
    assert decision.probabilities[decision.candidates.index("late")] > 0


def test_switching_personalization_off_shows_originals(client, shop):
    LoopSettings.objects.create(personalization_enabled=False)
    loop_settings_changed()
    shown = images(client.get("/").content.decode())
    assert {image["data-style"] for image in shown} == {"original"}
    assert Decision.objects.count() == 0


def test_a_shopper_can_ask_for_original_photos(client, shop):
    client.get("/")
    client.post("/stylerec/originals/", {"on": "1", "next": "/"})
    shown = images(client.get("/").content.decode())
    assert {image["data-style"] for image in shown} == {"original"}
    client.post("/stylerec/originals/", {"on": "0", "next": "/"})
    assert Shopper.objects.get().originals_only is False


def test_anonymous_history_is_merged_into_the_account_on_login(client, shop, django_user_model):
    before = images(client.get("/").content.decode())
    anonymous = Shopper.objects.get()
    django_user_model.objects.create_user("ann", password="pw-123456789")
    client.post("/admin/login/", {"username": "ann", "password": "pw-123456789"})
    client.login(username="ann", password="pw-123456789")
    after = images(client.get("/").content.decode())
    account = Shopper.objects.get(user__username="ann")
    assert not Shopper.objects.filter(pk=anonymous.pk).exists()
    # The session's decisions are the account's now, and its images stay as they were.
    assert Decision.objects.filter(shopper=account).count() == 6
    assert after == before


def test_forgetting_a_shopper_deletes_their_data(client, shop):
    client.get("/")
    shopper = Shopper.objects.get()
    decision = Decision.objects.first()
    post_events(
        client, [{"type": "click", "decision": decision.pk, "product": decision.product_id}]
    )
    preference_fit_full()
    assert ShopperProfile.objects.filter(shopper=shopper).exists()
    counts = shopper_forget(shopper=shopper)
    assert counts["events"] == 1 and counts["decisions"] == 6 and counts["profiles"] == 1
    assert not Decision.objects.exists() and not Event.objects.exists()


def test_rewards_outside_the_window_do_not_count(shop, settings):
    from stylerec.fitting import Arms, load_logs

    shopper = Shopper.objects.create()
    old = Decision.objects.create(
        shopper=shopper,
        product_id="1",
        candidates=["original"],
        probabilities=[1.0],
        chosen="original",
        propensity=1.0,
        model_version="t",
        policy="uniform",
    )
    Event.objects.create(
        shopper=shopper, kind="impression", decision=old, product_id="1", occurred_at=timezone.now()
    )
    Event.objects.create(
        shopper=shopper,
        kind="click",
        decision=old,
        product_id="1",
        occurred_at=timezone.now() + timedelta(days=2),
    )
    logs = load_logs(Arms(["original"], np.ones((1, 2))), since=timezone.now() - timedelta(days=1))
    assert logs["reward"].tolist() == [0.0]


def test_only_decisions_that_say_something_about_taste_are_fitted(shop):
    from stylerec.fitting import Arms, load_logs

    def decision(shopper, *kinds):
        made = Decision.objects.create(
            shopper=shopper,
            product_id="1",
            candidates=["original"],
            probabilities=[1.0],
            chosen="original",
            propensity=1.0,
            model_version="t",
            policy="uniform",
        )
        for kind in kinds:
            Event.objects.create(
                shopper=shopper,
                kind=kind,
                decision=made,
                product_id="1",
                occurred_at=made.created_at,
            )
        return made.pk

    beacon, no_js, crawler = (Shopper.objects.create() for _ in range(3))
    decision(crawler)  # no event of any kind: says nothing about styles
    seen_clicked = decision(beacon, "impression", "click")
    seen = decision(beacon, "impression")
    decision(beacon)  # below the fold: the beacon never reported it
    clicked_unreported = decision(beacon, "click")
    shown_clicked, shown = decision(no_js, "click"), decision(no_js)

    logs = load_logs(Arms(["original"], np.ones((1, 2))), since=timezone.now() - timedelta(days=1))
    kept = dict(zip(logs["id"].tolist(), logs["reward"].tolist(), strict=True))
    assert kept == {
        seen_clicked: 1.0,
        seen: 0.0,
        clicked_unreported: 1.0,
        shown_clicked: 1.0,  # a client without impressions: every image shown counts
        shown: 0.0,
    }


def test_incremental_update_refits_recently_active_shoppers(client, shop):
    from stylerec.fitting import preference_update_recent

    client.get("/")
    preference_fit_full()
    model = state.current_model()
    shopper = Shopper.objects.get()
    # page views alone say nothing about taste: the shopper starts from the population
    assert not ShopperProfile.objects.filter(shopper=shopper).exists()
    for decision in Decision.objects.filter(shopper=shopper):
        post_events(
            client, [{"type": "click", "decision": decision.pk, "product": decision.product_id}]
        )
    assert preference_update_recent(minutes=5) == 1
    profile = ShopperProfile.objects.get(shopper=shopper)
    assert profile.model_version == model.version
    assert bytes(profile.preference) != model.population.to_bytes()
    assert state.current_model().version == model.version, "the population is kept"


def test_events_recorded_inside_a_callers_transaction_keep_its_commit_durable(shop):
    from django.db import connection, transaction

    from stylerec.events import events_ingest

    shopper = Shopper.objects.create()
    with transaction.atomic():  # e.g. a checkout recording the purchase
        events_ingest(shopper=shopper, events=[{"kind": "purchase", "product_id": "1"}])
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            assert cursor.fetchone()[0] == "on"
    assert Event.objects.filter(shopper=shopper, kind="purchase").count() == 1
