"""System checks: the settings a shop must give, the rendition key constraint, the broker."""

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.core.cache.backends.locmem import LocMemCache
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.utils.module_loading import import_string

from .conf import conf, file_fields_of


def _check_settings(app_configs, **kwargs) -> list[checks.CheckMessage]:
    try:
        model = conf.product_model()
    except (LookupError, ValueError) as exc:
        return [
            checks.Error(
                str(exc),
                hint="e.g. STYLETRANSFER = {'PRODUCT_MODEL': 'shop.Product'}",
                id="styletransfer.E001",
            )
        ]
    try:
        product_images = conf.PRODUCT_IMAGES
    except ImportError as exc:
        return [
            checks.Error(
                f"STYLETRANSFER['PRODUCT_IMAGES'] cannot be imported: {exc}",
                hint="A dotted path to callable(product) -> list of image files.",
                id="styletransfer.E004",
            )
        ]
    hooks = {
        "LIVE_PRODUCTS": "callable() -> QuerySet of the products shoppers may see",
        "ORIGINAL_URL": "callable(image file) -> the URL the shop serves it at",
    }
    for name, what in hooks.items():
        try:
            getattr(conf, name)  # imported on access
        except ImportError as exc:
            return [
                checks.Error(
                    f"STYLETRANSFER[{name!r}] cannot be imported: {exc}",
                    hint=f"A dotted path to {what}.",
                    id="styletransfer.E008",
                )
            ]
    if not product_images:
        return _check_image_field(model, conf.PRODUCT_IMAGE_FIELD)
    return _check_image_model(model)


def _check_image_model(product_model) -> list[checks.CheckMessage]:
    """PRODUCT_IMAGE_MODEL must be a model with a ForeignKey to the product, or its changes
    would never reach a product."""
    label = conf.PRODUCT_IMAGE_MODEL
    if not label:
        return []
    try:
        image_model = apps.get_model(label)
    except (LookupError, ValueError):
        image_model = None
    links = [
        field
        for field in (image_model._meta.concrete_fields if image_model else [])
        if field.many_to_one and field.related_model is product_model
    ]
    if links:
        return []
    return [
        checks.Error(
            f"STYLETRANSFER['PRODUCT_IMAGE_MODEL'] {label!r} is not a model with a ForeignKey "
            f"to {product_model.__name__}: its photo changes would reach no product.",
            hint="e.g. 'catalogue.ProductImage' (django-oscar), the table PRODUCT_IMAGES reads.",
            id="styletransfer.E007",
        )
    ]


def _check_image_field(model, name: str) -> list[checks.CheckMessage]:
    """PRODUCT_IMAGE_FIELD is a file field, or a ForeignKey to a model with one file field:
    anything else would fail at render time, long after the deploy."""
    hint = "Set PRODUCT_IMAGE_FIELD or PRODUCT_IMAGES in STYLETRANSFER."
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:
        return [
            checks.Error(
                f"{model.__name__} has no field {name!r}", hint=hint, id="styletransfer.E002"
            )
        ]
    if isinstance(field, models.FileField):
        return []
    target = field.related_model if field.many_to_one or field.one_to_one else None
    if target is not None and len(file_fields_of(target)) == 1:
        return []
    what = (
        f"a ForeignKey to {target.__name__}, which has {len(file_fields_of(target))} file fields"
        if target is not None
        else f"a {type(field).__name__}"
    )
    return [
        checks.Error(
            f"STYLETRANSFER['PRODUCT_IMAGE_FIELD'] {model.__name__}.{name} is {what}, not an "
            "image: name an ImageField, a ForeignKey to a model with one, or set PRODUCT_IMAGES.",
            hint="PRODUCT_IMAGES: a dotted path to callable(product) -> list of image files.",
            id="styletransfer.E006",
        )
    ]


def _check_rendition_key(app_configs, **kwargs) -> list[checks.CheckMessage]:
    rendition = apps.get_model("styletransfer", "Rendition")
    keys = {tuple(c.fields) for c in rendition._meta.constraints if hasattr(c, "fields")}
    if ("source_hash", "style", "style_version", "params_hash") not in keys:
        return [
            checks.Error(
                "Rendition lost its unique key: renders could run twice.", id="styletransfer.E003"
            )
        ]
    return []


