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

import pytest

from tests.quickstart.project import (
    HERE,
    environment_block,
    manage,
    project_env,
    quickstart_database,
    readme_snippets,
    recreate,
)

SNIPPETS = {
    "settings.py",
    "celery.py",
    "__init__.py",
    "urls.py",
    "template",
    "workers",
    "oscar settings.py",
    "oscar templates/oscar/catalogue/partials/product.html",
    "oscar templates/oscar/layout.html",
    "widths settings.py",  # tests/styletransfer/test_widths.py
    "widths template",
}


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


def build_project(tmp: Path, db: dict) -> Path:
    snippets = readme_snippets()
    subprocess.run(
        [sys.executable, "-m", "django", "startproject", "yourproject", str(tmp)], check=True
    )
    package = tmp / "yourproject"
    with open(package / "settings.py", "a") as fh:
        fh.write(
            "\n" + snippets["settings.py"] + environment_block(db, tmp / "media", apps=["shop"])
        )
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
        # The database is new, so the broker's queue and the cache must be too: a cache that
        # outlived an earlier run's database would hand pages that database's assignments.
        fresh = "from yourproject.celery import app; app.control.purge(); cache.clear()"
        fresh = "from django.core.cache import cache; " + fresh
        assert manage(project, "shell", "-c", fresh).returncode == 0
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
    # An activation renders the catalogue in batches; single renders are for misses and retries.
    assert re.search(r"Task styletransfer\.render_(batch|rendition)\[", render_log), (
        "renders on the render queue"
    )
    assert outcome["styles"] == ["warm"]
    assert (outcome["page"], outcome["images"], outcome["beacon"]) == (200, 3, True)
    assert outcome["events"] == 202 and outcome["ingested"]["stored"] == 6, outcome["ingested"]
    assert outcome["products"] == 200
    assert set(outcome["personalized"]) <= {"original", "warm"}
    assert (outcome["schema"], outcome["schema_title"], outcome["docs"]) == (
        200,
        "StyleRec API",
        200,
    )
