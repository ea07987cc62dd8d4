"""A throwaway Django project for the README's snippets: where they are in README.md, its
own PostgreSQL database, and running its manage.py in a process of its own."""

import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

from tests.helpers import SUITE_ONLY

ROOT = Path(__file__).resolve().parent.parent.parent
HERE = ROOT / "tests" / "quickstart"
SNIPPET = re.compile(r"<!-- quickstart: (?P<name>[^>]+?) -->\n```[a-z]*\n(?P<code>.*?)```", re.S)


def readme_snippets() -> dict[str, str]:
    return {m["name"]: m["code"] for m in SNIPPET.finditer((ROOT / "README.md").read_text())}


def quickstart_database(suffix: str = "_quickstart") -> dict:
    db = dict(settings.DATABASES["default"])
    if not db["ENGINE"].endswith("postgresql"):
        pytest.fail("The quickstart runs on PostgreSQL: run it with bin/test.")
    # Beside the suite's test database, never in it: named after the developer's database.
    name = re.sub(r"^test_", "", db["NAME"]) + suffix
    return {**db, "NAME": name}


def recreate(db: dict, *, create: bool = True) -> None:
    with psycopg.connect(
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        user=db["USER"],
        dbname="postgres",
        autocommit=True,
    ) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{db["NAME"]}" WITH (FORCE)')
        if create:
            connection.execute(f'CREATE DATABASE "{db["NAME"]}"')


def environment_block(db: dict, media: Path, *, apps: list[str], extra: str = "") -> str:
    """The test's own environment, appended after the README's lines: a database, Redis
    databases and media folder of its own (the README's URLs would be a developer's)."""
    cache = os.environ.get("CACHE_URL", "redis://127.0.0.1:6379/1")
    database = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": db["NAME"],
        "USER": db["USER"],
        "HOST": db["HOST"] or "127.0.0.1",
        "PORT": db["PORT"] or 5432,
    }
    return f"""
# --- The test's environment, not the README's.
INSTALLED_APPS += {apps!r}
DATABASES = {{"default": {database!r}}}
CELERY_BROKER_URL = {settings.CELERY_BROKER_URL!r}
CACHES["default"]["LOCATION"] = {cache!r}
CACHES["default"]["KEY_PREFIX"] = "quickstart"
MEDIA_ROOT = {str(media)!r}
{extra}"""


def project_env() -> dict:
    """Nothing of the suite's settings: the project reads its own; the apps come from this
    checkout as `pip install .` would bring them."""
    clean = {k: v for k, v in os.environ.items() if k not in SUITE_ONLY}
    clean.pop("DJANGO_SETTINGS_MODULE", None)
    return {**clean, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


def manage(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=project,
        env=project_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
