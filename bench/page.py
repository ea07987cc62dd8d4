"""Benchmark: a personalized catalogue page against the same page with personalization off.

.venv/bin/python bench/page.py [--requests 200]

Prints ms per page for both (same process, same database, alternating, each timed page
after an untimed one with the same setting, as a shop's pages are), the ratio
(target <= 1.2), and ms for choosing 24 products in-process (chooser + decision insert).
"""

import argparse
import statistics
import time

from shop import seeded_shop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    seeded_shop()
    from django.test import Client

    from storefront.models import Product
    from stylerec import store
    from stylerec.chooser import choose_images
    from stylerec.models import LoopSettings, Shopper

    settings, _ = LoopSettings.objects.get_or_create(pk=1)
    client = Client()
    client.get("/")  # create the session and warm caches

    def page_ms(enabled: bool) -> float:
        settings.personalization_enabled = enabled
        settings.save()
        store.loop_settings_changed()
        client.get("/")  # untimed: a real shop's pages find the settings in the cache
        started = time.perf_counter()
        response = client.get("/")
        elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code == 200
        return elapsed

    on, off = [], []
    for _ in range(args.requests):  # alternate, so drift hits both equally
        on.append(page_ms(True))
        off.append(page_ms(False))
    settings.personalization_enabled = True
    settings.save()
    store.loop_settings_changed()

    shopper = Shopper.objects.create()
    products = list(Product.objects.select_related("category")[:24])
    choose_images(shopper=shopper, products=products)
    choose = []
    for _ in range(args.requests):
        started = time.perf_counter()
        choose_images(shopper=shopper, products=products)
        choose.append((time.perf_counter() - started) * 1000)

    median_on, median_off = statistics.median(on), statistics.median(off)
    print(
        f"catalogue page, personalized:      {median_on:7.2f} ms median "
        f"(p90 {statistics.quantiles(on, n=10)[-1]:.2f})"
    )
    print(
        f"catalogue page, personalization off: {median_off:7.2f} ms median "
        f"(p90 {statistics.quantiles(off, n=10)[-1]:.2f})"
    )
    print(f"ratio personalized / off: {median_on / median_off:.2f} (target <= 1.2)")
    print(
        f"choose_images for 24 products (with the decision insert): "
        f"{statistics.median(choose):.2f} ms median"
    )


if __name__ == "__main__":
    main()
