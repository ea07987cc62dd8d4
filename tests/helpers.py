"""Paths every test package uses, and running the demo shop's settings in a fresh process."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
# What bin/test and the browser tests set for the suite; a fresh process without them gets
# the embedded default.
SUITE_ONLY = {
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "CACHE_URL",
    "DJANGO_DEBUG",
    "MEDIA_ROOT",
    "DJANGO_ALLOW_ASYNC_UNSAFE",
}


def run_with_shop_settings(args: list[str], env: dict) -> subprocess.CompletedProcess:
    """`python <args>` in the repository with storefront.settings, the suite's services left
    out (the embedded default) and `env` on top; its output is captured, as text."""
    clean = {k: v for k, v in os.environ.items() if k not in SUITE_ONLY}
    return subprocess.run(
        [sys.executable, *args],
        env={**clean, "DJANGO_SETTINGS_MODULE": "storefront.settings", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
