"""The STYLETRANSFER settings dict, with defaults, read lazily so override_settings works."""

from typing import Any

from django.apps import apps
from django.conf import settings
from django.utils.module_loading import import_string

DEFAULTS: dict[str, Any] = {
    # The shop's product model, "app_label.ModelName".
    "PRODUCT_MODEL": None,
    # The ImageField on that model holding the product photo...
    "PRODUCT_IMAGE_FIELD": "image",
    # ...or a dotted path to `callable(product) -> list[FieldFile]` for shops that keep
    # images in a related table; the first image is the one shoppers see in listings.
    "PRODUCT_IMAGES": None,
    # Celery queues: renders go to GPU workers, bookkeeping to the default queue.
    "RENDER_QUEUE": "render",
    "DEFAULT_QUEUE": "default",
    # Where rendition files go in the default storage, and how they are encoded.
    "RENDITIONS_DIR": "renditions",
    "OUTPUT_FORMAT": "JPEG",
    "OUTPUT_QUALITY": 88,
    # Larger sources are refused (decompression bombs) before any pixel is decoded.
    "MAX_SOURCE_PIXELS": 40_000_000,
    # A render running longer than this is stopped; a "rendering" row older than
    # STALE_AFTER seconds is assumed lost with its worker and is rendered again.
    "RENDER_TIME_LIMIT": 900,
    "STALE_AFTER": 1200,
    # Pending rows not picked up within this many seconds are enqueued again (broker was down).
    "REQUEUE_AFTER": 300,
    # Activating a style enqueues its renders in batches of this many products, one batch
    # every CATALOG_BATCH_INTERVAL seconds, so a big catalogue never floods the broker.
    "CATALOG_BATCH_SIZE": 100,
    "CATALOG_BATCH_INTERVAL": 2,
    # "cuda", "cpu" or None (cuda when present).
    "DEVICE": None,
    # Cache (Django's CACHES alias) holding each product's image hash and ready renditions,
    # so pages need no rendition queries (styletransfer.cache); entries live this long.
    "CACHE_ALIAS": "default",
    "CACHE_TIMEOUT": 24 * 3600,
}


class StyleTransferSettings:
    """Reads settings.STYLETRANSFER on every access, so override_settings just works."""

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown STYLETRANSFER setting: {name}")
        return getattr(settings, "STYLETRANSFER", {}).get(name, DEFAULTS[name])

    def product_model(self):
        if not self.PRODUCT_MODEL:
            raise LookupError("Set STYLETRANSFER['PRODUCT_MODEL'] to your product model.")
        return apps.get_model(self.PRODUCT_MODEL)

    def product_images(self, product) -> list:
        """The product's image files, primary first; empty files are left out."""
        if self.PRODUCT_IMAGES:
            images = import_string(self.PRODUCT_IMAGES)(product)
        else:
            images = [getattr(product, self.PRODUCT_IMAGE_FIELD)]
        return [image for image in images if image]


conf = StyleTransferSettings()
