"""Run inside the throwaway Oscar shop (renders eager): products with photos in Oscar's
ProductImage, its catalogue and search pages, and a photo replaced in the dashboard's way.
Prints one line of JSON that the test reads."""

import io
import json
import os
import re

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "yourproject.settings")

import django  # noqa: E402

django.setup()

from decimal import Decimal  # noqa: E402

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.files.base import ContentFile  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from oscar.apps.address.models import Country  # noqa: E402
from oscar.apps.basket.models import Basket  # noqa: E402
from oscar.apps.catalogue.models import Product, ProductClass, ProductImage  # noqa: E402
from oscar.apps.order.models import Order  # noqa: E402
from oscar.apps.partner.strategy import Selector  # noqa: E402
from oscar.test.factories import create_order, create_stockrecord  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from stylerec.models import Event  # noqa: E402
from styletransfer import services  # noqa: E402
from styletransfer.models import Rendition, SourceImage, Style  # noqa: E402

setup_test_environment()


def photo(seed: int) -> bytes:
    image = Image.effect_noise((160, 160), 30 + seed * 10).convert("RGB")
    ImageDraw.Draw(image).ellipse([40, 40, 120, 120], fill=(40 * seed % 255, 120, 200))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    return buffer.getvalue()


def painting() -> bytes:
    image = Image.new("RGB", (96, 96), (30, 60, 140))
    for x in range(0, 96, 8):
        ImageDraw.Draw(image).line([(x, 0), (96 - x, 96)], fill=(240, 190, 30), width=3)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    return buffer.getvalue()


def shown(html: str) -> dict[str, str]:
    """data-product -> data-style of each personalized image on a page."""
    found = {}
    for tag in re.findall(r"<img [^>]*data-decision[^>]*>", html):
        product = re.search(r'data-product="([^"]+)"', tag).group(1)
        found[product] = re.search(r'data-style="([^"]+)"', tag).group(1)
    return found


style = Style(name="Warm", slug="warm", engine="color", size=128)
style.reference_image.save("warm.jpg", ContentFile(painting()), save=False)
services.style_save(style=style)
services.style_set_active(style=style, active=True)

kind = ProductClass.objects.create(name="Mugs", slug="mugs")
products = []
for i in range(3):
    product = Product.objects.create(title=f"Mug {i}", product_class=kind, is_public=True)
    image = ProductImage(product=product, display_order=0)
    image.original.save(f"mug{i}.jpg", ContentFile(photo(i)), save=True)
    create_stockrecord(product, price=Decimal("12.00"), num_in_stock=10)
    products.append(product)

ready_before = Rendition.objects.filter(status="ready").count()
shopper = Client()
catalogue = shopper.get("/catalogue/")
search = shopper.get("/search/", {"q": "Mug"})

# The merchandiser replaces the first mug's photo in Oscar's ProductImage table.
first = products[0]
old_hash = SourceImage.objects.get(object_id=str(first.pk), position=0).content_hash
old_files = set(Rendition.objects.filter(source_hash=old_hash).values_list("file", flat=True))
image = first.images.get()
image.original.save("mug0-new.jpg", ContentFile(photo(9)), save=True)
new_hash = SourceImage.objects.get(object_id=str(first.pk), position=0).content_hash
after = shopper.get("/catalogue/").content.decode()

# A guest browses, puts two of the first mug in the basket and checks out through Oscar's own
# checkout views (each step as a browser posts it).
guest = Client()
guest.get("/catalogue/")
guest_added = guest.post(f"/basket/add/{products[0].pk}/", {"quantity": 2})
Country.objects.create(iso_3166_1_a2="GB", name="United Kingdom", is_shipping_country=True)
checkout = [
    guest.post("/checkout/", {"username": "guest@example.com", "options": "anonymous"}),
    guest.post(
        "/checkout/shipping-address/",
        {
            "first_name": "Gail",
            "last_name": "Guest",
            "line1": "1 High Street",
            "line4": "London",
            "postcode": "SW1A 1AA",
            "country": "GB",
        },
    ),
    guest.get("/checkout/shipping-method/", follow=True),
    guest.post("/checkout/preview/", {"action": "place_order"}),
]
guest_order = Order.objects.filter(guest_email="guest@example.com").first()

# The shopper puts two mugs in the basket (Oscar's own view), signs in and orders another.
added = shopper.post(f"/basket/add/{products[1].pk}/", {"quantity": 2})
account = get_user_model().objects.create_user("ann", "ann@example.com", "ann-pw-12345")
shopper.force_login(account)  # the session's history joins the account
basket = Basket.objects.create(owner=account)
basket.strategy = Selector().strategy(user=account)
basket.add_product(products[2], 1)
create_order(basket=basket, user=account)
events = [
    (event.kind, event.product_id, event.decision_id is not None, str(event.value), event.currency)
    for event in Event.objects.exclude(kind__in=["impression", "click"]).order_by("pk")
]

print(
    "OSCAR",
    json.dumps(
        {
            "ready_before": ready_before,
            "catalogue": catalogue.status_code,
            "catalogue_shown": shown(catalogue.content.decode()),
            "beacon": "/api/v1/events/" in catalogue.content.decode(),
            "search": search.status_code,
            "search_shown": shown(search.content.decode()),
            "photo_changed": new_hash != old_hash,
            "new_rendition": Rendition.objects.filter(source_hash=new_hash, status="ready").count(),
            "old_files_on_page": [name for name in old_files if name and name in after],
            "products": [str(p.pk) for p in products],
            "basket_add": added.status_code,
            "guest_basket_add": guest_added.status_code,
            "guest_checkout": [r.status_code for r in checkout],
            "guest_order": guest_order.number if guest_order else None,
            "events": events,
            "errors": list(Rendition.objects.exclude(error="").values_list("error", flat=True)),
        }
    ),
)
