"""The template tags on live pages: whatever a shop's template hands them, the page renders."""

import logging
from types import SimpleNamespace

from django.template import Context, Template
from django.test import RequestFactory

from stylerec.serving import chooser
from tests.testshop.models import Item

TAGS = "{% load stylerec %}"


def render(source: str, **values) -> str:
    request = RequestFactory().get("/")
    request.session = {}
    request.user = SimpleNamespace(is_authenticated=False)
    return Template(TAGS + source).render(Context({"request": request, **values}))


def test_search_results_wrapping_products_are_unwrapped(shop, caplog):
    product = shop["products"][0]
    results = [SimpleNamespace(object=p, score=1.0) for p in shop["products"]]
    html = render(
        "{% personalize results %}{% for r in results %}{% personalized_image r %}{% endfor %}",
        results=results,
    )
    assert html.count("<img ") == len(shop["products"])
    assert f'data-product="{product.pk}"' in html
    assert 'data-decision=""' not in html, "each wrapped product got its decision"


def test_things_that_are_no_product_render_nothing_and_are_logged_once(shop, caplog):
    odd = [None, {"name": "a dict"}, "text", SimpleNamespace(object=None)]
    with caplog.at_level(logging.WARNING, logger="stylerec.templatetags.stylerec"):
        html = render(
            "{% personalize odd %}{% for o in odd %}[{% personalized_image o %}"
            "{% personalized_url o %}]{% endfor %}",
            odd=odd,
        )
    assert html == "[][][][]"
    kinds = [r.getMessage() for r in caplog.records if "left unpersonalized" in r.getMessage()]
    assert len(kinds) == 4, "one warning per kind of object, not per tag"


def test_a_product_without_a_url_gets_an_empty_link(db, settings, caplog):
    settings.STYLETRANSFER = {
        "PRODUCT_MODEL": "testshop.Item",
        "PRODUCT_IMAGES": "tests.testshop.models.item_photos",
    }
    settings.STYLEREC = {"PRODUCT_MODEL": "testshop.Item"}
    item = Item.objects.create(sku="lamp-1", title="Lamp")  # Item has no get_absolute_url
    assert render("{% personalized_url item %}", item=item) == ""
    assert any("has no URL" in r.getMessage() for r in caplog.records)


def test_a_failing_chooser_still_shows_the_original_photos(shop, monkeypatch, caplog):
    def broken(**kwargs):
        if kwargs.get("shopper") is not None:
            raise RuntimeError("the cache exploded")
        return real(**kwargs)

    real = chooser.choose_images
    monkeypatch.setattr("stylerec.templatetags.stylerec.choose_images", broken)
    html = render("{% personalized_image p %}", p=shop["products"][0])
    assert 'data-style="original"' in html and "cup0" in html
    assert any("Could not personalize" in r.getMessage() for r in caplog.records)
