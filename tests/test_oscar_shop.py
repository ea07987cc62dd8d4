"""django-oscar 4.2, first-class: a shop set up as Oscar's docs have it, given the apps by
the README's lines (its django-oscar recipe included, read from README.md), shows personalized
cards on its catalogue and search pages, renders a photo replaced in ProductImage again, and
records add-to-basket and orders as events joined to the decisions the shopper saw."""

import json
import shutil
import subprocess
import sys

import pytest

from tests.quickstart.project import (
    HERE,
    environment_block,
    manage,
    quickstart_database,
    readme_snippets,
    recreate,
)

OSCAR_URLS = """
from django.apps import apps
from django.urls import include

urlpatterns += [path("", include(apps.get_app_config("oscar").urls[0]))]
"""
TEMPLATES = (
    "oscar templates/oscar/catalogue/partials/product.html",
    "oscar templates/oscar/layout.html",
)


def build_oscar_project(tmp, db):
    snippets = readme_snippets()
    subprocess.run(
        [sys.executable, "-m", "django", "startproject", "yourproject", str(tmp)], check=True
    )
    package = tmp / "yourproject"
    with open(package / "settings.py", "a") as fh:
        fh.write("\n" + (HERE / "oscar_settings.py").read_text())
        fh.write("\n" + snippets["settings.py"] + "\n" + snippets["oscar settings.py"])
        fh.write(
            environment_block(db, tmp / "media", apps=[], extra="CELERY_TASK_ALWAYS_EAGER = True\n")
        )
    (package / "celery.py").write_text(snippets["celery.py"])
    with open(package / "__init__.py", "a") as fh:
        fh.write(snippets["__init__.py"])
    with open(package / "urls.py", "a") as fh:
        fh.write(OSCAR_URLS + "\n" + snippets["urls.py"])
    for name in TEMPLATES:
        path = tmp / name.removeprefix("oscar ")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(snippets[name])
    shutil.copy(HERE / "oscar_exercise.py", tmp / "exercise.py")


@pytest.mark.slow
def test_an_oscar_shop_is_personalized_and_records_baskets_and_orders(tmp_path):
    db = quickstart_database("_oscar")
    recreate(db)
    try:
        build_oscar_project(tmp_path, db)
        checked = manage(tmp_path, "check")
        assert checked.returncode == 0 and "no issues" in checked.stdout, checked.stderr
        migrated = manage(tmp_path, "migrate", "-v0")
        assert migrated.returncode == 0, migrated.stderr[-3000:]
        run = manage(tmp_path, "shell", "-c", "exec(open('exercise.py').read())")
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    finally:
        recreate(db, create=False)
    (line,) = [line for line in run.stdout.splitlines() if line.startswith("OSCAR ")]
    outcome = json.loads(line.removeprefix("OSCAR "))
    products = set(outcome["products"])

    assert outcome["ready_before"] == 3, outcome["errors"]
    assert outcome["catalogue"] == 200 and set(outcome["catalogue_shown"]) == products
    assert set(outcome["catalogue_shown"].values()) <= {"original", "warm"}
    assert outcome["beacon"]
    assert outcome["search"] == 200 and set(outcome["search_shown"]) == products
    assert outcome["photo_changed"] and outcome["new_rendition"] == 1
    assert outcome["old_files_on_page"] == [], "the replaced photo's rendition is never shown"
    second, third = outcome["products"][1:]
    assert outcome["basket_add"] == 302
    first = outcome["products"][0]
    assert outcome["guest_basket_add"] == 302 and outcome["guest_order"], outcome["guest_checkout"]
    # Mugs at 12.00 (Oscar's default strategy: no tax), in Oscar's default currency.
    assert outcome["events"] == [
        ["add_to_cart", first, True, "24.0000", "GBP"],  # the guest's two mugs
        ["purchase", first, True, "24.0000", "GBP"],  # the guest's order, from its session
        ["add_to_cart", second, True, "24.0000", "GBP"],
        ["purchase", third, True, "12.0000", "GBP"],  # the account's order of one
    ]
