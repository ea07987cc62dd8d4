"""Benchmark: event ingestion through the batch API into PostgreSQL, against gunicorn.

.venv/bin/python bench/ingest.py [--seconds 15] [--clients 4]

Starts gunicorn (2 workers, one per core) on the bench database, opens shopper sessions
through the catalogue page (which logs their decisions), then prints events/s for
500-event batches (target >= 5,000/s), and p50/p99 latency of single-event posts
(target p99 <= 20 ms), and the batch/single throughput ratio.
"""

import argparse
import http.client
import json
import os
import re
import signal
import statistics
import threading
import time
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie

from shop import PORT, seeded_shop, start_server


class Session:
    """One shopper: a cookie jar of one session and the decisions its page view logged."""

    def __init__(self) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
        self.connection.request("GET", "/")
        response = self.connection.getresponse()
        html = response.read().decode()
        jar = SimpleCookie()
        for header in response.headers.get_all("Set-Cookie") or []:
            jar.load(header)
        self.cookie = "; ".join(f"{name}={morsel.value}" for name, morsel in jar.items())
        self.decisions = [
            (int(d), p)
            for p, d in re.findall(r'data-product="(\d+)"[^>]*data-decision="(\d+)"', html)
        ]
        self.clock = datetime.now(UTC) - timedelta(days=1)

    def events(self, count: int) -> list[dict]:
        batch = []
        for i in range(count):
            decision, product = self.decisions[i % len(self.decisions)]
            self.clock += timedelta(microseconds=1)  # distinct times: nothing is a retry
            batch.append(
                {
                    "type": "impression",
                    "decision": decision,
                    "product": product,
                    "ts": self.clock.isoformat(),
                }
            )
        return batch

    def post(self, events: list[dict]) -> float:
        body = json.dumps({"events": events})
        started = time.perf_counter()
        self.connection.request(
            "POST",
            "/api/v1/events/",
            body=body,
            headers={"Content-Type": "application/json", "Cookie": self.cookie},
        )
        response = self.connection.getresponse()
        payload = response.read()
        elapsed = time.perf_counter() - started
        if response.status != 202:
            raise RuntimeError(f"{response.status}: {payload[:300]!r}")
        return elapsed


def batch_throughput(sessions: list[Session], seconds: float, batch: int) -> float:
    stored = [0] * len(sessions)
    errors: list[Exception] = []
    deadline = time.monotonic() + seconds

    def run(index: int) -> None:
        try:
            while time.monotonic() < deadline:
                sessions[index].post(sessions[index].events(batch))
                stored[index] += batch
        except Exception as exc:  # reported below: a failed client must fail the benchmark
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(sessions))]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return sum(stored) / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    seeded_shop()
    server = start_server(workers=2)
    try:
        sessions = [Session() for _ in range(args.clients)]
        batched = batch_throughput(sessions, args.seconds, 500)
        single = sessions[0]
        latencies = [single.post(single.events(1)) * 1000 for _ in range(500)]
        single_rate = 1000 / statistics.mean(latencies)
        p99 = statistics.quantiles(latencies, n=100)[98]
        print(
            f"batched (500/batch, {args.clients} clients): {batched:8.0f} events/s (target >= 5000)"
        )
        print(
            f"single events, one client: {single_rate:8.0f} events/s; latency p50 "
            f"{statistics.median(latencies):.1f} ms, p99 {p99:.1f} ms (target p99 <= 20 ms)"
        )
        print(f"ratio batched / single: {batched / single_rate:.1f}x")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
