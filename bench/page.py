"""Benchmark: a personalized catalogue page against the same page with personalization off.

.venv/bin/python bench/page.py [--requests 200]

Prints ms per page for both, in the same run, measured two ways: in-process through Django's
test client (the view, templates, cache and database, no HTTP), and over HTTP from a
gunicorn worker (what a shop serves: also the WSGI server and the socket). Pages alternate
between the two settings, each timed page after an untimed one with the same setting (as a
shop's pages find it cached), so drift hits both equally. One shopper throughout: a repeated
view, whose products keep their assignments (no decision to draw or write). Then the same
in-process with a new shopper for every page (a first view: every product drawn and logged),
the ratios (target <= 1.2), and ms for choosing 24 products in-process for a new shopper (the
chooser, and sending the decisions' INSERT).

Shoppers of the control group see originals only: the bench sets STYLEREC_CONTROL_SHARE=0 so
that every page it measures is personalized.
"""

import argparse
import http.client
import os
import signal
import statistics
import time
from collections.abc import Callable
from http.cookies import SimpleCookie

os.environ.setdefault("STYLEREC_CONTROL_SHARE", "0")  # before Django reads its settings

from shop import PORT, seeded_shop, start_server  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    seeded_shop()
    from django.test import Client

    from storefront.models import Product
    from stylerec.loop_settings import loop_settings_changed
    from stylerec.models import LoopSettings, Shopper
    from stylerec.serving import decision_log
    from stylerec.serving.chooser import choose_images

    settings, _ = LoopSettings.objects.get_or_create(pk=1)

    def switch(enabled: bool) -> None:
        settings.personalization_enabled = enabled
        settings.save()
        loop_settings_changed()

    def compare(get: Callable[[], None]) -> tuple[float, float]:
        get()  # create the session and warm caches
        times = {True: [], False: []}
        for _ in range(args.requests):
            for enabled in (True, False):
                switch(enabled)
                get()  # untimed
                started = time.perf_counter()
                get()
                times[enabled].append((time.perf_counter() - started) * 1000)
        switch(True)
        for enabled, label in ((True, "personalized:       "), (False, "personalization off:")):
            print(
                f"  catalogue page, {label} {statistics.median(times[enabled]):7.2f} ms median "
                f"(p90 {statistics.quantiles(times[enabled], n=10)[-1]:.2f})"
            )
        ratio = statistics.median(times[True]) / statistics.median(times[False])
        print(f"  ratio personalized / off: {ratio:.2f} (target <= 1.2)")
        return ratio

    client = Client()

    def in_process() -> None:
        assert client.get("/").status_code == 200

    print("in-process (Django test client), repeated views:")
    compare(in_process)

    def first_view() -> None:
        assert Client().get("/").status_code == 200  # a new session: a new shopper

    print("in-process (Django test client), first views (a new shopper per page):")
    compare(first_view)

    server = start_server(workers=1)
    try:
        jar = SimpleCookie()  # one shopper throughout, as with the test client

        def over_http() -> None:
            connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
            cookies = "; ".join(f"{name}={morsel.value}" for name, morsel in jar.items())
            connection.request("GET", "/", headers={"Cookie": cookies} if cookies else {})
            response = connection.getresponse()
            response.read()
            assert response.status == 200
            for header in response.headers.get_all("Set-Cookie") or []:
                jar.load(header)
            connection.close()

        print("over HTTP (one gunicorn sync worker):")
        compare(over_http)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)

    products = list(Product.objects.select_related("category")[:24])
    choose, wait = [], []
    for _ in range(args.requests + 1):
        shopper = Shopper.objects.create()
        with decision_log.deferred():  # as in a request through TrackingMiddleware
            started = time.perf_counter()
            choose_images(shopper=shopper, products=products)
            chosen = time.perf_counter()
        choose.append((chosen - started) * 1000)
        wait.append((time.perf_counter() - chosen) * 1000)
    print(
        f"choose_images for 24 products: {statistics.median(choose[1:]):.2f} ms median "
        f"(then {statistics.median(wait[1:]):.2f} ms waiting for the decisions' commit at once; "
        f"a page renders meanwhile)"
    )


if __name__ == "__main__":
    main()
