"""django-oscar: its product photos (the related ProductImage table, in display order) for
STYLETRANSFER['PRODUCT_IMAGES'], and its basket and order signals as add-to-cart and purchase
events. Imports nothing of Oscar until stylerec's ready() finds Oscar installed."""


def product_images(product) -> list:
    """The product's photos, primary first; a variant without photos of its own shows its
    parent's, as Oscar's own templates do (Product.primary_image)."""
    images = list(product.images.all())  # ProductImage.Meta.ordering: display_order
    if not images and product.is_child and product.parent_id:
        images = list(product.parent.images.all())
    return [image.original for image in images]


def connect() -> None:
    """Wired by stylerec's AppConfig.ready when Oscar's basket and order apps are installed."""
    from oscar.apps.basket.signals import basket_addition
    from oscar.apps.order.signals import order_placed

    basket_addition.connect(_added_to_basket, dispatch_uid="stylerec-oscar-basket")
    order_placed.connect(_order_placed, dispatch_uid="stylerec-oscar-order")


def _added_to_basket(sender, product, user, request=None, **kwargs) -> None:
    from ..shoppers import request_is_tracked, shopper_for_request

    if kwargs.get("raw") or request is None or not request_is_tracked(request):
        return
    _record(shopper_for_request(request), "add_to_cart", [product])


def _order_placed(sender, order, user, **kwargs) -> None:
    """An account's order (Oscar sends no request with it; a guest checkout's shopper is not
    known here, so a guest's purchase is not recorded)."""
    from ..shoppers import shopper_for_user

    if kwargs.get("raw") or user is None or not user.is_authenticated:
        return
    products = [line.product for line in order.lines.all() if line.product_id]
    _record(shopper_for_user(user), "purchase", products)


def _record(shopper, kind: str, products) -> None:
    """One event per product, joined to the latest decision this shopper saw for it."""
    from ..events import record_server_event
    from ..models import Decision

    for product in products:
        decision_id = (
            Decision.objects.filter(shopper=shopper, product_id=str(product.pk))
            .order_by("-pk")
            .values_list("pk", flat=True)
            .first()
        )
        record_server_event(
            shopper=shopper, kinds=[kind], product_id=product.pk, decision_id=decision_id
        )
