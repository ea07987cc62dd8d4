"""The full refit streams the log: same statistics as the rows it read before, on real
PostgreSQL; decisions count in their context, and the chooser serves each context its style."""

import random
from datetime import timedelta
from decimal import Decimal

import numpy as np
import psycopg
import pytest
from django.utils import timezone

from stylerec.fitting import Arms, load_logs, preference_fit_full, preference_update_recent
from stylerec.fitting import logs as fit_logs
from stylerec.fitting.read_ahead import read_ahead
from stylerec.ml.preferences import ContextPopulation, ContextualPreference
from stylerec.models import Decision, Event, PreferenceModel, Shopper, ShopperProfile
from stylerec.serving import state
from stylerec.serving.chooser import choose_images

from .helpers import STYLE_SLUGS, add_category, make_shop

pytestmark = pytest.mark.django_db
ARMS = ["original", *STYLE_SLUGS]


def _decision(shopper, chosen, context, *kinds, late=False):
    made = Decision.objects.create(
        shopper=shopper,
        product_id="1",
        candidates=ARMS,
        probabilities=[0.25] * 4,
        chosen=chosen,
        propensity=0.25,
        model_version="t",
        policy="uniform",
        context=context,
    )
    for second, kind in enumerate(kinds):  # a repeated kind counts once
        Event.objects.create(
            shopper=shopper,
            kind=kind,
            decision=made,
            product_id="1",
            occurred_at=made.created_at + timedelta(days=2 if late else 0, seconds=second),
        )
    return made


@pytest.fixture
def mixed_logs(shop):
    return _mixed_logs()


def _mixed_logs():
    """Beacon, no-JS and crawler shoppers; rewards in and out of the window; arms no longer
    known; contexts modelled, pooled and missing."""
    rng = random.Random(4)
    hoodies, drinks = {"category": "Hoodies", "device": "mobile"}, {"category": "Drinks"}
    crawler, beacon, no_js = (Shopper.objects.create() for _ in range(3))  # the first is dropped
    for _ in range(40):
        arm = rng.choice(ARMS + ["retired-style"])
        context = rng.choice([hoodies, drinks, {}, {"category": "Rare", "device": "tablet"}])
        _decision(crawler, arm, context)
        _decision(beacon, arm, context, *rng.choice([[], ["impression"], ["impression", "click"]]))
        _decision(beacon, arm, context, "click", "add_to_cart", "click")
        _decision(no_js, arm, context, *rng.choice([[], ["click"], ["purchase"]]))
        _decision(no_js, arm, context, "click", late=True)
    return ["Hoodies|mobile", "Drinks|"]


def _since():
    return timezone.now() - timedelta(days=1)


def test_streamed_statistics_are_the_rows_the_fit_read_before(mixed_logs):
    keys = mixed_logs
    streamed = fit_logs.stream_statistics(ARMS, keys, since=_since())
    rows = load_logs(Arms(ARMS, np.eye(4)), since=_since())
    shoppers, row = np.unique(rows["shopper"], return_inverse=True)
    count = np.zeros((shoppers.size, len(ARMS)))
    reward = np.zeros((shoppers.size, len(ARMS)))
    np.add.at(count, (row, rows["arm"]), 1)
    np.add.at(reward, (row, rows["arm"]), rows["reward"])
    np.testing.assert_array_equal(streamed.shoppers, shoppers)
    np.testing.assert_allclose(streamed.count.sum(axis=1), count)
    np.testing.assert_allclose(streamed.reward.sum(axis=1), reward)
    assert streamed.count.shape[1] == len(keys) + 1
    assert streamed.count[:, 0].sum() > 0 and streamed.count[:, 2].sum() > 0  # modelled, pooled


def test_postgresql_and_orm_readers_add_up_the_same(mixed_logs):
    keys = mixed_logs
    via_copy = fit_logs.stream_statistics(ARMS, keys, since=_since())
    decisions = fit_logs._decisions(_since())
    accumulator = fit_logs._Accumulator(len(keys) + 1, len(ARMS))
    fit_logs._orm_into(accumulator, decisions, ARMS, keys)
    via_orm = accumulator.statistics()
    np.testing.assert_array_equal(via_copy.shoppers, via_orm.shoppers)
    for name in ("count", "reward", "reward_sq"):
        np.testing.assert_allclose(getattr(via_copy, name), getattr(via_orm, name))


