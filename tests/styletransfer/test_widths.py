"""Renditions at the widths a shop shows them at: stored once each, named in srcset only when
they exist, picked by width on pages and listed per width by the API."""

import io
import re

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.template import Context, Template
from django.test import Client, RequestFactory
from PIL import Image

from styletransfer import batching, checks, rendering, services
from styletransfer.models import Rendition, Style
from tests.quickstart.project import readme_snippets
from tests.stylerec import helpers
from tests.stylerec.api_client import app_install

from .helpers import make_style

fresh_cache = helpers.fresh_cache
pytestmark = pytest.mark.django_db


def readme_widths(settings) -> list[int]:
    """Apply the README's widths line to the suite's settings, as a shop pastes it."""
    namespace = {"STYLETRANSFER": dict(settings.STYLETRANSFER)}
    exec(readme_snippets()["widths settings.py"], namespace)  # noqa: S102 - the README's text
    settings.STYLETRANSFER = namespace["STYLETRANSFER"]
    return namespace["STYLETRANSFER"]["WIDTHS"]


def stored_size(name: str) -> tuple[int, int]:
    with default_storage.open(name, "rb") as fh:
        return Image.open(fh).size


def test_a_render_stores_every_width_scaled_down_from_the_largest(settings):
    widths = readme_widths(settings)
    assert widths == [400, 1000]
    style = make_style("wide", engine="color", size=96)
    assert style.render_params().size == 1000, "the largest width decides the render's size"
    shop = helpers.make_shop()  # renders its three styles at these widths
    rendition = Rendition.objects.filter(style__slug="ink").first()
    assert rendition.status == "ready", rendition.error
    assert (rendition.width, rendition.height) == (1000, 1000)
    assert stored_size(rendition.file.name) == (1000, 1000)
    assert [v[:2] for v in rendition.variants] == [[400, 400]]
    assert stored_size(rendition.variants[0][2]) == (400, 400)
    # The smaller file is the larger one scaled down: the same strokes, not another render.
    with default_storage.open(rendition.file.name, "rb") as fh:
        scaled = Image.open(fh).convert("RGB").resize((400, 400), Image.Resampling.LANCZOS)
    with default_storage.open(rendition.variants[0][2], "rb") as fh:
        stored = Image.open(fh).convert("RGB")
    difference = sum(abs(a - b) for a, b in zip(scaled.tobytes(), stored.tobytes(), strict=True))
    assert difference / len(stored.tobytes()) < 3, "JPEG rounding only"
    assert Rendition.objects.filter(status="ready").count() == 3 * len(shop["products"])


def test_a_portrait_photo_stores_the_widths_below_its_own(settings):
    settings.STYLETRANSFER = {**settings.STYLETRANSFER, "WIDTHS": [40, 80, 120]}
    style = make_style("tall", engine="color")
    product = helpers.make_shop()["products"][0]
    tall = Image.new("RGB", (60, 120), (200, 30, 30))
    with default_storage.open(product.image.name, "wb") as fh:
        tall.save(fh, "PNG")
    product.save()  # the new photo is hashed again
    source = services.source_images_sync(product=product)[0]
    rendition = rendering.rendition_render(
        rendition_id=services.rendition_request(source=source, style=style).pk
    )
    assert (rendition.width, rendition.height) == (60, 120), "120 px is its longest side"
    assert [v[:2] for v in rendition.variants] == [[40, 80]], "no variant as wide as the file"


def test_a_batch_stores_the_widths_a_single_render_stores(settings):
    settings.STYLETRANSFER = {**settings.STYLETRANSFER, "WIDTHS": [32, 64]}
    shop = helpers.make_shop()
    sources = services.source_images_of(shop["products"][:2])
    fields = {"engine": "feedforward", "size": 64}
    batched = make_style("batched", **fields)
    single = make_style("single", **fields)
    ids = [services.rendition_request(source=s, style=batched).pk for s in sources.values()]
    assert sorted(batching.renditions_render_batch(rendition_ids=ids).ready) == sorted(ids)
    for source in sources.values():
        one = rendering.rendition_render(
            rendition_id=services.rendition_request(source=source, style=single).pk
        )
        many = Rendition.objects.get(style=batched, source_hash=source.content_hash)
        assert [v[:2] for v in many.variants] == [v[:2] for v in one.variants] == [[32, 32]]
        assert many.variants[0][2].replace("batched", "single") == one.variants[0][2]
        assert default_storage.exists(many.variants[0][2])


