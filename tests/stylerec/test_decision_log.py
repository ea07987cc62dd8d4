"""The decision log: a page's decisions written while it renders, committed before it leaves."""

import logging

import numpy as np
import pytest
from django.core.cache import cache
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from stylerec.fitting import preference_fit_full
from stylerec.models import Decision, Shopper
from stylerec.serving import chooser, decision_log
from stylerec.serving.decision_log import DecisionRow, log_decisions

from .helpers import images

pytestmark = pytest.mark.django_db(transaction=True)
postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the background log is PostgreSQL's"
)


def columns(decisions) -> list[tuple]:
    return [
        (
            d.shopper_id,
            d.product_id,
            d.candidates,
            d.probabilities,
            d.chosen,
            d.propensity,
            d.model_version,
            d.policy,
            d.context,
        )
        for d in decisions
    ]


def rows(count: int = 3) -> list[DecisionRow]:
    return [
        DecisionRow(str(n), ["original", "sun"], [0.4, 0.6], "sun", 0.6, {"device": "mobile"})
        for n in range(count)
    ]


def log_page(shopper_id: int, model_version: str = "v") -> list[int]:
    return log_decisions(shopper_id, rows(), model_version=model_version, policy="uniform")


def log_backend() -> int:
    """The PostgreSQL backend serving this thread's decision log."""
    return writers()[connection.alias].connection.info.backend_pid


def writers() -> dict:
    return decision_log._state.writers


@postgresql_only
def test_the_background_log_writes_what_the_inline_log_writes(shop_committed, monkeypatch):
    """In a request, PostgreSQL gets the rows on the log's own connection and Django's
    connection sends no INSERT; in a transaction the ORM writes them. Same decisions."""
    products = shop_committed["products"]
    preference_fit_full()  # Thompson's probabilities: floats that need rounding
    shopper = Shopper.objects.create()

    def logged(background: bool):
        monkeypatch.setattr(chooser, "_rng", np.random.default_rng(5))
        before = set(Decision.objects.values_list("pk", flat=True))
        context = {"device": "mobile"}
        if background:
            with CaptureQueriesContext(connection) as queries, decision_log.deferred():
                shown = chooser.choose_images(shopper=shopper, products=products, context=context)
            assert not [q for q in queries.captured_queries if "INSERT" in q["sql"]]
        else:
            with transaction.atomic():
                shown = chooser.choose_images(shopper=shopper, products=products, context=context)
        logged = list(Decision.objects.exclude(pk__in=before).order_by("created_at", "pk"))
        assert [d.pk for d in logged] == [shown[p.pk].decision_id for p in products]
        assert [d.chosen for d in logged] == [shown[p.pk].style for p in products]
        return columns(logged)

    background = logged(background=True)
    # The same draw again (same shopper, epoch and uniforms), once the first is forgotten.
    Decision.objects.filter(shopper=shopper).delete()
    cache.clear()
    inline = logged(background=False)
    assert background == inline
    assert background[0][8] == {"device": "mobile", "category": "Cups"}
    assert {row[4] for row in background} - {"original"}, "some styles were chosen"


def test_a_page_decisions_are_in_the_table_when_the_page_arrives(client, shop_committed):
    """The middleware waits for the background write before the response leaves: every id in
    the markup is a committed row of this shopper, for a beacon to refer to at once."""
    for _ in range(3):
        shown = images(client.get("/").content.decode())
        ids = [int(image["data-decision"]) for image in shown]
        assert len(ids) == 6
        found = Decision.objects.filter(pk__in=ids)
        assert found.count() == 6
        assert {str(d.product_id) for d in found} == {image["data-product"] for image in shown}
        assert len({d.shopper_id for d in found}) == 1


@postgresql_only
def test_ids_come_from_the_table_sequence_in_blocks(shop_committed):
    """Taken a block at a time by each connection, so concurrent pages never share an id and
    the ORM's own inserts never collide with the log's."""
    shopper = Shopper.objects.create()
    with decision_log.deferred():
        first = log_page(shopper.pk)
    with transaction.atomic():  # the ORM's insert, between two background ones
        orm = log_page(shopper.pk)
    with decision_log.deferred():
        second = log_page(shopper.pk)
    assert second == [first[-1] + 1, first[-1] + 2, first[-1] + 3]
    assert min(orm) > first[-1] + decision_log.ID_BLOCK - 3
    assert Decision.objects.filter(shopper=shopper).count() == 9


