"""Reading the decision log into per-shopper sufficient statistics, in chunks.

Memory is bounded by shoppers x context levels x arms, never by the number of decisions:
on PostgreSQL a server-side cursor hands over the log packed in buckets of decisions, each
added up with numpy; other databases (the embedded SQLite) read it in ORM chunks.
"""

from __future__ import annotations

import itertools
import os
from collections import Counter
from contextlib import contextmanager
from datetime import timedelta

import numpy as np
from django.db import connection, transaction
from django.db.models import Count, F, Max, Min

from ..conf import conf
from ..events import VALUED, reward_weight
from ..models import Decision, Event
from .read_ahead import read_ahead

# Context levels a fit models: the busiest (category, device class) pairs with at least
# this many decisions, at most this many; the rest share one pooled level.
MAX_CONTEXTS = 12
MIN_CONTEXT_DECISIONS = 200
_ORM_CHUNK = 2_000
# Decisions sampled to find the busiest contexts in a large log (`_sampled_context_counts`).
CONTEXT_SAMPLE = 200_000
BUCKET_BITS = 16  # the PostgreSQL reader's buckets: 65,536 decision ids, ~1.8 MB each
_READ_AHEAD = 4  # buckets the reader threads may fetch before they are added up
# Connections reading a large log side by side, and the fewest buckets worth one of them.
LOG_READERS = min(2, os.cpu_count() or 1)
_BUCKETS_PER_READER = 8
# A decision and an event as the PostgreSQL reader packs them (`_log_query`); times as
# PostgreSQL sends a timestamptz, microseconds since 2000-01-01 (cheaper than converting).
_DECISION = np.dtype(
    [("id", ">i8"), ("shopper", ">i8"), ("arm", ">i4"), ("level", ">i4"), ("created", ">i8")]
)
# An event's value is NaN when it carries none.
_EVENT = np.dtype([("decision", ">i8"), ("kind", ">i4"), ("occurred", ">i8"), ("value", ">f8")])


def _decisions(since, shopper_ids=None):
    decisions = Decision.objects.filter(created_at__gte=since)
    if shopper_ids is not None:
        decisions = decisions.filter(shopper_id__in=shopper_ids)
    return decisions


def context_levels(*, since) -> list[str]:
    """Keys (`context_key`) of the contexts the next fit models, busiest first."""
    counts = _sampled_context_counts(since) if connection.vendor == "postgresql" else None
    if counts is None:
        counts = _context_counts(since)
    busiest = [key for key, n in counts.most_common(MAX_CONTEXTS) if n >= MIN_CONTEXT_DECISIONS]
    return busiest


def _context_counts(since) -> Counter[str]:
    from ..ml.preferences import context_key

    rows = (
        _decisions(since)
        .values("context__category", "context__device")
        .annotate(n=Count("id"))
        .order_by()
    )
    counts: Counter[str] = Counter()
    for row in rows:
        counts[context_key(row["context__category"], row["context__device"])] += row["n"]
    return counts


def _sampled_context_counts(since) -> Counter[str] | None:
    """Decisions per context estimated from a repeatable sample of the table's pages, when the
    table is large enough for one (None otherwise): which contexts are busy is a question of
    shares, and counting every decision was a whole pass over the log of its own."""
    table = Decision._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [table])
        estimated = (cursor.fetchone() or [0])[0]
        if estimated < 2 * CONTEXT_SAMPLE:
            return None
        percent = 100.0 * CONTEXT_SAMPLE / estimated
        cursor.execute(
            f"""SELECT COALESCE(context->>'category', '') || '|'
                   || COALESCE(context->>'device', ''), count(*)
            FROM {table} TABLESAMPLE SYSTEM (%s) REPEATABLE (0)
            WHERE created_at >= %s GROUP BY 1""",
            [percent, since],
        )
        rows = cursor.fetchall()
    if sum(n for _, n in rows) < CONTEXT_SAMPLE // 4:  # the window is a small part of the table
        return None
    return Counter({key: n * 100.0 / percent for key, n in rows})


