"""Writes: registering product images, requesting and rendering renditions, applying style edits."""

import io
import logging
import os
import time
from pathlib import Path

from django.contrib.contenttypes.models import ContentType
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from . import cache, specs
from .conf import conf
from .engines.base import EngineError, InputImageError
from .models import Rendition, SourceImage, Style

logger = logging.getLogger(__name__)

EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}


# --- Source images -----------------------------------------------------------------------------


def source_images_sync(*, product) -> list[SourceImage]:
    """Record the product's images and their content hashes; returns them, primary first.

    Called when a product is saved (and lazily on first view). When an image's content
    changed, active styles are rendered for the new content after the transaction commits.
    """
    content_type = ContentType.objects.get_for_model(product)
    sources, changed = [], []
    for position, image in enumerate(conf.product_images(product)):
        try:
            with image.open("rb") as fh:
                digest = specs.file_hash(fh)
        except OSError:
            logger.warning("Product %s image %s cannot be read", product.pk, image.name)
            continue
        source, created = SourceImage.objects.get_or_create(
            content_type=content_type,
            object_id=str(product.pk),
            position=position,
            defaults={"name": image.name, "content_hash": digest},
        )
        if (source.name, source.content_hash) != (image.name, digest):
            source.name, source.content_hash = image.name, digest
            source.save(update_fields=["name", "content_hash", "updated_at"])
            changed.append(source)
        elif created:
            changed.append(source)
        sources.append(source)
    removed, _ = (
        SourceImage.objects.filter(content_type=content_type, object_id=str(product.pk))
        .exclude(pk__in=[s.pk for s in sources])
        .delete()
    )
    if changed or removed:
        cache.products_changed([(content_type.pk, product.pk)])
    if changed:
        styles = list(Style.objects.filter(active=True))
        for source in changed:
            for style in styles:
                rendition_request(source=source, style=style)
    return sources


# --- Requesting renditions ---------------------------------------------------------------------


def rendition_request(*, source: SourceImage, style: Style) -> Rendition:
    """The rendition of `source` in the current version of `style`, enqueued if new.

    Race-safe: concurrent requests for one key create one row and enqueue one render.
    """
    key = {
        "source_hash": source.content_hash,
        "style": style,
        "style_version": style.version,
        "params_hash": style.params_hash,
    }
    try:
        with transaction.atomic():
            rendition, created = Rendition.objects.get_or_create(
                **key, defaults={"source_name": source.name}
            )
    except IntegrityError:  # another process created it between our SELECT and INSERT
        rendition, created = Rendition.objects.get(**key), False
    if created:
        rendition_enqueue(rendition=rendition)
    return rendition


def rendition_enqueue(*, rendition: Rendition, stale_claim: str | None = None) -> None:
    """Send the render to the render queue once the row is committed; a down broker is logged,
    and the row stays pending for renditions_requeue to send again.

    `stale_claim` (the started_at of a claim judged lost) lets the new task take it over.
    """

    def send() -> None:
        from .tasks import render_rendition

        try:
            render_rendition.apply_async(
                args=[rendition.pk],
                kwargs={"stale_claim": stale_claim} if stale_claim else {},
                queue=conf.RENDER_QUEUE,
                retry=False,
            )
        except Exception as exc:  # kombu raises many types; the shopper must not see any
            logger.warning("Could not enqueue rendition %s: %s", rendition.pk, exc)
            return
        Rendition.objects.filter(pk=rendition.pk).update(enqueued_at=timezone.now())

    transaction.on_commit(send)


def renditions_requeue() -> int:
    """Enqueue again what a down broker or a lost worker left behind; returns how many."""
    now = timezone.now()
    never_sent = Rendition.objects.filter(status=Rendition.Status.PENDING).filter(
        enqueued_at__isnull=True
    ) | Rendition.objects.filter(
        status=Rendition.Status.PENDING,
        enqueued_at__lt=now - timezone.timedelta(seconds=conf.REQUEUE_AFTER),
    )
    lost = Rendition.objects.filter(
        status=Rendition.Status.RENDERING,
        started_at__lt=now - timezone.timedelta(seconds=conf.STALE_AFTER),
    )
    count = 0
    for rendition in (never_sent | lost).distinct():
        stale_claim = rendition.started_at.isoformat() if rendition.started_at else None
        rendition_enqueue(rendition=rendition, stale_claim=stale_claim)
        count += 1
    return count