@postgresql_only
def test_the_background_insert_is_prepared_once(shop_committed):
    """Parsing and planning were a third of the INSERT's time (settings:
    DATABASE_PREPARED_STATEMENTS); behind a pooler that cannot hold prepared statements
    Django's prepare_threshold is None and the statement is sent whole each time."""
    shopper = Shopper.objects.create()
    for _ in range(4):
        with decision_log.deferred():
            log_page(shopper.pk)
    writer = writers()[connection.alias]
    statements = writer.connection.execute("SELECT statement FROM pg_prepared_statements")
    assert len([s for (s,) in statements if "jsonb_to_recordset" in s]) == 1
    assert Decision.objects.filter(shopper=shopper).count() == 12


@postgresql_only
def test_a_lost_log_connection_costs_no_decision(shop_committed, caplog):
    """The log's connection killed (a database restart, a proxy timeout): the rows are written
    through Django's connection with the ids the page already shows, and the next page opens
    a new log connection."""
    shopper = Shopper.objects.create()
    with decision_log.deferred():
        log_page(shopper.pk)
    backend = log_backend()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s, 5000)", [backend])
    caplog.set_level(logging.WARNING, logger="stylerec.serving.decision_log")
    with decision_log.deferred():
        ids = log_page(shopper.pk)
    assert "writing inline" in caplog.text
    assert sorted(Decision.objects.filter(pk__in=ids).values_list("pk", flat=True)) == ids
    with decision_log.deferred():
        again = log_page(shopper.pk)
    assert log_backend() != backend
    assert Decision.objects.filter(pk__in=again).count() == 3
    assert Decision.objects.filter(shopper=shopper).count() == 9


@postgresql_only
def test_decisions_of_a_shopper_forgotten_meanwhile_are_dropped_and_logged(shop_committed, caplog):
    """The database refuses rows whose shopper is gone: an error in the log, never an error
    page, and the log's next page is written as usual."""
    gone = Shopper.objects.create()
    gone_id = gone.pk
    gone.delete()
    caplog.set_level(logging.WARNING, logger="stylerec.serving.decision_log")
    with decision_log.deferred():
        ids = log_page(gone_id)
    assert "Lost 3 decisions" in caplog.text
    assert not Decision.objects.filter(pk__in=ids).exists()
    shopper = Shopper.objects.create()
    with decision_log.deferred():
        ids = log_page(shopper.pk)
    assert Decision.objects.filter(pk__in=ids, shopper=shopper).count() == 3


@postgresql_only
def test_the_log_connection_lives_as_long_as_django_connections(
    client, shop_committed, monkeypatch
):
    """CONN_MAX_AGE = 0 closes Django's connections after each request; the log's too."""
    client.get("/")
    assert connection.alias in writers()  # the default settings keep it (60 s)
    decision_log.close()
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 0)
    response = client.get("/")
    assert len(images(response.content.decode())) == 6
    assert writers() == {}


def test_outside_a_request_decisions_are_written_at_once(shop_committed):
    """Commands, tasks and shops without the middleware: the rows exist when the call returns."""
    shopper = Shopper.objects.create()
    ids = log_page(shopper.pk)
    assert Decision.objects.filter(pk__in=ids).count() == 3
    assert writers() == {}


@postgresql_only
def test_leaving_a_request_waits_until_the_rows_are_committed(shop_committed):
    """A lock holds the background INSERT back; the request's end waits for it rather than
    let a page out with ids that are not in the table yet."""
    import threading
    import time

    import psycopg

    shopper = Shopper.objects.create()
    with decision_log.deferred():  # the log's connection opened, its statement prepared
        log_page(shopper.pk)
    params = connection.get_connection_params()
    with psycopg.connect(**params) as other:
        other.execute("LOCK TABLE stylerec_decision IN SHARE MODE")  # inserts must wait
        threading.Timer(0.5, other.commit).start()
        started = time.monotonic()
        with decision_log.deferred():
            ids = log_page(shopper.pk)
            assert time.monotonic() - started < 0.4, "the page itself does not wait"
        assert time.monotonic() - started >= 0.45
    assert Decision.objects.filter(pk__in=ids).count() == 3


@postgresql_only
def test_a_forked_worker_opens_its_own_log_connection(shop_committed):
    """gunicorn --preload and Celery fork after start-up: a child must neither write on the
    parent's connection nor close it."""
    import os

    shopper = Shopper.objects.create()
    with decision_log.deferred():
        log_page(shopper.pk, "parent")
    parent_backend = log_backend()
    child = os.fork()
    if child == 0:  # the child: log a page, report through the exit status only
        status = 1
        try:
            with decision_log.deferred():
                log_page(shopper.pk, "child")
            child_backend = log_backend()
            status = 0 if child_backend != parent_backend else 2
        finally:
            os._exit(status)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with decision_log.deferred():  # the parent's connection still works
        log_page(shopper.pk, "parent")
    assert log_backend() == parent_backend
    versions = Decision.objects.filter(shopper=shopper).values_list("model_version", flat=True)
    assert sorted(versions) == ["child"] * 3 + ["parent"] * 6