class _Accumulator:
    """Adds decisions up per (shopper, level, arm); keeps per shopper whether any of its
    decisions was reported seen (an impression) or acted on. Shoppers get a row when their
    first decision arrives, so no pass over the log is needed to list them first."""

    def __init__(self, n_levels: int, n_arms: int, capacity: int = 1024) -> None:
        self.cells = (n_levels, n_arms)
        self.size = 0  # rows in use, in order of arrival
        self.ids = np.zeros(0, np.int64)  # shopper ids, sorted, and their rows
        self.rows = np.zeros(0, np.int64)
        self.count_all, self.count_acted, self.reward, self.reward_sq = (
            np.zeros((capacity, *self.cells), np.float32) for _ in range(4)
        )
        self.impressed = np.zeros(capacity, bool)
        self.acted = np.zeros(capacity, bool)

    def _rows_of(self, shopper: np.ndarray) -> np.ndarray:
        """Rows of these shoppers, new ones added (arrays grow by a quarter when full)."""
        found = np.minimum(np.searchsorted(self.ids, shopper), max(self.ids.size - 1, 0))
        new = np.unique(shopper[self.ids[found] != shopper] if self.ids.size else shopper)
        if new.size:
            needed = self.size + new.size
            if needed > len(self.acted):
                self._grow(max(needed, len(self.acted) * 5 // 4))
            ids = np.concatenate([self.ids, new])
            rows = np.concatenate([self.rows, np.arange(self.size, needed)])
            order = np.argsort(ids, kind="stable")
            self.ids, self.rows, self.size = ids[order], rows[order], needed
            found = np.searchsorted(self.ids, shopper)
        return self.rows[found]

    def _grow(self, capacity: int) -> None:
        for name in ("count_all", "count_acted", "reward", "reward_sq", "impressed", "acted"):
            old = getattr(self, name)
            grown = np.zeros((capacity, *old.shape[1:]), old.dtype)
            grown[: len(old)] = old
            setattr(self, name, grown)
            del old

    def add(self, shopper, arm, level, reward, impressed) -> None:
        known = arm >= 0
        shopper, arm, level = shopper[known], arm[known], level[known]
        reward, impressed = reward[known], impressed[known]
        if not shopper.size:
            return
        row = self._rows_of(shopper)
        acted = impressed | (reward > 0)
        n_levels, n_arms = self.cells
        cells, where = np.unique((row * n_levels + level) * n_arms + arm, return_inverse=True)
        for target, values in (
            (self.count_all, np.ones(where.size)),
            (self.count_acted, acted.astype(float)),
            (self.reward, reward),
            (self.reward_sq, reward * reward),
        ):
            target.reshape(-1)[cells] += np.bincount(where, weights=values, minlength=cells.size)
        self.impressed[row[impressed]] = True
        self.acted[row[acted]] = True

    def statistics(self):
        """Only decisions that say something about taste (`fitting._seen`): a shopper whose
        client reports impressions is judged on those it reported or acted on; one that never
        reports is judged on all it was shown, once it acted at all; the rest are dropped.
        Rows come out in shopper order, one array at a time (a copy each, the old one freed)."""
        from ..ml.context import ContextStatistics

        keep = self.rows[self.acted[self.rows]]  # by shopper id
        impressed = self.impressed[keep]
        count = self.count_all[keep]
        self.count_all = None
        count[impressed] = self.count_acted[keep[impressed]]
        self.count_acted = None
        reward = self.reward[keep]
        self.reward = None
        reward_sq = self.reward_sq[keep]
        self.reward_sq = None
        return ContextStatistics(self.ids[self.acted[self.rows]], count, reward, reward_sq)


def stream_statistics(arm_slugs: list[str], keys: list[str], *, since, shopper_ids=None):
    """ContextStatistics of the decisions since `since` (of `shopper_ids` only, if given),
    levels 0..K-1 the `keys`, K the pooled rest; arms by position in `arm_slugs`."""
    accumulator = _Accumulator(len(keys) + 1, len(arm_slugs))
    if connection.vendor == "postgresql":
        _postgresql_into(accumulator, arm_slugs, keys, since, shopper_ids)
    else:
        _orm_into(accumulator, _decisions(since, shopper_ids), arm_slugs, keys)
    return accumulator.statistics()


def _log_query(arm_slugs, keys, since, shopper_ids, id_range):
    """One row per bucket of 2^BUCKET_BITS decision ids (one bucket for `shopper_ids`): its
    decisions and its events, each packed big-endian (`_DECISION`, `_EVENT`), so the client
    unpacks a bucket with one numpy call instead of one Python call per row. Each bucket is
    two index range scans, computed when the cursor asks for it, in a few MB: PostgreSQL
    neither sorts the log nor joins it (the join, the reward window and the distinct kinds
    are numpy's, `_outcomes_of`)."""
    decision, event = Decision._meta.db_table, Event._meta.db_table
    if shopper_ids is None:
        buckets = (
            "SELECT g << %(bits)s AS lo, (g + 1) << %(bits)s AS hi"
            " FROM generate_series(%(first)s::int8 >> %(bits)s, %(last)s::int8 >> %(bits)s) g"
        )
        of_events = "e.decision_id >= b.lo AND e.decision_id < b.hi"
        of_decisions = ""
    else:
        buckets = "SELECT %(first)s::int8 AS lo, %(last)s::int8 + 1 AS hi"
        of_events = (
            f"e.decision_id IN (SELECT id FROM {decision} WHERE shopper_id = ANY(%(shoppers)s))"
        )
        of_decisions = "AND d.shopper_id = ANY(%(shoppers)s)"
    # array_position: 1-based, NULL when absent (-1: an arm no longer known; K: pooled level).
    sql = f"""
        SELECT (
          SELECT string_agg(
              int8send(d.id) || int8send(d.shopper_id::int8)
              || int4send(COALESCE(array_position(%(arms)s::text[], d.chosen::text) - 1, -1))
              || int4send(COALESCE(array_position(%(keys)s::text[],
                     COALESCE(d.context->>'category', '') || '|' ||
                     COALESCE(d.context->>'device', '')) - 1, %(pooled)s))
              || timestamptz_send(d.created_at), ''::bytea)
          FROM {decision} d
          WHERE d.id >= b.lo AND d.id < b.hi AND d.created_at >= %(since)s {of_decisions}
        ), (
          SELECT string_agg(
              int8send(e.decision_id)
              || int4send(array_position(%(kinds)s::text[], e.kind::text) - 1)
              || timestamptz_send(e.occurred_at)
              || float8send(COALESCE(e.value::float8, 'NaN'::float8)), ''::bytea)
          FROM {event} e
          WHERE {of_events} AND e.kind = ANY(%(kinds)s)
        ) FROM ({buckets}) b
    """
    params = {
        "bits": BUCKET_BITS,
        "first": id_range[0],
        "last": id_range[1],
        "arms": list(arm_slugs),
        "keys": list(keys),
        "pooled": len(keys),
        "kinds": _kinds(),
        "since": since,
    }
    if shopper_ids is not None:
        params["shoppers"] = list(shopper_ids)
    return sql, params


def _kinds() -> list[str]:
    """Event kinds the fit reads, by code: the rewarded ones, then impressions."""
    return [str(kind) for kind in conf.REWARD_WEIGHTS] + [str(Event.Kind.IMPRESSION)]


def _outcomes_of(decisions: np.ndarray, events: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per decision: the reward (weights summed over the distinct kinds whose first event
    falls within the reward window) and whether an impression was reported in it."""
    order = np.argsort(decisions["id"])
    ids = decisions["id"][order]
    kinds = _kinds()
    reward, impressed = np.zeros(ids.size), np.zeros(ids.size, bool)
    if not events.size or not ids.size:
        return reward, impressed
    at = np.minimum(np.searchsorted(ids, events["decision"]), ids.size - 1)
    valid = ids[at] == events["decision"]
    window = int(round(conf.REWARD_WINDOW * 1e6))
    valid &= events["occurred"] <= decisions["created"][order][at] + window
    weights = np.array([*map(float, conf.REWARD_WEIGHTS.values()), 0.0])
    pairs, first = np.unique(at[valid] * len(kinds) + events["kind"][valid], return_inverse=True)
    row, kind = pairs // len(kinds), pairs % len(kinds)
    factors = _value_factors(kinds, kind, events["value"][valid], first)
    np.add.at(reward, row, weights[kind] * factors)
    impressed[row[kind == len(kinds) - 1]] = True
    back = np.empty_like(order)
    back[order] = np.arange(order.size)
    return reward[back], impressed[back]


def _value_factors(kinds, kind, values, pair_of_event) -> np.ndarray:
    """Per (decision, kind) pair: value / REWARD_VALUE_UNIT of its largest valued event where
    REWARD_BY_VALUE weights that kind (events.reward_weight, vectorised), else 1."""
    factors = np.ones(kind.size)
    if not conf.REWARD_BY_VALUE:
        return factors
    largest = np.full(kind.size, -np.inf)
    np.maximum.at(largest, pair_of_event, np.where(np.isnan(values), -np.inf, values))
    valued = np.isin(kind, [kinds.index(k) for k in VALUED if k in kinds]) & np.isfinite(largest)
    factors[valued] = largest[valued] / conf.REWARD_VALUE_UNIT
    return factors


def _postgresql_into(accumulator, arm_slugs, keys, since, shopper_ids) -> None:
    """Server-side cursors, each read by a thread of its own while this one adds up the
    buckets they hand over (psycopg waits for the server without the GIL): the database's
    work and the client's overlap, and memory stays at a few buckets (the queue's bound).
    A large log outside a transaction is split between LOG_READERS connections, one range
    of buckets each; in a transaction only this connection sees what it wrote, so it reads
    alone."""
    id_range = _decisions(since, shopper_ids).aggregate(first=Min("id"), last=Max("id"))
    if id_range["first"] is None:
        return
    first, last = id_range["first"] >> BUCKET_BITS, id_range["last"] >> BUCKET_BITS
    readers = LOG_READERS if shopper_ids is None and not connection.in_atomic_block else 1
    readers = max(1, min(readers, (last - first + 1) // _BUCKETS_PER_READER))
    if readers == 1:
        connection.ensure_connection()
        ids = (id_range["first"], id_range["last"])
        with (
            transaction.atomic(using=connection.alias),
            _log_cursor(connection.connection, arm_slugs, keys, since, shopper_ids, ids) as rows,
        ):
            _add_buckets(accumulator, read_ahead([rows], _READ_AHEAD))
        return
    bounds = np.linspace(first, last + 1, readers + 1).round().astype(int).tolist()
    params = connection.get_connection_params()
    sources = [
        _log_rows_apart(
            params, arm_slugs, keys, since, (lo << BUCKET_BITS, (hi - 1) << BUCKET_BITS)
        )
        for lo, hi in itertools.pairwise(bounds)
    ]
    _add_buckets(accumulator, read_ahead(sources, _READ_AHEAD))


def _add_buckets(accumulator, buckets) -> None:
    for packed_decisions, packed_events in buckets:
        if packed_decisions is None:  # a bucket with no decision in the window
            continue
        decisions = np.frombuffer(packed_decisions, dtype=_DECISION)
        events = np.frombuffer(packed_events or b"", dtype=_EVENT)
        reward, impressed = _outcomes_of(decisions, events)
        accumulator.add(
            decisions["shopper"].astype(np.int64),
            decisions["arm"].astype(np.int64),
            decisions["level"].astype(np.int64),
            reward,
            impressed,
        )


@contextmanager
def _log_cursor(db, arm_slugs, keys, since, shopper_ids, id_range):
    """A named cursor over the buckets of `_log_query` on the psycopg connection `db`, in the
    transaction the caller opened (a named cursor lives in one). Each bucket is small: JIT
    compiling and parallel workers cost more than they save (the JIT alone took seconds at
    1M decisions)."""
    sql, params = _log_query(arm_slugs, keys, since, shopper_ids, id_range)
    with db.cursor(name="stylerec_fit_log", binary=True) as cursor:
        db.execute("SET LOCAL jit = off")
        db.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        cursor.itersize = 1
        cursor.execute(sql, params)
        yield cursor


def _log_rows_apart(connection_params, arm_slugs, keys, since, id_range):
    """The buckets of an id range on a connection of its own, opened in the thread that reads
    them and closed after (`read_ahead` closes this generator)."""
    import psycopg

    with (
        psycopg.connect(**connection_params) as db,
        db.transaction(),
        _log_cursor(db, arm_slugs, keys, since, None, id_range) as rows,
    ):
        yield from rows


def _orm_into(accumulator, decisions, arm_slugs, keys) -> None:
    from ..ml.preferences import context_key

    arm_index = {slug: i for i, slug in enumerate(arm_slugs)}
    level_index = {key: i for i, key in enumerate(keys)}
    weights = conf.REWARD_WEIGHTS
    rows = decisions.order_by("id").values_list("id", "shopper_id", "chosen", "context")
    chunk: list[tuple] = []
    for row in rows.iterator(chunk_size=_ORM_CHUNK):
        chunk.append(row)
        if len(chunk) == _ORM_CHUNK:
            _orm_chunk(accumulator, chunk, arm_index, level_index, weights, context_key)
            chunk = []
    if chunk:
        _orm_chunk(accumulator, chunk, arm_index, level_index, weights, context_key)


def event_outcomes(decisions, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per decision (aligned with sorted `ids`): the reward, weights summed over distinct kinds
    within the window, and whether an impression was reported for it."""
    weights = conf.REWARD_WEIGHTS
    reward, impressed = np.zeros(ids.size), np.zeros(ids.size, dtype=bool)
    if not ids.size:
        return reward, impressed
    rows = (
        Event.objects.filter(
            decision__in=decisions,
            kind__in=[*weights, Event.Kind.IMPRESSION],
            occurred_at__lte=F("decision__created_at") + timedelta(seconds=conf.REWARD_WINDOW),
        )
        .values_list("decision_id", "kind")
        .annotate(value=Max("value"))
        .order_by()
    )
    for decision_id, kind, value in rows.iterator(chunk_size=20_000):
        position = np.searchsorted(ids, decision_id)
        if position < ids.size and ids[position] == decision_id:
            if kind == Event.Kind.IMPRESSION:
                impressed[position] = True
            else:
                reward[position] += reward_weight(kind, value)
    return reward, impressed


def _orm_chunk(accumulator, chunk, arm_index, level_index, weights, context_key) -> None:
    ids = np.array([row[0] for row in chunk], dtype=np.int64)
    order = np.argsort(ids)
    reward, impressed = np.empty(ids.size), np.empty(ids.size, bool)
    reward[order], impressed[order] = event_outcomes(ids[order].tolist(), ids[order])
    pooled = len(level_index)
    contexts = [row[3] if isinstance(row[3], dict) else {} for row in chunk]
    accumulator.add(
        np.array([row[1] for row in chunk], dtype=np.int64),
        np.array([arm_index.get(row[2], -1) for row in chunk], dtype=np.int64),
        np.array(
            [
                level_index.get(context_key(c.get("category"), c.get("device")), pooled)
                for c in contexts
            ],
            dtype=np.int64,
        ),
        reward,
        impressed,
    )
