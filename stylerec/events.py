"""Shopper events: the rules an event must keep, ingesting batches of them, pruning old ones."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.db import connection, transaction
from django.utils import timezone

from .conf import conf
from .models import Decision, Event, Shopper

FUTURE_SLACK = timedelta(minutes=5)  # clients' clocks run a little fast
NEEDS_DECISION = frozenset({Event.Kind.IMPRESSION, Event.Kind.CLICK})
VALUED = frozenset({Event.Kind.ADD_TO_CART, Event.Kind.PURCHASE})
MAX_VALUE = Decimal("9999999999.9999")  # what Event.value (14 digits, 4 decimals) holds
# ISO 4217 codes of the currencies in use (2024), and the test code XTS.
_CURRENCY_CODES = """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP
    BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP
    GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR
    KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK
    MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR
    SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS
    UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XOF XPF XTS YER ZAR ZMW ZWG ZWL"""
CURRENCIES = frozenset(_CURRENCY_CODES.split())


class EventRejected(ValueError):
    """An event breaks a rule; `part` is what is wrong: occurred_at, decision or product_id."""

    def __init__(self, part: str, message: str):
        super().__init__(message)
        self.part = part


def check_batch_size(count: int) -> None:
    if count > conf.MAX_EVENTS_PER_BATCH:
        raise EventRejected("events", f"At most {conf.MAX_EVENTS_PER_BATCH} events per batch.")


def check_occurred_at(occurred_at: datetime | None) -> None:
    """Events come from the last MAX_EVENT_AGE_DAYS days, not from the future (None: now)."""
    if occurred_at is None:
        return
    now = timezone.now()
    if occurred_at > now + FUTURE_SLACK:
        raise EventRejected("occurred_at", "Timestamp is in the future.")
    if occurred_at < now - timedelta(days=conf.MAX_EVENT_AGE_DAYS):
        raise EventRejected(
            "occurred_at", f"Timestamp is older than {conf.MAX_EVENT_AGE_DAYS} days."
        )


def check_decision(
    *, kind: str, product_id: str, decision_id: int | None, decisions: dict[int, Decision]
) -> None:
    """The decision is the shopper's own (in `decisions`, from decisions_of) and for this
    product; impressions and clicks must name the decision of the image they saw."""
    if decision_id is None:
        if kind in NEEDS_DECISION:
            raise EventRejected(
                "decision", "Impressions and clicks need the decision of the image shown."
            )
        return
    decision = decisions.get(decision_id)
    if decision is None:
        raise EventRejected("decision", "Unknown decision.")
    if decision.product_id != product_id:
        raise EventRejected("product_id", "This decision was made for another product.")


def check_value(*, kind: str, value, currency: str | None) -> tuple[Decimal | None, str]:
    """An add-to-cart's or purchase's value (a decimal >= 0, given as a number or a string) and
    its ISO 4217 currency (None or "": STYLEREC["CURRENCY"]), as stored; (None, "") without one."""
    if value is None or value == "":
        if currency:
            raise EventRejected("value", "A currency needs a value.")
        return None, ""
    if kind not in VALUED:
        raise EventRejected("value", "Only add_to_cart and purchase events carry a value.")
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise EventRejected("value", "A value is a number, e.g. 19.99.")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise EventRejected("value", "A value is a number, e.g. 19.99.") from None
    if not amount.is_finite() or amount < 0 or amount > MAX_VALUE:
        raise EventRejected("value", f"A value is a number from 0 to {MAX_VALUE}.")
    code = currency or conf.CURRENCY
    if not code:
        raise EventRejected("currency", "A value needs its currency (ISO 4217, e.g. EUR).")
    if not isinstance(code, str) or code.upper() not in CURRENCIES:
        raise EventRejected("currency", "Unknown currency: give an ISO 4217 code, e.g. EUR.")
    return amount.quantize(Decimal("0.0001")), code.upper()


def reward_weight(kind: str, value: Decimal | None) -> float:
    """What an event adds to its decision's reward: the kind's weight, times value /
    REWARD_VALUE_UNIT when REWARD_BY_VALUE is on and the event carries a value."""
    weight = conf.REWARD_WEIGHTS.get(kind, 0.0)
    if conf.REWARD_BY_VALUE and value is not None and kind in VALUED:
        return weight * float(value) / conf.REWARD_VALUE_UNIT
    return weight


@dataclass(frozen=True)
class IngestResult:
    stored: int
    duplicates: int


def decisions_of(shopper: Shopper, decision_ids) -> dict[int, Decision]:
    """The shopper's own decisions among these ids; others' decisions are simply not found."""
    return {
        d.pk: d
        for d in Decision.objects.filter(shopper=shopper, pk__in=set(decision_ids)).only(
            "id", "product_id", "chosen"
        )
    }


def events_ingest(*, shopper: Shopper, events: list[dict], source: str = "api") -> IngestResult:
    """Store validated events (kind, product_id, occurred_at, decision or None, and value and
    currency from check_value) in one insert.

    A retried batch repeats rows the shopper already has; they are skipped (and the unique
    constraint holds even against a concurrent retry).
    """
    decisions = decisions_of(shopper, [e["decision"] for e in events if e.get("decision")])
    now = timezone.now()
    rows = [
        Event(
            shopper=shopper,
            kind=event["kind"],
            decision_id=event.get("decision"),
            product_id=str(event["product_id"]),
            style_slug=decisions[event["decision"]].chosen if event.get("decision") else "",
            occurred_at=event.get("occurred_at") or now,
            source=source,
            value=event.get("value"),
            currency=event.get("currency") or "",
        )
        for event in _unique(events)
    ]
    # Shaped to walk the unique index (shopper, kind, decision, ...), not all the shopper's rows.
    held = set(
        Event.objects.filter(
            shopper=shopper,
            kind__in={row.kind for row in rows},
            decision_id__in={row.decision_id for row in rows if row.decision_id},
            occurred_at__in={row.occurred_at for row in rows},
        ).values_list("kind", "decision_id", "product_id", "occurred_at")
    )
    new = [r for r in rows if (r.kind, r.decision_id, r.product_id, r.occurred_at) not in held]
    outer = connection.in_atomic_block
    with transaction.atomic():
        if connection.vendor == "postgresql" and not outer:
            # An event log: a crash may lose the last fraction of a second, never corrupt it,
            # and a beacon does not wait for the disk. Never inside a caller's transaction
            # (a checkout recording a purchase): its commit must stay durable.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit = off")
        Event.objects.bulk_create(new, ignore_conflicts=True)
    return IngestResult(stored=len(new), duplicates=len(events) - len(new))


def _unique(events: list[dict]) -> list[dict]:
    seen, unique = set(), []
    for event in events:
        key = (
            event["kind"],
            event.get("decision"),
            str(event["product_id"]),
            _instant(event.get("occurred_at")),
        )
        if key not in seen:
            seen.add(key)
            unique.append(event)
    return unique


def _instant(value: datetime | None):
    return value.timestamp() if value else None


def record_server_event(
    *, shopper: Shopper, kinds: list[str], product_id, decision_id=None, value=None, currency=None
) -> None:
    """Events the server sees itself (a click through to a product page, a basket line, an
    order line), without JS; `value` and `currency` as check_value takes them."""
    amount, code = (
        check_value(kind=kinds[0], value=value, currency=currency) if kinds else (None, "")
    )
    if (
        decision_id is not None
        and not Decision.objects.filter(
            pk=decision_id, shopper=shopper, product_id=str(product_id)
        ).exists()
    ):
        decision_id = None
    now = timezone.now()
    events_ingest(
        shopper=shopper,
        events=[
            {
                "kind": kind,
                "product_id": product_id,
                "decision": decision_id,
                "occurred_at": now,
                "value": amount,
                "currency": code,
            }
            for kind in kinds
        ],
        source="server",
    )


# --- Retention ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PruneResult:
    events: int
    decisions: int
    cutoff: datetime


def retention_cutoff(now: datetime | None = None) -> datetime | None:
    """Events and decisions from before this may go (None: EVENT_RETENTION_DAYS is None).

    Never later than what a fit reads: decisions of the last FIT_LOOKBACK_DAYS and the events
    within REWARD_WINDOW after each, so a retention shorter than that keeps that much anyway.
    """
    if conf.EVENT_RETENTION_DAYS is None:
        return None
    fit_reads = timedelta(days=conf.FIT_LOOKBACK_DAYS, seconds=conf.REWARD_WINDOW)
    kept = max(timedelta(days=conf.EVENT_RETENTION_DAYS), fit_reads)
    return (now or timezone.now()) - kept


def events_prune(*, now: datetime | None = None, chunk: int = 10_000) -> PruneResult | None:
    """Delete events received and decisions made before retention_cutoff, `chunk` rows per
    statement (each its own transaction, so no long lock is held on a table pages write to)."""
    cutoff = retention_cutoff(now)
    if cutoff is None:
        return None
    events = _delete_in_chunks(Event.objects.filter(received_at__lt=cutoff), chunk)
    # A decision's later events (received after the cutoff) go with it: no reward is ever
    # counted for a decision the logs no longer hold.
    decisions = _delete_in_chunks(Decision.objects.filter(created_at__lt=cutoff), chunk)
    return PruneResult(events=events, decisions=decisions, cutoff=cutoff)


def events_prunable(*, now: datetime | None = None) -> dict[str, int]:
    """What events_prune would delete now."""
    cutoff = retention_cutoff(now)
    if cutoff is None:
        return {"events": 0, "decisions": 0}
    return {
        "events": Event.objects.filter(received_at__lt=cutoff).count(),
        "decisions": Decision.objects.filter(created_at__lt=cutoff).count(),
    }


def _delete_in_chunks(rows, chunk: int) -> int:
    deleted = 0
    while ids := list(rows.order_by().values_list("pk", flat=True)[:chunk]):
        rows.model.objects.filter(pk__in=ids).delete()  # events of a decision: one DELETE
        deleted += len(ids)
    return deleted