def test_deleting_renditions_deletes_every_width(settings, django_capture_on_commit_callbacks):
    settings.STYLETRANSFER = {**settings.STYLETRANSFER, "WIDTHS": [48, 96]}
    helpers.make_shop()
    renditions = Rendition.objects.filter(style__slug="sea")
    names = [n for r in renditions for n in [r.file.name, *(v[2] for v in r.variants)]]
    assert len(names) == 12 and all(default_storage.exists(n) for n in names)
    with django_capture_on_commit_callbacks(execute=True):
        services.renditions_delete(renditions=renditions)
    assert not any(default_storage.exists(n) for n in names)


def test_changing_the_widths_renders_every_style_again(
    settings, django_capture_on_commit_callbacks
):
    style = make_style("rekeyed", engine="color", active=True)
    assert services.styles_rekey() == 0, "nothing changed"
    settings.STYLETRANSFER = {**settings.STYLETRANSFER, "WIDTHS": [64, 128]}
    with django_capture_on_commit_callbacks(execute=False) as sent:
        assert services.styles_rekey() == 1
    style.refresh_from_db()
    assert style.version == 2 and style.render_params().size == 128
    assert sent, "the active style's catalogue render is sent"
    assert services.styles_rekey() == 0, "once"
    settings.STYLETRANSFER = {**settings.STYLETRANSFER, "WIDTHS": []}
    assert services.styles_rekey() == 1
    style.refresh_from_db()
    assert style.render_params().size == style.size == 96


def test_keys_made_before_widths_hold():
    style = make_style("old-key", engine="color")
    before = style.params_hash
    style.save()
    assert Style.objects.get(pk=style.pk).params_hash == before and style.version == 1


@pytest.mark.parametrize(
    "widths",
    [[400, "1000"], "400,1000", [0], [True], [5000], list(range(100, 1000, 100))],
)
def test_widths_that_are_no_widths_are_named_by_a_check(settings, widths):
    settings.STYLETRANSFER = {**settings.STYLETRANSFER, "WIDTHS": widths}
    assert [e.id for e in checks._check_widths(None)] == ["styletransfer.E010"]


def render(source: str, user_agent: str = "Mozilla/5.0", **values) -> str:
    request = RequestFactory().get("/", HTTP_USER_AGENT=user_agent)
    request.session = {}
    request.user = AnonymousUser()
    return Template("{% load stylerec %}" + source).render(Context({"request": request, **values}))


IMG = re.compile(r"<img [^>]*>")


def attributes(tag: str) -> dict:
    return dict(re.findall(r'([a-z-]+)="([^"]*)"', tag))


def styled_pages(template: str, products, tries: int = 8) -> list[dict]:
    """Images of pages for new shoppers until one shows a rendition (exploration draws)."""
    found = []
    for _ in range(tries):
        found += [attributes(t) for t in IMG.findall(render(template, products=products))]
        if any(i["data-style"] != "original" for i in found):
            return found
    raise AssertionError("no page showed a rendition")


def test_the_tag_picks_the_width_that_covers_the_slot_and_lists_them_all(settings):
    settings.STYLETRANSFER = {**settings.STYLETRANSFER, "WIDTHS": [48, 96, 160]}
    products = helpers.make_shop()["products"]
    tags = "{% for p in products %}{% personalized_image p width=90 %}{% endfor %}"
    for image in styled_pages(tags, products):
        if image["data-style"] == "original":
            assert "srcset" not in image, "an original with one size has no srcset"
            continue
        srcset = [entry.split(" ") for entry in image["srcset"].split(", ")]
        assert [w for _, w in srcset] == ["48w", "96w", "160w"]
        assert image["src"] == srcset[1][0] and image["src"].endswith("-w96.jpg")
        assert (image["width"], image["height"], image["sizes"]) == ("96", "96", "90px")
        for url, _ in srcset:
            assert Client().get(url).status_code == 200, url


