"""The STYLETRANSFER settings dict, and AppSettings, the settings class both apps use."""

import functools
import inspect
from collections.abc import Iterable
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.db import models
from django.utils.module_loading import import_string


class AppSettings:
    """One settings dict of the host (settings.<namespace>) over the app's defaults.

    Read on every access, so override_settings just works; dotted paths named in
    `import_strings` come back imported (DRF's APISettings does the same).
    """

    def __init__(
        self, namespace: str, defaults: dict[str, Any], import_strings: Iterable[str] = ()
    ):
        self.namespace = namespace
        self.defaults = defaults
        self.import_strings = frozenset(import_strings)

    @property
    def user_settings(self) -> dict[str, Any]:
        value = getattr(settings, self.namespace, None)
        return value if isinstance(value, dict) else {}  # anything else: check_keys says so

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in self.defaults:
            raise AttributeError(f"Unknown {self.namespace} setting: {name}")
        value = self.user_settings.get(name, self.defaults[name])
        if name in self.import_strings and isinstance(value, str):
            return import_string(value)
        return value

    def product_model(self):
        if not self.PRODUCT_MODEL:
            raise LookupError(f"Set {self.namespace}['PRODUCT_MODEL'] to your product model.")
        return apps.get_model(self.PRODUCT_MODEL)

    def check_keys(self) -> list[checks.CheckMessage]:
        """A warning per key the app does not know: a typo would otherwise be ignored."""
        user_settings = getattr(settings, self.namespace, None)
        if user_settings is None:
            return []
        if not isinstance(user_settings, dict):
            return [
                checks.Error(
                    f"settings.{self.namespace} must be a dict, not {type(user_settings).__name__}",
                    id=f"{self.namespace.lower()}.E000",
                )
            ]
        return [
            checks.Warning(
                f"Unknown setting {self.namespace}[{key!r}]: it has no effect.",
                hint=f"Known settings: {', '.join(sorted(self.defaults))}.",
                id=f"{self.namespace.lower()}.W000",
            )
            for key in sorted(set(user_settings) - set(self.defaults), key=str)
        ]


DEFAULTS: dict[str, Any] = {
    # The shop's product model, "app_label.ModelName".
    "PRODUCT_MODEL": None,
    # The ImageField on that model holding the product photo...
    "PRODUCT_IMAGE_FIELD": "image",
    # (or a ForeignKey to an image model with one file field, which is followed)...
    # ...or a dotted path to `callable(product) -> list[FieldFile]` for shops that keep
    # images in a related table. Every file it returns is rendered in every active style;
    # the first is the one shoppers see (listings, the API's image).
    "PRODUCT_IMAGES": None,
    # The model of that related table ("app_label.Model", with a ForeignKey to the product):
    # a photo saved in it or deleted from it renders its product again.
    "PRODUCT_IMAGE_MODEL": None,
    # Which products are live: a dotted path to callable() -> QuerySet of the product model
    # (e.g. the published ones). Only those are rendered for a catalogue, counted in its
    # coverage and listed by the API; None: every product of the default manager.
    "LIVE_PRODUCTS": None,
    # How an original photo is served: a dotted path to callable(image: FieldFile) -> URL,
    # the shop's own image pipeline (a thumbnailer's crop at the grid's size, a CDN); None:
    # the file's storage URL. One that also takes a width, callable(image, width=None),
    # gives the original a srcset at WIDTHS as renditions have.
    "ORIGINAL_URL": None,
    # Celery queues: renders go to GPU workers, bookkeeping to the default queue.
    "RENDER_QUEUE": "render",
    "DEFAULT_QUEUE": "default",
    # Where rendition files go in the default storage, and how they are encoded.
    "RENDITIONS_DIR": "renditions",
    "OUTPUT_FORMAT": "JPEG",
    "OUTPUT_QUALITY": 88,
    # The widths (px) the shop shows product images at, e.g. [400, 1000] for grid and product
    # page: every style renders at the largest (its longest side) and stores each smaller one
    # scaled down from it, for srcset. Empty: one file at each style's own size. Changing it
    # renders every style again (the sweep re-keys them).
    "WIDTHS": [],
    # Larger sources are refused (decompression bombs) before any pixel is decoded.
    "MAX_SOURCE_PIXELS": 40_000_000,
    # Pillow format names whose decoders may read uploads and sources; nothing else is parsed.
    "IMAGE_FORMATS": ["JPEG", "PNG", "WEBP", "GIF"],
    # A render running longer than this is stopped; a "rendering" row older than
    # STALE_AFTER seconds with no heartbeat (an older worker's) is assumed lost and rendered again.
    "RENDER_TIME_LIMIT": 900,
    "STALE_AFTER": 1200,
    # A rendering worker refreshes its claim's heartbeat this often (seconds)...
    "HEARTBEAT_INTERVAL": 10,
    # ...and a claim not refreshed for this long is dead: its render is taken over at once.
    "HEARTBEAT_TIMEOUT": 45,
    # Every render worker (and render_catalog --wait) re-enqueues dead claims this often.
    "RECOVERY_INTERVAL": 30,
    # Pending rows sent this long ago are sent again when the render queue is empty (the broker
    # lost them); rows whose send failed (broker down) are sent again at once.
    "REQUEUE_AFTER": 120,
    # Activating a style enqueues its renders in batches of this many products, one batch
    # every CATALOG_BATCH_INTERVAL seconds, so a big catalogue never floods the broker.
    "CATALOG_BATCH_SIZE": 100,
    "CATALOG_BATCH_INTERVAL": 2,
    # Each sweep re-reads the photos of this many live products (the next ones after the last
    # sweep's, round the catalogue) and compares their content hashes, so a photo changed
    # where no signal is sent (a bulk update, a file replaced in storage) is rendered again.
    # 0: only saves and deletes are seen.
    "PHOTO_SWEEP_BATCH": 200,
    # Catalogue renders go to the render queue as messages of this many renditions of one
    # style (at most CATALOG_BATCH_SIZE); a worker renders one in passes as big as its device
    # holds, so on GPUs raise both to a few hundred (README, "Running at scale").
    "RENDER_BATCH_SIZE": 16,
    # Threads of a render worker that decode sources and encode renditions while it renders
    # (None: one per CPU core beside a GPU, so on a machine of several GPUs give each worker
    # its share; one beside a CPU engine, whose torch threads take the cores already).
    "RENDER_IO_THREADS": None,
    # "cuda", "cpu" or None (cuda when present).
    "DEVICE": None,
    # Onboarding: when a style is created or its reference image changes, a render worker
    # tunes the feedforward decoder to it (at most ONBOARDING_STEPS steps or
    # ONBOARDING_MINUTES), stores the adapter under ADAPTERS_DIR in the default storage, and
    # measures both engines on QUALITY_SAMPLES products at QUALITY_SIZE px for the admin.
    "ONBOARD_STYLES": True,
    "ONBOARDING_STEPS": 300,
    "ONBOARDING_MINUTES": 8.0,
    "ADAPTERS_DIR": "adapters",
    "QUALITY_SAMPLES": 3,
    "QUALITY_SIZE": 256,
    # Cache (Django's CACHES alias) holding each product's image hash and ready renditions,
    # so pages need no rendition queries (styletransfer.shown); entries live this long.
    "CACHE_ALIAS": "default",
    "CACHE_TIMEOUT": 24 * 3600,
}


