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
    try:
        from oscar.apps.checkout.signals import post_checkout
    except ImportError:  # a shop without Oscar's checkout app records guests' orders itself
        return
    post_checkout.connect(_guest_checked_out, dispatch_uid="stylerec-oscar-guest-order")


def _added_to_basket(sender, product, user, request=None, **kwargs) -> None:
    """The basket view's addition: the line's unit price times the quantity the form posted."""
    from ..shoppers import request_is_tracked, shopper_for_request

    if kwargs.get("raw") or request is None or not request_is_tracked(request):
        return
    value, currency = None, None
    line = getattr(sender, "line", None)  # the view keeps the line it added to
    if line is not None and line.product_id == product.pk:
        unit = _price(line.unit_price_incl_tax, line.unit_price_excl_tax)
        if unit is not None:
            value, currency = unit * _quantity(request.POST.get("quantity")), line.price_currency
    _record(shopper_for_request(request), "add_to_cart", [(product, value, currency)])


def _order_placed(sender, order, user, **kwargs) -> None:
    """An account's order, wherever it was placed (Oscar sends no request with it)."""
    from ..shoppers import shopper_for_user

    if kwargs.get("raw") or user is None or not user.is_authenticated:
        return
    _record(shopper_for_user(user), "purchase", _order_lines(order))


def _guest_checked_out(sender, order, user, request=None, **kwargs) -> None:
    """A guest's order through Oscar's checkout: its request names the shopper (an account's
    order was recorded by order_placed already)."""
    from ..shoppers import request_is_tracked, shopper_for_request

    if request is None or (user is not None and user.is_authenticated):
        return
    if request_is_tracked(request):
        _record(shopper_for_request(request), "purchase", _order_lines(order))


def _order_lines(order) -> list:
    return [
        (line.product, _price(line.line_price_incl_tax, line.line_price_excl_tax), order.currency)
        for line in order.lines.select_related("product")
        if line.product_id
    ]


def _price(incl_tax, excl_tax):
    """What the shopper pays: with tax where the strategy knows it."""
    return incl_tax if incl_tax is not None else excl_tax


def _quantity(posted) -> int:
    try:
        return max(1, int(posted))
    except (TypeError, ValueError):
        return 1


def _record(shopper, kind: str, lines) -> None:
    """One event per (product, value, currency), joined to the latest decision this shopper
    saw for the product. A value the events API would refuse is dropped, never the event."""
    from ..events import EventRejected, check_value, record_server_event
    from ..models import Decision

    for product, value, currency in lines:
        try:
            check_value(kind=kind, value=value, currency=currency)
        except EventRejected:
            value, currency = None, None
        decision_id = (
            Decision.objects.filter(shopper=shopper, product_id=str(product.pk))
            .order_by("-pk")
            .values_list("pk", flat=True)
            .first()
        )
        record_server_event(
            shopper=shopper,
            kinds=[kind],
            product_id=product.pk,
            decision_id=decision_id,
            value=value,
            currency=currency,
        )
