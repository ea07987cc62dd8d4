"""Fixtures shared by the whole suite: seeded catalogue, a real Celery worker, a real browser."""

import io
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session", autouse=True)
def clean_media_root():
    """Each run starts with an empty media folder, so stored files from old runs never mask bugs."""
    shutil.rmtree(settings.MEDIA_ROOT, ignore_errors=True)
    Path(settings.MEDIA_ROOT).mkdir(parents=True, exist_ok=True)


@pytest.fixture(autouse=True)
def close_decision_logs():
    """The decision log's own connections would keep the test database from being dropped."""
    yield
    from stylerec.serving import decision_log

    decision_log.close()


@pytest.fixture
def seeded(db):
    call_command("seed_demo", stdout=io.StringIO())


def _worker_env() -> dict:
    """The worker talks to the test database that pytest-django created, not the dev one."""
    from django.db import connection

    env = dict(os.environ)
    db = connection.settings_dict
    if db["ENGINE"].endswith("postgresql"):
        env["DATABASE_URL"] = (
            f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        )
    else:
        env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
    env["MEDIA_ROOT"] = str(settings.MEDIA_ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class WorkerProcess:
    """A real `celery worker` subprocess; tests may kill and restart it."""

    def __init__(self, log_path: Path):
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self, queues: str = "render,default", env: dict | None = None) -> None:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")  # noqa: SIM115 - the worker keeps writing to it
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "storefront",
                "worker",
                "-Q",
                queues,
                "--pool",
                "solo",
                "--loglevel",
                "INFO",
                "-n",
                f"test-{os.getpid()}@%h",
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=ROOT,
            env={**_worker_env(), **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while b"ready." not in self.log_path.read_bytes()[offset:]:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Celery worker did not start:\n{self.log_tail()}")
            time.sleep(0.2)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:  # a warm shutdown waits for the task in hand
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=15)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture
def celery_worker(transactional_db, tmp_path):
    """A real worker on the real broker (CELERY_BROKER_URL), started fresh for one test."""
    if settings.CELERY_BROKER_URL.startswith("filesystem"):
        pytest.fail("Worker tests need a real broker: run them with bin/test (Redis).")
    from storefront.celery import app

    app.control.purge()
    worker = WorkerProcess(tmp_path / "worker.log")
    worker.start()
    yield worker
    worker.kill(signal.SIGTERM)


@pytest.fixture(scope="session")
def browser():
    """Debian's headless Chromium driven by Playwright."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Browser tests need Chromium at {CHROMIUM} (apt-get install chromium).")
    # Playwright's sync API runs an event loop in this thread; the ORM calls made by the
    # test itself are still synchronous and safe.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh browser context and page; console errors are collected on page.console_errors."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    new_page = context.new_page()
    new_page.console_errors = []
    new_page.on(
        "console", lambda msg: msg.type == "error" and new_page.console_errors.append(msg.text)
    )
    new_page.on("pageerror", lambda exc: new_page.console_errors.append(str(exc)))
    yield new_page
    context.close()


@pytest.fixture
def broker_down(monkeypatch):
    """Point the Celery app at a port where no broker listens; call the result to restore it."""
    from storefront.celery import app
    from styletransfer import broker

    def reconnect(url: str | None) -> None:
        # Celery reads CELERY_BROKER_URL from the environment before its own settings.
        if url is None:
            monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
        else:
            monkeypatch.setenv("CELERY_BROKER_URL", url)
        # Drop (not close: other objects still hold them) the pools bound to the old URL.
        app._pool = None
        app.amqp._producer_pool = None
        broker.reset()

    original = os.environ.get("CELERY_BROKER_URL")
    reconnect("redis://127.0.0.1:1/0")
    assert app.conf.broker_url == "redis://127.0.0.1:1/0"
    yield lambda: reconnect(original)
    reconnect(original)