def test_the_readme_tags_render_as_written(settings):
    readme_widths(settings)
    products = helpers.make_shop()["products"]
    template = readme_snippets()["widths template"]
    images = styled_pages("{% for product in products %}" + template + "{% endfor %}", products)
    styled = [i for i in images if i["data-style"] != "original"]
    assert styled
    for image in styled:
        assert image["srcset"].endswith(" 1000w") and "-w400.jpg 400w" in image["srcset"]
    grid = styled[0::2]  # the snippet's two tags alternate: grid cell, product page
    assert all(i["src"].endswith("-w400.jpg") for i in grid)
    assert all(i["sizes"] == "(max-width: 700px) 100vw, 50vw" for i in styled[1::2])


def test_a_pipeline_that_takes_a_width_gives_originals_a_srcset(settings):
    settings.STYLETRANSFER = {
        **settings.STYLETRANSFER,
        "WIDTHS": [200, 400],
        "ORIGINAL_URL": "tests.testshop.models.thumbnail_url",
    }
    product = helpers.make_shop()["products"][0]
    crawler = "Mozilla/5.0 (compatible; Googlebot/2.1)"  # sees originals, logs nothing
    tag = attributes(render("{% personalized_image p sizes='50vw' %}", crawler, p=product))
    name = product.image.name
    assert tag["data-style"] == "original"
    assert tag["srcset"] == f"/thumbnails/200x200/{name} 200w, /thumbnails/400x400/{name} 400w"
    assert tag["src"] == f"/thumbnails/400x400/{name}"


@pytest.mark.parametrize("width", ["", "wide", -4, None, "1e9"])
def test_a_width_that_is_no_width_renders_the_largest_image(settings, width):
    settings.STYLETRANSFER = {**settings.STYLETRANSFER, "WIDTHS": [48, 96]}
    products = helpers.make_shop()["products"]
    html = render(
        "{% for p in products %}{% personalized_image p width=w %}{% endfor %}",
        products=products,
        w=width,
    )
    for image in map(attributes, IMG.findall(html)):
        assert "-w48" not in image["src"]
        assert "srcset" not in image


def test_the_api_lists_each_width(settings):
    settings.STYLETRANSFER = {**settings.STYLETRANSFER, "WIDTHS": [48, 96]}
    helpers.make_shop()
    for _ in range(8):
        app, _ = app_install()  # a new install: a new shopper, drawn anew
        listing = app.get("/api/v1/products/").json()["results"]
        styled = [p["personalized"] for p in listing if p["personalized"]["style"] != "original"]
        if styled:
            break
    assert styled, "no product shown in a style"
    for shown in styled:
        assert [entry["width"] for entry in shown["srcset"]] == [48, 96]
        assert shown["srcset"][-1]["url"] == shown["url"]
        assert shown["srcset"][0]["url"].startswith("http://testserver/")
        assert Client().get(shown["srcset"][0]["url"]).status_code == 200
    originals = [p["personalized"] for p in listing if p["personalized"]["style"] == "original"]
    assert all(p["srcset"] == [] for p in originals)


def test_render_catalog_rekeys_and_renders_every_width_here(settings):
    settings.CELERY_BROKER_URL = "filesystem://"  # the embedded default: no render worker
    helpers.make_shop()
    style = Style.objects.get(slug="ink")
    settings.STYLETRANSFER = {**settings.STYLETRANSFER, "WIDTHS": [48, 96]}
    out = io.StringIO()
    call_command("render_catalog", style="ink", wait=True, timeout=300, stdout=out)
    assert "ink: 6 ready, 0 failed, 6 products" in out.getvalue()
    style.refresh_from_db()
    assert style.version == 2, "the settings' widths re-keyed the style"
    for rendition in Rendition.objects.filter(style=style, style_version=2):
        assert [v[:2] for v in rendition.variants] == [[48, 48]]
        assert default_storage.exists(rendition.variants[0][2])
    assert not Rendition.objects.filter(style=style, style_version=1).exists()


def test_the_admin_lists_the_widths_each_rendition_has(settings, client, django_user_model):
    settings.STYLETRANSFER = {**settings.STYLETRANSFER, "WIDTHS": [48, 96]}
    helpers.make_shop()
    django_user_model.objects.create_superuser("merchandiser", "m@example.com", "pw-123456789")
    client.login(username="merchandiser", password="pw-123456789")
    listing = client.get("/admin/styletransfer/rendition/")
    assert listing.status_code == 200
    widths = [
        listing.context["cl"].model_admin.widths(r) for r in listing.context["cl"].result_list
    ]
    assert widths and set(widths) == {"48, 96"}
