"""The README's "Embedding the apps in your shop", executed: a project fresh from
`django-admin startproject`, the README's snippets applied as written (read from README.md
by their marker comments), migrated on PostgreSQL, the README's workers started; then a page
with the tags, the events, styles and products APIs, the schema, a render and a fit.
When the README changes, this test follows it."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

from tests.helpers import SUITE_ONLY

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "tests" / "quickstart"
SNIPPET = re.compile(r"<!-- quickstart: (?P<name>[^>]+?) -->\n```[a-z]*\n(?P<code>.*?)```", re.S)
SNIPPETS = {"settings.py", "celery.py", "__init__.py", "urls.py", "template", "workers"}


def readme_snippets() -> dict[str, str]:
    return {m["name"]: m["code"] for m in SNIPPET.finditer((ROOT / "README.md").read_text())}


def test_the_readme_marks_every_snippet_the_quickstart_applies():
    snippets = readme_snippets()
    assert set(snippets) == SNIPPETS
    settings_lines = [line for line in snippets["settings.py"].splitlines() if line.strip()]
    assert len(settings_lines) <= 10, "the issue's target: at most 10 settings lines"
    assert len(snippets["urls.py"].strip().splitlines()) <= 3, "one import, one URL line"


def test_the_readme_names_only_settings_the_apps_know():
    from stylerec.conf import DEFAULTS as STYLEREC_DEFAULTS
    from styletransfer.conf import DEFAULTS as STYLETRANSFER_DEFAULTS

    namespace: dict = {"INSTALLED_APPS": [], "MIDDLEWARE": []}
    exec(readme_snippets()["settings.py"], namespace)  # noqa: S102 - the README's own text
    assert set(namespace["STYLETRANSFER"]) <= set(STYLETRANSFER_DEFAULTS)
    assert set(namespace["STYLEREC"]) <= set(STYLEREC_DEFAULTS)
    assert namespace["CELERY_BEAT_SCHEDULE"], "beat's entries come with the import"


# --- The whole quickstart ----------------------------------------------------------------------


def quickstart_database() -> dict:
    db = dict(settings.DATABASES["default"])
    if not db["ENGINE"].endswith("postgresql"):
        pytest.fail("The quickstart runs on PostgreSQL: run it with bin/test.")
    # Beside the suite's test database, never in it: named after the developer's database.
    name = re.sub(r"^test_", "", db["NAME"]) + "_quickstart"
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


def environment_block(db: dict, media: Path) -> str:
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
INSTALLED_APPS += ["shop"]
DATABASES = {{"default": {database!r}}}
CELERY_BROKER_URL = {settings.CELERY_BROKER_URL!r}
CACHES["default"]["LOCATION"] = {cache!r}
CACHES["default"]["KEY_PREFIX"] = "quickstart"
MEDIA_ROOT = {str(media)!r}
"""


def build_project(tmp: Path, db: dict) -> Path:
    snippets = readme_snippets()
    subprocess.run(
        [sys.executable, "-m", "django", "startproject", "yourproject", str(tmp)], check=True
    )
    package = tmp / "yourproject"
    with open(package / "settings.py", "a") as fh:
        fh.write("\n" + snippets["settings.py"] + environment_block(db, tmp / "media"))
    (package / "celery.py").write_text(snippets["celery.py"])
    with open(package / "__init__.py", "a") as fh:
        fh.write(snippets["__init__.py"])
    with open(package / "urls.py", "a") as fh:
        fh.write("\n" + snippets["urls.py"])
        # The shop's own page (its URL, not the README's).
        fh.write("from shop.views import catalogue\n\nurlpatterns += [path('', catalogue)]\n")
    shop = tmp / "shop"
    (shop / "templates" / "shop").mkdir(parents=True)
    (shop / "__init__.py").write_text("")
    shutil.copy(HERE / "shop_models.py", shop / "models.py")
    shutil.copy(HERE / "shop_views.py", shop / "views.py")
    (shop / "templates" / "shop" / "catalogue.html").write_text(
        "<!doctype html><html><body>\n" + snippets["template"] + "</body></html>\n"
    )
    shutil.copy(HERE / "exercise.py", tmp / "exercise.py")
    return tmp


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


def start_worker(project: Path, command: str, log: Path) -> subprocess.Popen:
    """A worker line of the README, as written, with INFO logging so its log can be read."""
    argv = command.split("#")[0].split()
    assert argv[:3] == ["celery", "-A", "yourproject"], argv
    process = subprocess.Popen(
        [sys.executable, "-m", *argv, "--loglevel", "INFO"],
        cwd=project,
        env=project_env(),
        stdout=open(log, "wb"),  # noqa: SIM115 - the worker keeps writing to it
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while b"ready." not in log.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"worker did not start: {command}\n{log.read_text()[-3000:]}")
        time.sleep(0.3)
    return process


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.mark.slow
@pytest.mark.worker
def test_a_new_project_gets_personalized_pages_by_the_readme_alone(tmp_path):
    db = quickstart_database()
    recreate(db)
    project = build_project(tmp_path, db)
    workers: list[subprocess.Popen] = []
    try:
        checked = manage(project, "check")
        assert checked.returncode == 0 and "no issues" in checked.stdout, checked.stderr
        made = manage(project, "makemigrations", "shop")  # the shop's own migration
        assert made.returncode == 0, made.stderr
        migrated = manage(project, "migrate", "-v0")
        assert migrated.returncode == 0, migrated.stderr
        assert (
            manage(
                project, "shell", "-c", "from yourproject.celery import app; app.control.purge()"
            ).returncode
            == 0
        )
        render_line, default_line = [
            line for line in readme_snippets()["workers"].splitlines() if " worker " in line
        ]
        workers.append(start_worker(project, render_line, tmp_path / "render.log"))
        workers.append(start_worker(project, default_line, tmp_path / "default.log"))

        run = manage(project, "shell", "-c", "exec(open('exercise.py').read())")
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        (line,) = [line for line in run.stdout.splitlines() if line.startswith("QUICKSTART ")]
        outcome = json.loads(line.removeprefix("QUICKSTART "))

        default_log = tmp_path / "default.log"
        deadline = time.monotonic() + 120
        while not re.search(r"Task stylerec\.fit\[[^\]]+\] succeeded", default_log.read_text()):
            assert time.monotonic() < deadline, default_log.read_text()[-3000:]
            time.sleep(0.5)
    finally:
        for worker in workers:
            stop(worker)
        recreate(db, create=False)
    render_log = (tmp_path / "render.log").read_text()

    assert outcome["renditions"] == ["ready"] * 3, outcome["errors"]
    assert "Task styletransfer.render_rendition" in render_log, "renders on the render queue"
    assert outcome["styles"] == ["warm"]
    assert (outcome["page"], outcome["images"], outcome["beacon"]) == (200, 3, True)
    assert outcome["events"] == 202 and outcome["ingested"]["stored"] == 6, outcome
    assert outcome["products"] == 200
    assert set(outcome["personalized"]) <= {"original", "warm"}
    assert (outcome["schema"], outcome["schema_title"], outcome["docs"]) == (
        200,
        "StyleRec API",
        200,
    )
