"""Writing a page's decisions while the page renders, committed before the page leaves.

Inside `deferred()` on PostgreSQL, ids come from the sequence in blocks and the INSERT goes
out on a connection of the thread's own (one more per web worker thread) while the page
renders; `wait()` reads its outcome before the response leaves, and a failed write is
repeated, same ids, through Django's connection. Elsewhere rows are written at once.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import select
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from django.core.signals import request_finished
from django.db import connections, router, transaction
from django.dispatch import receiver
from django.utils import timezone

from ..conf import conf
from ..models import Decision

logger = logging.getLogger(__name__)

ID_BLOCK = 512  # ids taken from the sequence at a time: one round trip per ~20 pages
WAIT_SECONDS = 30
_STATEMENT = b"stylerec_log_decisions"


@dataclass(frozen=True)
class DecisionRow:
    """One product's decision as the page logs it (shopper, model and policy are the page's)."""

    product_id: str
    candidates: list
    probabilities: list
    chosen: str
    propensity: float
    context: dict


@dataclass
class _Page:
    """A page's decisions as sent, kept until the database confirms them."""

    using: str
    shopper_id: int
    ids: list[int]
    rows: list[DecisionRow]
    model_version: str
    policy: str
    assignment: str
    created_at: datetime


class _State(threading.local):
    deferring = False
    writers: dict  # database alias -> _Writer

    def __init__(self):
        self.writers = {}


_state = _State()
_orphans = []  # writers inherited through fork: never closed here, that would end the parent's


def log_decisions(
    shopper_id: int,
    rows: list[DecisionRow],
    *,
    model_version: str,
    policy: str,
    assignment: str = "",
) -> list[int]:
    """Log a page's decisions (drawn in the `assignment` epoch); returns their ids in the order
    of `rows`."""
    page = _Page(
        using=router.db_for_write(Decision),
        shopper_id=shopper_id,
        ids=[],
        rows=rows,
        model_version=model_version,
        policy=policy,
        assignment=assignment,
        created_at=timezone.now(),
    )
    connection = connections[page.using]
    if (
        _state.deferring
        and conf.BACKGROUND_DECISION_LOG
        and connection.vendor == "postgresql"
        and not connection.in_atomic_block
    ):
        wait()  # the previous page's rows, long written by now
        try:
            return _writer(page.using).send(page)
        except Exception:  # the log's own connection failed: write inline, as below
            logger.warning("Decision log connection failed; writing inline", exc_info=True)
            _drop_writer(page.using)
    return _write_inline(page)


@contextmanager
def deferred():
    """Let decisions logged in this block be written in the background; on leaving it, wait
    until they are committed."""
    _state.deferring = True
    try:
        yield
    finally:
        _state.deferring = False
        wait()


def wait() -> None:
    """Block until this thread's decisions sent in the background are committed."""
    for using in list(_state.writers):
        writer = _state.writers[using]
        try:
            writer.wait()
        except Exception:
            logger.warning("Background decision log failed; writing inline", exc_info=True)
            page, writer.page = writer.page, None
            _drop_writer(using)
            if page is not None:
                _write_inline(page)


def close() -> None:
    """Close this thread's log connections (after waiting for what they sent)."""
    wait()
    for using in list(_state.writers):
        _drop_writer(using)


@receiver(request_finished)
def _request_finished(**kwargs) -> None:
    """As Django does with its own connections: close those past CONN_MAX_AGE."""
    wait()
    now = time.monotonic()
    for using, writer in list(_state.writers.items()):
        if writer.close_at is not None and now >= writer.close_at:
            _drop_writer(using)


def _write_inline(page: _Page) -> list[int]:
    decisions = [
        Decision(
            shopper_id=page.shopper_id,
            model_version=page.model_version,
            policy=page.policy,
            assignment=page.assignment,
            created_at=page.created_at,
            **vars(row),
        )
        for row in page.rows
    ]
    for decision, pk in zip(decisions, page.ids, strict=False):
        decision.pk = pk  # rows the page has already shown keep their ids
    connection = connections[page.using]
    outer = connection.in_atomic_block
    try:
        with transaction.atomic(using=page.using):
            if connection.vendor == "postgresql" and not outer:
                # A log: the commit need not wait for the disk (see _insert_sql). Never in a
                # caller's transaction, whose commit must stay durable.
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL synchronous_commit = off")
            Decision.objects.using(page.using).bulk_create(decisions)
    except Exception:
        if not page.ids:
            raise  # nothing shown yet: the caller's page fails as any query would
        logger.exception("Lost %d decisions of shopper %s", len(decisions), page.shopper_id)
    return [decision.pk for decision in decisions]


