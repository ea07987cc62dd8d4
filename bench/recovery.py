"""Render workers killed mid-render while the catalogue renders: how long each held render takes
to be ready again, and whether the catalogue ends whole, each rendition rendered once.

.venv/bin/python bench/recovery.py [--kills 5]

Uses the seeded bench shop (bench/shop.py: 44 products x 5 active styles = 220 renditions).
Drops its renditions, starts one render worker as the README runs it (`celery worker -Q
render,default --pool solo`, default settings: no beat), requests every rendition, and
--kills times SIGKILLs the worker while it holds a render, starting a new one at once. Prints
kill -> ready seconds per held render, the catalogue's total time, and the rows, attempts and
partial files left; exits 1 unless all renditions are ready, once each, with no partial file.
"""

import argparse
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from shop import DATABASE_URL, ROOT, seeded_shop

BROKER = "redis://127.0.0.1:6379/3"


def start_worker(log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": DATABASE_URL,
        "DJANGO_SETTINGS_MODULE": "storefront.settings",
    }
    handle = open(log, "ab")  # noqa: SIM115 - the worker keeps writing to it
    offset = log.stat().st_size
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "storefront",
            "worker",
            "-Q",
            "render,default",
            "--pool",
            "solo",
            "--loglevel",
            "INFO",
        ],
        cwd=ROOT,
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while b"ready." not in log.read_bytes()[offset:]:
        if worker.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"worker did not start; see {log}")
        time.sleep(0.2)
    return worker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=1200)
    args = parser.parse_args()
    os.environ.update(CELERY_BROKER_URL=BROKER, CACHE_URL=BROKER)
    seeded_shop()
    from django.conf import settings
    from django.core.management import call_command
    from django.db.models import Count

    from storefront.celery import app
    from styletransfer import services
    from styletransfer.models import Rendition, Style

    styles = list(Style.objects.filter(active=True))
    app.control.purge()
    services.renditions_delete(renditions=Rendition.objects.filter(style__in=styles))
    log = Path(settings.MEDIA_ROOT).parent / "log" / "bench-recovery-worker.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_bytes(b"")
    worker = start_worker(log)
    started = time.monotonic()
    call_command("render_catalog", stdout=io.StringIO())  # requests every rendition, no wait
    current = Rendition.objects.filter(style__in=styles)
    total = current.count()
    held: dict[int, float] = {}  # rendition id -> when its worker was killed
    ready_at: dict[int, float] = {}
    try:
        while time.monotonic() - started < args.timeout:
            now = time.monotonic()
            if len(held) < args.kills:
                rendering = current.filter(status="rendering").exclude(pk__in=held).first()
                if rendering is not None and now - started > 5 * len(held):
                    os.killpg(worker.pid, signal.SIGKILL)
                    worker.wait(timeout=30)
                    held[rendering.pk] = time.monotonic()
                    worker = start_worker(log)
            for pk in current.filter(pk__in=held, status="ready").values_list("pk", flat=True):
                ready_at.setdefault(pk, time.monotonic())
            if len(held) >= args.kills and current.filter(status="ready").count() == total:
                break
            time.sleep(0.2)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
    elapsed = time.monotonic() - started
    ready = current.filter(status="ready").count()
    per_key = current.values("source_hash", "style", "style_version", "params_hash").annotate(
        n=Count("id")
    )
    duplicates = sum(row["n"] - 1 for row in per_key)
    attempts = dict(current.values_list("pk", "attempts"))
    twice = [pk for pk, n in attempts.items() if n > 1 and pk not in held]
    partial = list(Path(settings.MEDIA_ROOT).rglob("*.partial"))
    print(f"{total} renditions, {len(held)} workers SIGKILLed mid-render, no beat")
    for pk, killed in held.items():
        seconds = f"{ready_at[pk] - killed:.1f} s" if pk in ready_at else "not ready"
        print(f"  rendition {pk}: kill -> ready {seconds} (attempts {attempts.get(pk)})")
    print(
        f"  catalogue: {ready}/{total} ready in {elapsed:.0f} s; duplicate rows {duplicates}; "
        f"renders not held but rendered twice {len(twice)}; partial files {len(partial)}"
    )
    if ready != total or duplicates or twice or partial:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
