"""Helpers the loop's tests share: a small shop, stand-in embeddings, reading pages, and the
fixtures the pages' tests use (tests/styletransfer/test_shown.py imports them too)."""

import re

import numpy as np
import pytest
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.utils import timezone

from storefront.models import Category, Product
from stylerec.models import Decision, Event
from styletransfer import rendering, services
from styletransfer.models import Style
from tests.styletransfer.helpers import make_style, product_png

STYLE_SLUGS = ["ink", "sun", "sea"]
IMG = re.compile(r'<img [^>]*class="stylerec-image[^>]*>')


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def shop(db, django_capture_on_commit_callbacks):
    """Six products, three active styles with embeddings, every rendition ready."""
    return make_shop()


def fake_embedding(index: int, dim: int = 64) -> list[float]:
    """Stand-in for the VGG statistics the render worker computes (tested in styletransfer)."""
    rng = np.random.default_rng(index)
    return (np.abs(rng.normal(1.0, 0.5, dim)) + 0.1).round(5).tolist()


def give_embedding(style: Style, index: int) -> None:
    Style.objects.filter(pk=style.pk).update(
        embedding=fake_embedding(index), embedding_hash=style.reference_hash
    )
    style.refresh_from_db()


def make_shop() -> dict:
    category = Category.objects.create(name="Cups", slug="cups")
    products = []
    for number in range(6):
        product = Product(slug=f"cup-{number}", name=f"Cup {number}", price=5, category=category)
        product.image.save(
            f"cup{number}.png", ContentFile(product_png((40 * number, 120, 200))), save=True
        )
        products.append(product)
    styles = []
    for index, slug in enumerate(STYLE_SLUGS):
        style = make_style(slug, engine="color", active=True, seed=index)
        give_embedding(style, index)
        styles.append(style)
    sources = services.source_images_of(products)
    for source in sources.values():
        for style in styles:
            rendition = services.rendition_request(source=source, style=style)
            rendering.rendition_render(rendition_id=rendition.pk)
    return {"products": products, "styles": styles}


def add_category(shop: dict, name: str, count: int) -> list:
    """Products of another category in `shop`, with a ready rendition in each of its styles."""
    category = Category.objects.create(name=name, slug=name.lower())
    made = []
    for number in range(count):
        product = Product(
            slug=f"{category.slug}-{number}", name=f"{name} {number}", price=9, category=category
        )
        product.image.save(
            f"{category.slug}{number}.png",
            ContentFile(product_png((200, 40 * number, 90))),
            save=True,
        )
        made.append(product)
    for source in services.source_images_of(made).values():
        for style in shop["styles"]:
            rendition = services.rendition_request(source=source, style=style)
            rendering.rendition_render(rendition_id=rendition.pk)
    return made


def log_uniform_decisions(shopper, product, *, rounds: int = 40, clicked: str = "sun") -> None:
    """`rounds` uniform decisions per arm for one product; the shopper clicks one style."""
    arms = ["original", *STYLE_SLUGS]
    for _ in range(rounds):
        for arm in arms:
            decision = Decision.objects.create(
                shopper=shopper,
                product_id=str(product.pk),
                candidates=arms,
                probabilities=[1 / len(arms)] * len(arms),
                chosen=arm,
                propensity=1 / len(arms),
                model_version="test",
                policy="uniform",
            )
            if arm == clicked:
                Event.objects.create(
                    shopper=shopper,
                    kind="click",
                    decision=decision,
                    product_id=str(product.pk),
                    occurred_at=timezone.now(),
                )


def images(html: str) -> list[dict]:
    found = []
    for tag in IMG.findall(html):
        attrs = dict(re.findall(r'(data-[a-z]+|src)="([^"]*)"', tag))
        found.append(attrs)
    return found


def post_events(client, events, **extra):
    return client.post(
        "/api/v1/events/", {"events": events}, content_type="application/json", **extra
    )