def _writer(using: str) -> _Writer:
    writer = _state.writers.get(using)
    if writer is not None and writer.pid != os.getpid():
        _orphans.append(_state.writers.pop(using))
        writer = None
    if writer is None:
        writer = _state.writers[using] = _Writer(using)
    return writer


def _drop_writer(using: str) -> None:
    writer = _state.writers.pop(using, None)
    if writer is not None and writer.pid == os.getpid():
        writer.connection.close()


@functools.cache
def _insert_sql(table: str, columns: str) -> bytes:
    # Rows travel as one JSON document; the commit does not wait for the disk (a crash may
    # lose the last fraction of a second of decisions, never corrupt them). set_config is
    # local to the statement's own transaction, so a pooler's next client is unaffected.
    return f"""
WITH async AS MATERIALIZED (SELECT set_config('synchronous_commit', 'off', true))
INSERT INTO {table} ({columns})
SELECT r.id, $1::bigint, r.product_id, r.candidates, r.probabilities, r.chosen, r.propensity,
       $2::text, $3::text, r.context, $4::text, $5::timestamptz
FROM async, jsonb_to_recordset($6::jsonb) AS r(
    id bigint, product_id text, candidates jsonb, probabilities jsonb, chosen text,
    propensity double precision, context jsonb)
""".encode()


_FIELDS = (
    "id",
    "shopper",
    "product_id",
    "candidates",
    "probabilities",
    "chosen",
    "propensity",
    "model_version",
    "policy",
    "context",
    "assignment",
    "created_at",
)


class _Writer:
    """A thread's own connection for the decision log, with at most one page in flight."""

    def __init__(self, using: str):
        import psycopg  # PostgreSQL only: other databases never load it

        django_connection = connections[using]
        params = django_connection.get_connection_params()
        # Prepared only where Django's settings allow it (poolers without support: not).
        self.prepared = params.get("prepare_threshold") is not None
        self.connection = psycopg.connect(**params, autocommit=True)
        self.pid = os.getpid()
        max_age = django_connection.settings_dict["CONN_MAX_AGE"]
        self.close_at = None if max_age is None else time.monotonic() + max_age
        self.page: _Page | None = None
        self.ids: list[int] = []
        quote = django_connection.ops.quote_name
        meta = Decision._meta
        self.sequence = (meta.db_table, meta.pk.column)  # pg_get_serial_sequence's arguments
        self.sql = _insert_sql(
            quote(meta.db_table),
            ", ".join(quote(meta.get_field(name).column) for name in _FIELDS),
        )
        if self.prepared:
            result = self.connection.pgconn.prepare(_STATEMENT, self.sql)
            if result.status != psycopg.pq.ExecStatus.COMMAND_OK:
                raise psycopg.OperationalError(result.error_message.decode(errors="replace"))

    def send(self, page: _Page) -> list[int]:
        assert self.page is None, "wait() for the previous page first"
        page.ids = self._take(len(page.rows))
        rows = [{"id": pk, **vars(row)} for pk, row in zip(page.ids, page.rows, strict=True)]
        params = [
            str(page.shopper_id).encode(),
            page.model_version.encode(),
            page.policy.encode(),
            page.assignment.encode(),
            page.created_at.isoformat().encode(),
            json.dumps(rows).encode(),
        ]
        pgconn = self.connection.pgconn
        self.page = page  # from here on, a failure is retried inline by wait()
        if self.prepared:
            pgconn.send_query_prepared(_STATEMENT, params)
        else:
            pgconn.send_query_params(self.sql, params)
        while pgconn.flush():  # the connection is non-blocking: push the rest out
            self._ready(write=True)
        return page.ids

    def wait(self) -> None:
        import psycopg  # PostgreSQL only: other databases never load it

        if self.page is None:
            return
        pgconn = self.connection.pgconn
        pgconn.consume_input()
        while pgconn.is_busy():
            self._ready(write=False)
            pgconn.consume_input()
        error = None
        while (result := pgconn.get_result()) is not None:
            if result.status != psycopg.pq.ExecStatus.COMMAND_OK:
                error = result.error_message.decode(errors="replace")
        if error is not None:  # the page stays: wait()'s caller writes it inline
            raise psycopg.OperationalError(error)
        self.page = None

    def _take(self, count: int) -> list[int]:
        if len(self.ids) < count:
            rows = self.connection.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                [*self.sequence, max(count, ID_BLOCK)],
            ).fetchall()
            self.ids.extend(pk for (pk,) in rows)
        taken, self.ids = self.ids[:count], self.ids[count:]
        return taken

    def _ready(self, *, write: bool) -> None:
        socket = self.connection.pgconn.socket
        readable, writable = ([], [socket]) if write else ([socket], [])
        if not any(select.select(readable, writable, [], WAIT_SECONDS)):
            raise TimeoutError(f"The decision log's database did not answer in {WAIT_SECONDS} s")
