"""Reads: which source images a product has, which renditions are ready, style coverage."""

from collections.abc import Iterable, Sequence

from django.contrib.contenttypes.models import ContentType
from django.db.models import Count, F, Q

from .conf import conf
from .models import Rendition, SourceImage, Style


def source_images_for(products: Sequence) -> dict:
    """Primary SourceImage per product pk, of the products registered so far."""
    if not products:
        return {}
    content_type = ContentType.objects.get_for_model(products[0])
    found = {
        source.object_id: source
        for source in SourceImage.objects.filter(
            content_type=content_type,
            object_id__in=[str(p.pk) for p in products],
            position=0,
        )
    }
    return {p.pk: found[str(p.pk)] for p in products if str(p.pk) in found}


def active_styles() -> list[Style]:
    return list(Style.objects.filter(active=True))


def ready_renditions_for(
    sources: Iterable[SourceImage], styles: Iterable[Style]
) -> dict[tuple[str, int], Rendition]:
    """Ready renditions of the styles' current versions, keyed by (source hash, style id)."""
    styles = list(styles)
    hashes = {source.content_hash for source in sources}
    if not hashes or not styles:
        return {}
    renditions = Rendition.objects.filter(
        source_hash__in=hashes,
        status=Rendition.Status.READY,
        style__in=styles,
        style_version=F("style__version"),
        params_hash=F("style__params_hash"),
    ).only("id", "source_hash", "style_id", "file", "width", "height")
    return {(r.source_hash, r.style_id): r for r in renditions}


def catalog_size() -> int:
    return conf.live_products().count()


def style_coverage(styles: Iterable[Style] | None = None) -> dict[int, dict[str, int]]:
    """Per style id: renditions of its current version by status, and the catalogue size.

    Only renditions of each product's current primary photo count: one per product, never
    a replaced photo's or a second photo's (which would read "8 ready of 6 products").
    """
    styles = list(styles if styles is not None else Style.objects.all())
    primaries = SourceImage.objects.filter(
        content_type=ContentType.objects.get_for_model(conf.product_model()), position=0
    ).values("content_hash")
    counts = (
        Rendition.objects.filter(
            style__in=styles, style_version=F("style__version"), source_hash__in=primaries
        )
        .values("style_id")
        .annotate(
            ready=Count("id", filter=Q(status=Rendition.Status.READY)),
            failed=Count("id", filter=Q(status=Rendition.Status.FAILED)),
            pending=Count(
                "id", filter=Q(status__in=[Rendition.Status.PENDING, Rendition.Status.RENDERING])
            ),
        )
    )
    by_style = {row["style_id"]: row for row in counts}
    total = catalog_size()
    return {
        style.pk: {
            "products": total,
            "ready": by_style.get(style.pk, {}).get("ready", 0),
            "failed": by_style.get(style.pk, {}).get("failed", 0),
            "pending": by_style.get(style.pk, {}).get("pending", 0),
        }
        for style in styles
    }