def styles_catch_up() -> int:
    """Make sure every active style is requested for the whole catalogue and has an embedding;
    returns how many styles needed a catalogue render."""
    from .selectors import style_coverage

    styles = list(Style.objects.filter(active=True))
    behind = 0
    for style in styles:
        counts = style_coverage([style])[style.pk]
        if counts["ready"] + counts["failed"] + counts["pending"] < counts["products"]:
            _send_catalog_render(style.pk)
            behind += 1
    for style in Style.objects.exclude(embedding_hash=models.F("reference_hash")):
        _send_embedding(style.pk)
    return behind


def rendition_retry(*, rendition: Rendition) -> None:
    """Put a failed rendition back in the queue (after its source or style was fixed)."""
    Rendition.objects.filter(pk=rendition.pk, status=Rendition.Status.FAILED).update(
        status=Rendition.Status.PENDING, error="", enqueued_at=None
    )
    rendition_enqueue(rendition=rendition)


# --- Rendering (worker side) -------------------------------------------------------------------


def _claim(rendition_id: int, task_id: str | None, stale_claim: str | None) -> Rendition | None:
    """Mark the rendition as rendering by us, unless it is done or someone else is on it.

    A redelivered message keeps its task id, so a render whose worker died is taken over
    at once; another task takes it over once the claim is stale (by our clock, or by the
    sweep's, which names the exact claim it judged lost).
    """
    with transaction.atomic():
        rendition = (
            Rendition.objects.select_for_update().select_related("style").filter(pk=rendition_id)
        ).first()
        if rendition is None or rendition.status in (
            Rendition.Status.READY,
            Rendition.Status.FAILED,
        ):
            return None
        stale = timezone.now() - timezone.timedelta(seconds=conf.STALE_AFTER)
        held_by_other = (
            rendition.status == Rendition.Status.RENDERING
            and rendition.task_id != (task_id or "")
            and rendition.started_at
            and rendition.started_at > stale
        )
        if held_by_other and rendition.started_at.isoformat() != stale_claim:
            return None
        rendition.status = Rendition.Status.RENDERING
        rendition.started_at = timezone.now()
        rendition.attempts += 1
        rendition.task_id = task_id or ""
        rendition.save(update_fields=["status", "started_at", "attempts", "task_id"])
    return rendition


def rendition_render(
    *,
    rendition_id: int,
    task_id: str | None = None,
    device: str | None = None,
    stale_claim: str | None = None,
) -> Rendition | None:
    """Render one rendition and store its file; None when there was nothing to do.

    Bad input (unreadable source, hostile image) ends as `failed` with the reason; other
    errors propagate so the task can retry.
    """
    rendition = _claim(rendition_id, task_id, stale_claim)
    if rendition is None:
        return None
    style = rendition.style
    if style.version != rendition.style_version or style.params_hash != rendition.params_hash:
        _finish(rendition, status=Rendition.Status.FAILED, error="superseded by a newer style")
        return rendition
    started = time.perf_counter()
    try:
        content = _open_stored(rendition.source_name)
        reference = _open_stored(style.reference_image.name)
        from .engines.base import get_engine

        engine = get_engine(style.engine, device or conf.DEVICE)
        image = engine.render(content, reference, style.render_params())
    except (InputImageError, ValueError) as exc:
        _finish(rendition, status=Rendition.Status.FAILED, error=_one_line(exc))
        return rendition
    except EngineError as exc:
        if type(exc).__name__ == "OutOfMemory":
            raise
        _finish(rendition, status=Rendition.Status.FAILED, error=_one_line(exc))
        return rendition
    name = _store(rendition, style, image)
    _finish(
        rendition,
        status=Rendition.Status.READY,
        file=name,
        width=image.width,
        height=image.height,
        engine=style.engine,
        device=engine.device,
        render_seconds=time.perf_counter() - started,
    )
    return rendition


def _open_stored(name: str):
    from .engines.images import open_image

    try:
        with default_storage.open(name, "rb") as fh:
            return open_image(fh, max_pixels=conf.MAX_SOURCE_PIXELS)
    except FileNotFoundError as exc:
        raise InputImageError(f"the file {name} is missing from storage") from exc


def _store(rendition: Rendition, style: Style, image) -> str:
    """Encode and write the file under its key-derived name, atomically where the storage allows."""
    extension = EXTENSIONS[conf.OUTPUT_FORMAT]
    name = specs.rendition_name(
        directory=conf.RENDITIONS_DIR,
        style_slug=style.slug,
        source_hash=rendition.source_hash,
        style_version=rendition.style_version,
        params_hash=rendition.params_hash,
        extension=extension,
    )
    buffer = io.BytesIO()
    image.save(buffer, format=conf.OUTPUT_FORMAT, quality=conf.OUTPUT_QUALITY, optimize=True)
    data = buffer.getvalue()
    try:
        path = Path(default_storage.path(name))
    except NotImplementedError:
        path = None
    if path is None:  # remote storage: a single PUT is atomic there
        if default_storage.exists(name):
            default_storage.delete(name)
        saved = default_storage.save(name, ContentFile(data))
        if saved != name:
            raise RuntimeError(f"storage saved {name} as {saved}")
        return name
    # Local disk: write a side file and rename it, so a killed worker leaves no half image.
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(partial, path)
    return name


