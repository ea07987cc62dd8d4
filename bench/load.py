"""Load and faults: many shoppers at once against gunicorn + PostgreSQL + Redis, counts reconciled.

.venv/bin/python bench/load.py [--clients 50] [--seconds 60] [--fault none|redis|postgres]

Each client is one shopper session: it opens the catalogue (its decisions), then keeps mixing
catalogue pages and batches of 10 events until the time is up. A batch that is not accepted
(a 503 while the database restarts, a dropped connection) is sent again, as the beacon would,
until it is. Then the events the clients sent are counted in the database: they must match
exactly (retries are not counted twice). With --fault, Redis is stopped for 60 s, or
PostgreSQL restarted, 15 s into the run. Prints status counts per phase, 5xx, and the
reconciliation; exits 1 if any 5xx other than a clean 503 was answered or the counts differ.
"""

import argparse
import collections
import http.client
import json
import os
import re
import signal
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie

from shop import PORT, seeded_shop, start_server

BATCH = 10
DECISION = re.compile(r'data-product="(\d+)"[^>]*data-decision="(\d+)"')
FAULT_AT = 15
REDIS_DOWN_FOR = 60
REDIS_START = (
    "redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save '' --appendonly no "
    "--dir /var/lib/redis --logfile /var/log/redis/ci.log"
)


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.status = collections.Counter()  # (phase, status) -> count
        self.sent_events = 0
        self.phase = "before"

    def count(self, status) -> None:
        with self.lock:
            self.status[(self.phase, status)] += 1


class Shopper:
    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self.connection = None
        self.cookie = ""
        self.jar = SimpleCookie()
        self.decisions: list[tuple[int, str]] = []
        self.clock = datetime.now(UTC) - timedelta(hours=1)

    def request(self, method: str, path: str, body: str | None = None):
        """(status, body) or (None, b"") when the connection failed; never raises."""
        headers = {"Cookie": self.cookie} if self.cookie else {}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            if self.connection is None:
                self.connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
            self.connection.request(method, path, body=body, headers=headers)
            response = self.connection.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException):
            self.connection = None
            self.tally.count("connection error")
            return None, b""
        self.tally.count(response.status)
        for header in response.headers.get_all("Set-Cookie") or []:
            self.jar.load(header)
        self.cookie = "; ".join(f"{k}={m.value}" for k, m in self.jar.items())
        return response.status, payload

    def page(self) -> None:
        status, html = self.request("GET", "/")
        if status == 200:
            self.decisions = [
                (int(d), p)
                for p, d in re.findall(
                    r'data-product="(\d+)"[^>]*data-decision="(\d+)"', html.decode()
                )
            ] or self.decisions

    def batch(self) -> list[dict]:
        events = []
        for i in range(BATCH):
            decision, product = self.decisions[i % len(self.decisions)]
            self.clock += timedelta(microseconds=1)
            events.append(
                {
                    "type": "impression",
                    "decision": decision,
                    "product": product,
                    "ts": self.clock.isoformat(),
                }
            )
        return events

    def send(self, events: list[dict], deadline: float) -> None:
        body = json.dumps({"events": events})
        while True:
            status, answer = self.request("POST", "/api/v1/events/", body)
            if status == 202:
                with self.tally.lock:
                    self.tally.sent_events += len(events)
                return
            if status == 400 or time.monotonic() > deadline + 120:
                raise RuntimeError(f"batch refused for good: {status} {answer[:200]!r}")
            time.sleep(1)  # the beacon's retry


def run_client(tally: Tally, deadline: float, errors: list) -> None:
    shopper = Shopper(tally)
    try:
        while not shopper.decisions and time.monotonic() < deadline:
            shopper.page()
        turn = 0
        while time.monotonic() < deadline:
            if turn % 3 == 0:
                shopper.page()
            else:
                shopper.send(shopper.batch(), deadline)
            turn += 1
    except Exception as exc:  # reported: a client that gave up fails the run
        errors.append(exc)


def fault(kind: str, tally: Tally) -> None:
    time.sleep(FAULT_AT)
    if kind == "redis":
        tally.phase = "redis down"
        subprocess.run(["redis-cli", "-p", "6379", "shutdown", "nosave"], check=False)
        time.sleep(REDIS_DOWN_FOR)
        subprocess.run(REDIS_START, shell=True, check=True)
    elif kind == "postgres":
        tally.phase = "postgres restart"
        version = os.listdir("/etc/postgresql")[0]
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"], check=True
        )
    tally.phase = "after"


def count_events() -> int:
    from stylerec.models import Event

    return Event.objects.count()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--fault", choices=["none", "redis", "postgres"], default="none")
    args = parser.parse_args()
    os.environ.setdefault("CACHE_URL", "redis://127.0.0.1:6379/4")
    os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/4")
    seeded_shop()
    from django.db import connection

    before = count_events()
    connection.close()
    server = start_server(workers=2)
    tally, errors = Tally(), []
    try:
        deadline = time.monotonic() + args.seconds
        clients = [
            threading.Thread(target=run_client, args=(tally, deadline, errors))
            for _ in range(args.clients)
        ]
        faults = [threading.Thread(target=fault, args=(args.fault, tally))] * (args.fault != "none")
        for thread in [*clients, *faults]:
            thread.start()
        for thread in [*clients, *faults]:
            thread.join()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    stored = count_events() - before
    requests = sum(tally.status.values())
    print(f"{args.clients} clients x {args.seconds:.0f} s, fault: {args.fault}")
    for phase in ("before", "redis down", "postgres restart", "after"):
        seen = {status: n for (p, status), n in tally.status.items() if p == phase}
        if seen:
            print(
                f"  {phase:>16}: "
                + ", ".join(f"{s}: {n}" for s, n in sorted(seen.items(), key=str))
            )
    server_errors = {
        (p, s): n for (p, s), n in tally.status.items() if isinstance(s, int) and s >= 500
    }
    unclean = {k: n for k, n in server_errors.items() if k[1] != 503}
    print(
        f"  requests: {requests}, 5xx: {sum(server_errors.values())} (other than 503: "
        f"{sum(unclean.values())})"
    )
    print(
        f"  events accepted by the API: {tally.sent_events}, stored: {stored} "
        f"({'reconciled' if stored == tally.sent_events else 'MISMATCH'})"
    )
    if errors:
        print(f"  clients that gave up: {len(errors)} (first: {errors[0]})")
    if unclean or stored != tally.sent_events or errors:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
