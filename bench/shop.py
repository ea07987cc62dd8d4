"""Shared set-up for the loop's benchmarks: a seeded demo shop on its own PostgreSQL database.

Renditions and style embeddings are made in-process with the real engines (the demo's
fast `color` engine), then the preference model is fitted, so the chooser has real
candidates. BENCH_DATABASE_URL picks the database (default stylerec_bench on localhost).
"""

import http.client
import io
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/stylerec_bench"
)

PORT = int(os.environ.get("BENCH_PORT", "18765"))  # another port when benches run side by side


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ["DATABASE_URL"] = DATABASE_URL
    os.environ.setdefault("STOREFRONT_VAR_DIR", str(ROOT / "var" / "bench"))
    os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "0")
    os.environ["DJANGO_SETTINGS_MODULE"] = "storefront.settings"
    import django

    django.setup()


def ensure_database() -> None:
    """Create the bench database if needed (connecting to the server's `postgres` database)."""
    import psycopg

    name = DATABASE_URL.rsplit("/", 1)[1]
    server = DATABASE_URL.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(server, autocommit=True) as connection:
        exists = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [name]
        ).fetchone()
        if not exists:
            connection.execute(f'CREATE DATABASE "{name}"')


def seeded_shop() -> None:
    """Migrate, seed, render every active style and fit, all in this process."""
    ensure_database()
    setup_django()
    from django.core.management import call_command

    from stylerec.fitting import preference_fit_full
    from styletransfer import rendering, services
    from styletransfer.models import Rendition, Style

    call_command("migrate", verbosity=0)
    call_command("seed_demo", stdout=io.StringIO())
    for style in Style.objects.filter(embedding__isnull=True):
        rendering.style_compute_embedding(style=style)
    for style in Style.objects.filter(active=True):
        after = None
        while True:
            after = services.style_render_catalog(style=style, after_pk=after)
            if after is None:
                break
    for pk in Rendition.objects.filter(status="pending").values_list("pk", flat=True):
        rendering.rendition_render(rendition_id=pk)
    preference_fit_full()


def start_server(workers: int) -> subprocess.Popen:
    """gunicorn serving the demo shop on the bench database at 127.0.0.1:PORT."""
    probe = http.client.HTTPConnection("127.0.0.1", PORT, timeout=1)
    try:
        probe.request("GET", "/")
    except OSError:
        pass  # nothing listens: good
    else:
        raise RuntimeError(f"port {PORT} is taken: the benchmark must measure its own server")
    env = {
        **os.environ,
        "DATABASE_URL": DATABASE_URL,
        "LOG_LEVEL": "WARNING",
        "THROTTLE_EVENTS": "1000000/min",
        "DJANGO_SETTINGS_MODULE": "storefront.settings",
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "storefront.wsgi",
            "-w",
            str(workers),
            "-b",
            f"127.0.0.1:{PORT}",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    for _ in range(100):
        try:
            http.client.HTTPConnection("127.0.0.1", PORT, timeout=1).request("GET", "/admin/login/")
            return server
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not start")