def test_the_log_is_read_bucket_by_bucket(mixed_logs, monkeypatch):
    whole = fit_logs.stream_statistics(ARMS, mixed_logs, since=_since())
    monkeypatch.setattr(fit_logs, "BUCKET_BITS", 2)  # four decision ids a bucket
    buckets = []
    add = fit_logs._Accumulator.add
    monkeypatch.setattr(
        fit_logs._Accumulator, "add", lambda self, *a: (buckets.append(a[0].size), add(self, *a))
    )
    pieces = fit_logs.stream_statistics(ARMS, mixed_logs, since=_since())
    assert len(buckets) > 40 and max(buckets) <= 4
    for name in ("count", "reward", "reward_sq"):
        np.testing.assert_array_equal(getattr(whole, name), getattr(pieces, name))


def test_a_fit_in_context_serves_each_category_the_style_clicked_there(shop):
    """Crowd and shopper click "sun" on hoodies and the original on cups; the fit learns
    both and the chooser, given each product's category, follows."""
    hoodies = add_category(shop, "Hoodies", 3)
    cups = shop["products"]
    rng = np.random.default_rng(0)
    people = [Shopper.objects.create() for _ in range(30)]
    for shopper in people:
        for _ in range(24):
            category = "Hoodies" if rng.random() < 0.5 else "Cups"
            arm = ARMS[rng.integers(len(ARMS))]
            liked = "sun" if category == "Hoodies" else "original"
            click = rng.random() < (0.5 if arm == liked else 0.03)
            context = {"category": category, "device": "desktop"}
            _decision(shopper, arm, context, "impression", *(["click"] if click else []))
    model = preference_fit_full()
    assert set(model.payload["population"]["contexts"]["keys"]) == {
        "Hoodies|desktop",
        "Cups|desktop",
    }
    loaded = state.current_model()
    assert isinstance(loaded.population, ContextPopulation)
    profile = ShopperProfile.objects.get(shopper=people[0])
    assert isinstance(state.shopper_preference(loaded, people[0].pk), ContextualPreference)
    assert profile.model_version == model.version

    newcomer = Shopper.objects.create()
    shown = [
        choose_images(shopper=who, products=hoodies + cups, context={"device": "desktop"})
        for who in [people[0], newcomer]
        for _ in range(5)
    ]
    decisions = Decision.objects.filter(
        pk__in=[s.decision_id for page in shown for s in page.values()]
    )
    hoodie_ids = {str(p.pk) for p in hoodies}
    for decision in decisions:
        best = decision.candidates[int(np.argmax(decision.probabilities))]
        expected = "sun" if decision.product_id in hoodie_ids else "original"
        assert best == expected, (decision.product_id, decision.candidates, decision.probabilities)
        assert decision.context["category"] in ("Hoodies", "Cups")


def test_an_update_refits_recent_shoppers_in_context(shop):
    people = [Shopper.objects.create() for _ in range(20)]
    for shopper in people:
        for index in range(24):
            context = {"category": ["Hoodies", "Cups"][index % 2], "device": "desktop"}
            _decision(shopper, ARMS[index % 4], context, "impression")
    model = preference_fit_full()
    assert "context_model" in model.payload
    late = people[0]
    before = bytes(ShopperProfile.objects.get(shopper=late).preference)
    for _ in range(12):
        _decision(late, "sun", {"category": "Hoodies", "device": "desktop"}, "impression", "click")
    assert preference_update_recent(minutes=5) == 20  # everyone's events are recent here
    after = ShopperProfile.objects.get(shopper=late)
    assert after.model_version == model.version and bytes(after.preference) != before
    preference = state.shopper_preference(state.current_model(), late.pk)
    assert isinstance(preference, ContextualPreference)
    assert PreferenceModel.objects.count() == 1, "an update keeps the population"


def test_valued_rewards_are_read_alike_by_every_reader(mixed_logs, settings):
    rng = random.Random(9)
    for event in Event.objects.filter(kind__in=["add_to_cart", "purchase"]):
        event.value = Decimal(rng.choice(["0", "5", "12.50", "80"]))
        event.save(update_fields=["value"])
    keys = mixed_logs
    plain = fit_logs.stream_statistics(ARMS, keys, since=_since())
    settings.STYLEREC = {**settings.STYLEREC, "REWARD_BY_VALUE": True, "REWARD_VALUE_UNIT": 10}
    streamed = fit_logs.stream_statistics(ARMS, keys, since=_since())
    assert not np.allclose(streamed.reward, plain.reward), "the values weigh the rewards"

    rows = load_logs(Arms(ARMS, np.eye(4)), since=_since())
    shoppers, row = np.unique(rows["shopper"], return_inverse=True)
    reward = np.zeros((shoppers.size, len(ARMS)))
    np.add.at(reward, (row, rows["arm"]), rows["reward"])
    np.testing.assert_allclose(streamed.reward.sum(axis=1), reward)

    decisions = fit_logs._decisions(_since())
    accumulator = fit_logs._Accumulator(len(keys) + 1, len(ARMS))
    fit_logs._orm_into(accumulator, decisions, ARMS, keys)
    via_orm = accumulator.statistics()
    for name in ("count", "reward", "reward_sq"):
        np.testing.assert_allclose(getattr(streamed, name), getattr(via_orm, name))