def file_fields_of(model) -> list:
    """The FileFields (ImageFields among them) of an image model a product points to."""
    return [field for field in model._meta.concrete_fields if isinstance(field, models.FileField)]


class StyleTransferSettings(AppSettings):
    def product_images(self, product) -> list:
        """The product's image files, primary first; empty files are left out.

        PRODUCT_IMAGE_FIELD may name a ForeignKey to an image model (a CMS's): its one file
        field is followed (checks refuse a model with none or several, styletransfer.E006).
        """
        if self.PRODUCT_IMAGES:
            images = self.PRODUCT_IMAGES(product)
        else:
            image = getattr(product, self.PRODUCT_IMAGE_FIELD)
            if isinstance(image, models.Model):
                fields = file_fields_of(type(image))
                image = getattr(image, fields[0].name) if len(fields) == 1 else None
            images = [image]
        return [image for image in images if image]

    def widths(self) -> tuple[int, ...]:
        """WIDTHS ascending, each once (checks refuse anything but whole numbers in range)."""
        return tuple(sorted(set(self.WIDTHS)))

    def original_url(self, image) -> str | None:
        """The URL of an original photo through the shop's pipeline (ORIGINAL_URL), or None
        to use the file's own."""
        return self.ORIGINAL_URL(image) if self.ORIGINAL_URL else None

    def original_srcset(self, image) -> tuple[tuple[int, str], ...]:
        """(width, URL) of the original at each of WIDTHS, where ORIGINAL_URL takes a width
        (a thumbnailer scales, crops and caches it); () otherwise: the file has one size."""
        widths = self.widths()
        if not widths or not self.ORIGINAL_URL or not _takes_width(self.ORIGINAL_URL):
            return ()
        return tuple((width, self.ORIGINAL_URL(image, width)) for width in widths)

    def live_products(self):
        """The products shoppers may see (LIVE_PRODUCTS), as a QuerySet to filter further."""
        if self.LIVE_PRODUCTS:
            return self.LIVE_PRODUCTS()
        return self.product_model()._default_manager.all()

    def product_of_image(self, image):
        """The product a row of PRODUCT_IMAGE_MODEL belongs to (its ForeignKey to the product
        model), or None when it has none (or the product is being deleted with it)."""
        product_model = self.product_model()
        for field in type(image)._meta.concrete_fields:
            if field.many_to_one and field.related_model is product_model:
                try:
                    return getattr(image, field.name)
                except product_model.DoesNotExist:
                    return None
        return None


@functools.cache
def _takes_width(function) -> bool:
    try:
        inspect.signature(function).bind(None, 0)
    except (TypeError, ValueError):
        return False
    return True


conf = StyleTransferSettings(
    "STYLETRANSFER", DEFAULTS, import_strings=["PRODUCT_IMAGES", "LIVE_PRODUCTS", "ORIGINAL_URL"]
)