def rendition_fail(*, rendition_id: int, error: str) -> None:
    """Record why a rendition cannot be made; it stays failed until someone retries it."""
    rendition = Rendition.objects.filter(pk=rendition_id).first()
    if rendition is not None:
        _finish(rendition, status=Rendition.Status.FAILED, error=error)


def _finish(rendition: Rendition, *, status: str, **fields) -> None:
    fields.update(status=status, finished_at=timezone.now())
    if status == Rendition.Status.FAILED:
        logger.warning("Rendition %s failed: %s", rendition.pk, fields.get("error"))
    Rendition.objects.filter(pk=rendition.pk).update(**fields)
    for key, value in fields.items():
        setattr(rendition, key, value)
    cache.sources_changed([rendition.source_hash])


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:500] or type(exc).__name__


# --- Styles ------------------------------------------------------------------------------------


def style_save(*, style: Style) -> Style:
    """Save a style and carry out what the change implies, after commit:
    a new version drops superseded renditions; an active style renders the catalogue;
    a new reference image gets a new embedding."""
    previous = Style.objects.filter(pk=style.pk).first() if style.pk else None
    style.full_clean()
    style.save()
    version_changed = previous is None or previous.version != style.version
    if previous is not None and previous.version != style.version:
        renditions_delete(
            renditions=Rendition.objects.filter(style=style, style_version__lt=style.version)
        )
    if style.active and (version_changed or not previous.active):
        transaction.on_commit(lambda: _send_catalog_render(style.pk))
    if style.embedding_hash != style.reference_hash:
        transaction.on_commit(lambda: _send_embedding(style.pk))
    return style


def style_set_active(*, style: Style, active: bool) -> Style:
    style.active = active
    return style_save(style=style)


def style_render_catalog(*, style: Style, after_pk=None) -> object | None:
    """Request renditions for one batch of products after `after_pk`; returns the batch's last pk
    (the caller continues from it) or None when the catalogue is done."""
    products = conf.product_model()._default_manager.order_by("pk")
    if after_pk is not None:
        products = products.filter(pk__gt=after_pk)
    batch = list(products[: conf.CATALOG_BATCH_SIZE])
    from .selectors import source_images_for

    for source in source_images_for(batch).values():
        rendition_request(source=source, style=style)
    return batch[-1].pk if len(batch) == conf.CATALOG_BATCH_SIZE else None


def style_compute_embedding(*, style: Style) -> Style:
    """Feature statistics of the reference image (worker side: loads the VGG encoder)."""
    from .engines.embedding import style_embedding

    reference = _open_stored(style.reference_image.name)
    vector = style_embedding(reference, device=conf.DEVICE)
    Style.objects.filter(pk=style.pk).update(
        embedding=[round(float(x), 6) for x in vector], embedding_hash=style.reference_hash
    )
    style.refresh_from_db(fields=["embedding", "embedding_hash"])
    from .signals import style_embedding_updated

    style_embedding_updated.send(sender=Style, style=style)
    return style


def renditions_delete(*, renditions) -> int:
    """Delete rows now and their files once the deletion has committed."""
    names = [name for name in renditions.values_list("file", flat=True) if name]
    # Pages may have cached the styles' current renditions; older versions are never shown.
    current = set(
        renditions.filter(
            style_version=models.F("style__version"), params_hash=models.F("style__params_hash")
        ).values_list("source_hash", flat=True)
    )
    count, _ = renditions.delete()
    cache.sources_changed(current)

    def delete_files() -> None:
        for name in names:
            default_storage.delete(name)

    transaction.on_commit(delete_files)
    return count


def _send_catalog_render(style_id: int) -> None:
    from .tasks import render_style_catalog

    _send(render_style_catalog, style_id)


def _send_embedding(style_id: int) -> None:
    from .tasks import compute_style_embedding

    _send(compute_style_embedding, style_id, queue=conf.RENDER_QUEUE)


def _send(task, *args, queue: str | None = None) -> None:
    try:
        task.apply_async(args=list(args), queue=queue or conf.DEFAULT_QUEUE, retry=False)
    except Exception as exc:  # the periodic sweep catches up once the broker is back
        logger.warning("Could not enqueue %s%s: %s", task.name, args, exc)