def test_a_failing_read_is_raised_to_the_fit_and_the_reader_stops():
    def rows():
        yield from range(3)
        raise RuntimeError("connection lost")

    read = []
    with pytest.raises(RuntimeError, match="connection lost"):
        for row in read_ahead([rows()], depth=1):
            read.append(row)
    assert read == [0, 1, 2]
    # A consumer that stops early does not leave the reader blocked on a full queue.
    endless = read_ahead([iter(range(10**9)), iter(range(10**9))], depth=1)
    assert next(endless) == 0
    endless.close()


def test_busiest_contexts_from_a_sample_are_those_counted_in_full(shop, monkeypatch):
    """On a large log the busiest contexts come from a sample of its pages: the same keys as
    counting every decision, where the shares are clear."""
    from django.db import connection

    shopper = Shopper.objects.create()
    # Contexts interleaved, as they arrive over a day: 6 hoodies, 3 drinks, 1 cap in ten.
    categories = ["Hoodies"] * 6 + ["Drinks"] * 3 + ["Caps"]
    Decision.objects.bulk_create(
        Decision(
            shopper=shopper, product_id="1", candidates=ARMS, probabilities=[0.25] * 4,
            chosen="original", propensity=0.25, model_version="t", policy="uniform",
            context={"category": categories[i % 10], "device": "desktop"},
        )
        for i in range(4000)
    )  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Decision._meta.db_table}")
    exact = fit_logs._context_counts(_since())
    monkeypatch.setattr(fit_logs, "MIN_CONTEXT_DECISIONS", 300)
    monkeypatch.setattr(fit_logs, "CONTEXT_SAMPLE", 1000)  # 1000 of 4000: a page sample
    sampled = fit_logs._sampled_context_counts(_since())
    assert sampled is not None and sum(sampled.values()) != sum(exact.values())
    assert fit_logs.context_levels(since=_since()) == [
        "Hoodies|desktop",
        "Drinks|desktop",
        "Caps|desktop",
    ]
    assert exact["Caps|desktop"] == 400
    # A window holding too little of the table for a sample is counted in full.
    assert fit_logs._sampled_context_counts(timezone.now() + timedelta(days=1)) is None
    monkeypatch.setattr(fit_logs, "CONTEXT_SAMPLE", 10**6)
    assert fit_logs._sampled_context_counts(_since()) is None  # too small a table to sample


def test_a_full_fit_caches_no_more_profiles_than_the_cache_keeps(shop, settings):
    """A cache that culls at MAX_ENTRIES would evict the fit's own entries (and list its
    folder on every write): the latest shoppers are cached, as many as half of it holds."""
    from django.core.cache import caches

    from stylerec.conf import conf

    settings.CACHES = {
        **settings.CACHES,
        conf.CACHE_ALIAS: {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "OPTIONS": {"MAX_ENTRIES": 20},
        },
    }
    people = [Shopper.objects.create() for _ in range(30)]
    for shopper in people:
        for index in range(4):
            _decision(shopper, ARMS[index], {"category": "Cups"}, "impression", "click")
    model = preference_fit_full()
    cached = [pk for pk in (p.pk for p in people) if state.cached(state._preference_key(pk))]
    assert len(cached) == 10 and set(cached) == {p.pk for p in people[-10:]}
    assert ShopperProfile.objects.filter(model_version=model.version).count() == 30
    assert caches[conf.CACHE_ALIAS]._max_entries == 20


def test_a_large_log_read_by_two_connections_adds_up_as_read_by_one(transactional_db, monkeypatch):
    """Outside a transaction the log is split between connections, a range of buckets each
    (here buckets of four decision ids): the same statistics as one connection reading all."""
    make_shop()
    keys = _mixed_logs()
    monkeypatch.setattr(fit_logs, "BUCKET_BITS", 2)
    monkeypatch.setattr(fit_logs, "_BUCKETS_PER_READER", 1)
    monkeypatch.setattr(fit_logs, "LOG_READERS", 1)
    alone = fit_logs.stream_statistics(ARMS, keys, since=_since())
    monkeypatch.setattr(fit_logs, "LOG_READERS", 2)
    opened = []
    connect = psycopg.connect
    monkeypatch.setattr(psycopg, "connect", lambda **kw: opened.append(1) or connect(**kw))
    split = fit_logs.stream_statistics(ARMS, keys, since=_since())
    assert len(opened) == 2
    np.testing.assert_array_equal(split.shoppers, alone.shoppers)
    for name in ("count", "reward", "reward_sq"):
        np.testing.assert_allclose(getattr(split, name), getattr(alone, name))
