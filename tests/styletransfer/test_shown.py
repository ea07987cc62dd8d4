"""Warm catalogue pages read renditions from the cache; no change may leave them stale.

The pages are the demo shop's, personalized by stylerec: its shop helper sets them up.
"""

from django.core.files.base import ContentFile
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from stylerec.models import Decision
from styletransfer import invalidation, rendering, services
from styletransfer.models import Rendition, SourceImage
from tests.stylerec import helpers
from tests.stylerec.helpers import give_embedding, images
from tests.styletransfer.helpers import make_style, product_png

# The loop's fixtures: a fresh cache per test, and its small shop.
fresh_cache, shop = helpers.fresh_cache, helpers.shop


def page(client) -> list[dict]:
    response = client.get("/")
    assert response.status_code == 200
    shown = images(response.content.decode())
    for image in shown:  # a stale cache shows up as a rendition that is gone
        assert client.get(image["src"]).status_code == 200, image
    return shown


def candidates_by_product(shopper=None) -> dict[str, set]:
    """The candidates of each product's latest decision."""
    latest = {}
    for decision in Decision.objects.filter(**({"shopper": shopper} if shopper else {})).order_by(
        "pk"
    ):
        latest[decision.product_id] = set(decision.candidates)
    return latest


def test_a_warm_page_reads_no_rendition_or_source_rows(client, shop):
    page(client)
    with CaptureQueriesContext(connection) as queries:
        page_html = client.get("/").content.decode()
    tables = " ".join(q["sql"] for q in queries.captured_queries)
    assert "styletransfer_rendition" not in tables
    assert "styletransfer_sourceimage" not in tables
    assert "styletransfer_style" not in tables
    assert len(images(page_html)) == 6


def test_a_rendition_that_turns_ready_is_shown_on_the_next_page(client, shop):
    late = make_style("late", engine="color", active=True, seed=7)
    give_embedding(late, 7)
    page(client)  # requests the late renditions, caches them as not ready
    assert all("late" not in arms for arms in candidates_by_product().values())
    pending = list(Rendition.objects.filter(style=late))
    assert len(pending) == 6 and {r.status for r in pending} == {"pending"}

    rendering.rendition_render(rendition_id=pending[0].pk)
    Decision.objects.all().delete()
    # A new shopper: the first one keeps its assignments until their epoch ends.
    page(Client())
    product = SourceImage.objects.get(content_hash=pending[0].source_hash).object_id
    seen = candidates_by_product()
    assert "late" in seen[product]
    assert all("late" not in arms for pk, arms in seen.items() if pk != product)


def test_a_rendition_that_fails_or_is_deleted_is_not_shown(client, shop):
    page(client)
    sun = next(s for s in shop["styles"] if s.slug == "sun")
    first, *rest = Rendition.objects.filter(style=sun).order_by("pk")
    Rendition.objects.filter(pk=first.pk).update(status="rendering")
    rendering.rendition_fail(rendition_id=first.pk, error="the GPU caught fire")
    services.renditions_delete(renditions=Rendition.objects.filter(pk__in=[r.pk for r in rest]))
    Decision.objects.all().delete()
    for _ in range(3):
        shown = page(client)
        assert "sun" not in {image["data-style"] for image in shown}
    assert all("sun" not in arms for arms in candidates_by_product().values())


def test_a_changed_photo_never_shows_renditions_of_the_old_one(
    client, shop, django_capture_on_commit_callbacks
):
    page(client)
    product = shop["products"][0]
    old_hash = SourceImage.objects.get(object_id=str(product.pk)).content_hash
    with django_capture_on_commit_callbacks(execute=True):  # the save syncs after commit
        product.image.save("new.png", ContentFile(product_png((10, 250, 10))), save=True)
    assert SourceImage.objects.get(object_id=str(product.pk)).content_hash != old_hash
    Decision.objects.all().delete()
    for _ in range(3):
        shown = {image["data-product"]: image for image in page(client)}
        assert shown[str(product.pk)]["data-style"] == "original"
        assert "/renditions/" not in shown[str(product.pk)]["src"]
    page(Client())  # a new shopper draws anew: the old photo's renditions are no candidates
    assert candidates_by_product()[str(product.pk)] == {"original"}


def test_a_deactivated_or_edited_style_is_not_shown(client, shop):
    page(client)
    sea, sun = (next(s for s in shop["styles"] if s.slug == slug) for slug in ("sea", "sun"))
    services.style_set_active(style=sea, active=False)
    sun.strength = 10 if sun.strength != 10 else 20  # a new version; its renders are queued
    services.style_save(style=sun)
    Decision.objects.all().delete()
    for _ in range(3):
        shown = page(client)
        assert {image["data-style"] for image in shown} <= {"original", "ink"}
    assert all(arms == {"original", "ink"} for arms in candidates_by_product().values())


def test_a_render_finishing_while_a_page_fills_the_cache_is_not_lost(client, shop):
    """The page read 'pending', then the render finished and invalidated, then the page wrote
    its entry: the entry carries the token from before its read, so the next page reads again."""
    late = make_style("late", engine="color", active=True, seed=7)
    give_embedding(late, 7)
    page(client)
    rendition = Rendition.objects.filter(style=late).first()
    invalidation.sources_changed([rendition.source_hash])  # this product is read again
    finished = []

    def render_after_the_read(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if not finished and sql.startswith("SELECT") and '"styletransfer_rendition"' in sql:
            finished.append(True)
            rendering.rendition_render(rendition_id=rendition.pk)
        return result

    with connection.execute_wrapper(render_after_the_read):
        page(client)
    assert finished
    Decision.objects.all().delete()
    page(Client())
    product = SourceImage.objects.get(content_hash=rendition.source_hash).object_id
    assert "late" in candidates_by_product()[product]


def test_evicted_keys_distrust_what_was_cached(client, shop):
    """A cache that lost the product's token and the generation (evicted, flushed) must not
    vouch for entries still held in Redis or in this process."""
    product = shop["products"][0]
    late = make_style("late", engine="color", active=True, seed=7)
    give_embedding(late, 7)
    page(client)
    rendition = Rendition.objects.get(style=late, source_hash=_hash(product))
    # A change the cache was not told about (a bare update): only eviction can reveal it.
    Rendition.objects.filter(pk=rendition.pk).update(status="ready", file=rendition.source_name)
    source = SourceImage.objects.get(object_id=str(product.pk))
    token_key = invalidation.token_key(source.content_type_id, str(product.pk))
    Decision.objects.all().delete()
    page(Client())  # new shoppers draw anew; the first keeps its assignments
    assert "late" not in candidates_by_product()[str(product.pk)], "cached, as it should be"
    invalidation.shown_cache().delete_many([token_key, invalidation.GENERATION_KEY])
    Decision.objects.all().delete()
    page(Client())
    assert "late" in candidates_by_product()[str(product.pk)]


def _hash(product) -> str:
    return SourceImage.objects.get(object_id=str(product.pk)).content_hash


def test_image_urls_follow_the_media_url(client, shop):
    """The chooser keeps file URLs per process; a changed MEDIA_URL must not serve old ones."""
    before = page(client)
    assert {i["data-style"] for i in before} - {"original"}, "some renditions are shown"
    assert all(i["src"].startswith("/media/") for i in before)
    with override_settings(MEDIA_URL="/files/"):
        after = images(client.get("/").content.decode())
    assert len(after) == len(before)
    assert all(i["src"].startswith("/files/") for i in after)
