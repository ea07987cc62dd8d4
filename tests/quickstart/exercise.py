"""Run inside the throwaway project (its settings, its database, its workers running): what a
merchandiser and a shopper do first. Prints one line of JSON that the test reads."""

import io
import json
import os
import re
import sys
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "yourproject.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.files.base import ContentFile  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402
from shop.models import Product  # noqa: E402

from stylerec.tasks import fit  # noqa: E402
from styletransfer.models import Rendition  # noqa: E402

setup_test_environment()  # the test client's host name, and nothing else


def photo(seed: int) -> bytes:
    """An ordinary product photo: no transparency, no plain background."""
    image = Image.effect_noise((160, 120), 40 + seed * 10).convert("RGB")
    ImageDraw.Draw(image).rectangle([50, 30, 110, 90], fill=(200, 40 + seed * 40, 60))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def painting() -> bytes:
    image = Image.new("RGB", (96, 96), (30, 60, 140))
    draw = ImageDraw.Draw(image)
    for x in range(0, 96, 8):
        draw.line([(x, 0), (96 - x, 96)], fill=(240, 190, 30), width=3)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    buffer.name = "painting.jpg"
    buffer.seek(0)
    return buffer


def wait_for(what: str, done, timeout: float = 240.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := done():
            return result
        time.sleep(0.5)
    sys.exit(f"timed out waiting for {what}")


products = [
    Product.objects.create(name=f"Mug {i}", image=ContentFile(photo(i), name=f"mug{i}.jpg"))
    for i in range(3)
]
boss = get_user_model().objects.create_superuser("boss", password="quickstart-pw-1")
staff = Client()
staff.force_login(boss)

# A merchandiser adds a style through the staff API and activates it: the catalogue renders
# on the README's workers (the default queue batches it, the render queue renders it).
created = staff.post(
    "/api/v1/staff/styles/",
    {"name": "Warm", "slug": "warm", "engine": "color", "size": 128, "reference_image": painting()},
)
assert created.status_code == 201, created.content
style = created.json()
activated = staff.post(f"/api/v1/staff/styles/{style['id']}/activate/")
assert activated.status_code == 200, activated.content


def renders_settled():
    statuses = list(Rendition.objects.values_list("status", flat=True))
    if len(statuses) == len(products) and set(statuses) <= {"ready", "failed"}:
        return statuses
    return None


statuses = wait_for("the catalogue's renders", renders_settled)

shopper = Client()
styles = shopper.get("/api/v1/styles/")
page = shopper.get("/")
html = page.content.decode()
shown = re.findall(r'data-decision="(\d+)"[^>]*data-product="(\d+)"', html)
if not shown:  # the attributes' order is the tag's business, not the test's
    shown = [(d, p) for p, d in re.findall(r'data-product="(\d+)"[^>]*data-decision="(\d+)"', html)]
events = [
    {"type": kind, "decision": int(decision), "product": product}
    for decision, product in shown
    for kind in ("impression", "click")
]
ingested = shopper.post("/api/v1/events/", {"events": events}, content_type="application/json")
listing = shopper.get("/api/v1/products/")
schema = shopper.get("/api/schema/", {"format": "json"})
docs = shopper.get("/api/docs/")
fit.delay()  # the default queue's worker fits (the test reads its log)

print(
    "QUICKSTART",
    json.dumps(
        {
            "renditions": statuses,
            "errors": list(Rendition.objects.exclude(error="").values_list("error", flat=True)),
            "styles": [s["slug"] for s in styles.json()],
            "page": page.status_code,
            "images": len(shown),
            "beacon": "/api/v1/events/" in html,
            "events": ingested.status_code,
            "ingested": ingested.json(),
            "products": listing.status_code,
            "personalized": [p["personalized"]["style"] for p in listing.json()["results"]],
            "schema": schema.status_code,
            "schema_title": schema.json()["info"]["title"] if schema.status_code == 200 else None,
            "docs": docs.status_code,
        }
    ),
)