def _check_cache_is_shared(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """Pages trust cached rendition states that workers update: with a cache per process they
    would keep showing originals after the renders finish."""
    backend = settings.CACHES.get(conf.CACHE_ALIAS, {}).get("BACKEND", "")
    try:
        local = issubclass(import_string(backend), LocMemCache)
    except ImportError:
        return []
    if not local:
        return []
    return [
        checks.Warning(
            f"Cache {conf.CACHE_ALIAS!r} is LocMemCache, one per process: pages will not see "
            "renditions that workers finish until their entries expire.",
            hint="Use a cache every process shares: Redis, Memcached or FileBasedCache.",
            id="styletransfer.W001",
        )
    ]


def _check_image_formats(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """IMAGE_FORMATS names Pillow's formats; a typo would refuse every image at render time."""
    from .engines.images import allowed_formats  # Pillow's plugin registry: only when checked

    try:
        allowed_formats(conf.IMAGE_FORMATS)
    except ValueError as exc:
        return [
            checks.Error(
                f"STYLETRANSFER['IMAGE_FORMATS']: {exc}",
                hint="A list of Pillow format names, e.g. ['JPEG', 'PNG', 'WEBP', 'GIF'].",
                id="styletransfer.E005",
            )
        ]
    return []


# Brokers that hand an unacknowledged message to another worker after a visibility timeout.
VISIBILITY_TIMEOUT_BROKERS = {"redis", "rediss", "sentinel", "sqs"}
DEFAULT_VISIBILITY_TIMEOUT = 3600  # kombu's, for Redis and SQS


def _check_visibility_timeout(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """Renders acknowledge late: a visibility timeout shorter than the longest render hands a
    healthy render to a second worker while the first still runs it."""
    from celery import current_app

    broker_url = current_app.conf.broker_url or ""
    if not isinstance(broker_url, str):  # a list of failover URLs: the first decides
        broker_url = broker_url[0] if broker_url else ""
    scheme = broker_url.partition("://")[0].partition("+")[0].lower()
    if scheme not in VISIBILITY_TIMEOUT_BROKERS:
        return []
    options = current_app.conf.broker_transport_options or {}
    timeout = options.get("visibility_timeout", DEFAULT_VISIBILITY_TIMEOUT)
    longest = conf.RENDER_TIME_LIMIT + 60  # the render task's hard time limit
    if timeout >= longest:
        return []
    return [
        checks.Warning(
            f"The broker's visibility timeout ({timeout} s) is shorter than the longest render "
            f"({longest} s): a render still running is handed to a second worker.",
            hint="Set broker_transport_options['visibility_timeout'] (CELERY_BROKER_TRANSPORT_"
            f"OPTIONS) to {longest} s or more, or lower STYLETRANSFER['RENDER_TIME_LIMIT'].",
            id="styletransfer.W002",
        )
    ]


def _check_broker(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """Without a broker every render, sweep and fit is enqueued nowhere: pages show originals
    for ever. The shop's Celery app is the current one once its package imports it."""
    from celery import current_app

    if current_app.conf.task_always_eager or current_app.conf.broker_url:
        return []
    return [
        checks.Warning(
            "No Celery broker: renders, sweeps and fits are never run (set CELERY_BROKER_URL "
            "and load the settings in your Celery app).",
            hint="See the README's 'Embedding the apps in your shop': celery.py and __init__.py.",
            id="styletransfer.W003",
        )
    ]


def _check_batch_settings(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """RENDER_BATCH_SIZE a whole number >= 1; RENDER_IO_THREADS that or None."""
    errors = []
    for name, optional in (("RENDER_BATCH_SIZE", False), ("RENDER_IO_THREADS", True)):
        value = getattr(conf, name)
        if optional and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            allowed = "a whole number from 1" + (" or None" if optional else "")
            errors.append(
                checks.Error(
                    f"STYLETRANSFER[{name!r}] must be {allowed}, not {value!r}.",
                    id="styletransfer.E009",
                )
            )
    return errors


def _check_widths(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """WIDTHS a list of whole numbers from 16 to MAX_SIZE (at most 8: each is a file)."""
    from .engines.params import MAX_SIZE

    widths = conf.WIDTHS
    valid = isinstance(widths, list | tuple) and len(widths) <= 8
    valid = valid and all(
        isinstance(w, int) and not isinstance(w, bool) and 16 <= w <= MAX_SIZE for w in widths
    )
    if valid:
        return []
    return [
        checks.Error(
            f"STYLETRANSFER['WIDTHS'] must be a list of at most 8 widths in px, each a whole "
            f"number from 16 to {MAX_SIZE}, not {widths!r}.",
            hint="For example [400, 1000]: the grid's and the product page's widths.",
            id="styletransfer.E010",
        )
    ]


def _check_known_keys(app_configs, **kwargs) -> list[checks.CheckMessage]:
    return conf.check_keys()


def register() -> None:
    checks.register(_check_known_keys)
    checks.register(_check_settings)
    checks.register(_check_rendition_key)
    checks.register(_check_cache_is_shared)
    checks.register(_check_visibility_timeout)
    checks.register(_check_broker)
    checks.register(_check_image_formats)
    checks.register(_check_batch_settings)
    checks.register(_check_widths)
