"""Only shoppers count: crawlers, editor previews and (where the shop says so) staff see
the original photos, log no decision, load no beacon and make no shopper."""

from stylerec.models import Decision, Event, Shopper

from .helpers import images

GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"
BEACON = "stylerec/beacon.js"


def is_preview(request) -> bool:
    """What a shop names in STYLEREC['UNTRACKED_REQUESTS'] (a CMS's preview flag)."""
    return request.GET.get("preview") == "1"


def visit(client, path="/", agent=FIREFOX):
    response = client.get(path, HTTP_USER_AGENT=agent)
    assert response.status_code == 200
    html = response.content.decode()
    return images(html), BEACON in html


def assert_untracked(shown, beacon) -> None:
    assert shown and {image["data-style"] for image in shown} == {"original"}
    assert {image["data-decision"] for image in shown} == {""}
    assert not beacon
    assert Decision.objects.count() == 0 and Shopper.objects.count() == 0


def test_a_shopper_is_tracked(client, shop):
    shown, beacon = visit(client)
    assert beacon and all(image["data-decision"] for image in shown)
    assert Decision.objects.count() == len(shown)


def test_a_crawler_sees_originals_and_logs_nothing(client, shop):
    assert_untracked(*visit(client, agent=GOOGLEBOT))


def test_a_crawler_following_a_personalized_link_records_no_click(client, shop):
    shown, _ = visit(client)
    product = shop["products"][0]
    decision = Decision.objects.filter(product_id=str(product.pk)).first()
    crawler = client.__class__()
    crawler.cookies = client.cookies  # even with the shopper's own session
    crawler.get(f"{product.get_absolute_url()}?sr={decision.pk}", HTTP_USER_AGENT=GOOGLEBOT)
    assert not Event.objects.exists()


def test_an_editor_preview_named_by_the_shop_logs_nothing(client, shop, settings):
    settings.STYLEREC = {
        **settings.STYLEREC,
        "UNTRACKED_REQUESTS": "tests.stylerec.test_untracked.is_preview",
    }
    assert_untracked(*visit(client, "/?preview=1"))
    assert visit(client)[1], "the same page, not a preview, is tracked"


def test_staff_can_be_kept_out_of_the_data(client, shop, settings, admin_user):
    settings.STYLEREC = {**settings.STYLEREC, "TRACK_STAFF": False}
    client.force_login(admin_user)
    shown, beacon = visit(client)
    assert {image["data-decision"] for image in shown} == {""} and not beacon
    assert Decision.objects.count() == 0
