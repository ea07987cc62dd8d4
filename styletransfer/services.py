"""Web-side writes: registering product images, requesting renditions, applying style edits."""

import dataclasses
import logging

from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from . import broker, invalidation, keys, queues, rendering, selectors, tasks
from .conf import conf
from .models import OnboardingState, Rendition, SourceImage, Style

logger = logging.getLogger(__name__)


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
                digest = keys.file_hash(fh)
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
        invalidation.products_changed([(content_type.pk, product.pk)])
    if changed:
        styles = list(Style.objects.filter(active=True))
        for source in changed:
            for style in styles:
                rendition_request(source=source, style=style, bulk=True)
    return sources


PHOTO_SWEEP_KEY = "styletransfer:photo-sweep-after"


def photos_sweep() -> int:
    """Hash the photos of the next PHOTO_SWEEP_BATCH live products again (after the pk where
    the last sweep stopped, kept in the cache; from the start when it is gone) and render
    what changed; returns how many products' photos had changed."""
    batch_size = conf.PHOTO_SWEEP_BATCH
    if not batch_size:
        return 0
    cache = invalidation.shown_cache()
    try:
        after = cache.get(PHOTO_SWEEP_KEY)
    except Exception:  # a cache outage: start from the beginning
        after = None
    products = conf.live_products().order_by("pk")
    if after is not None:
        products = products.filter(pk__gt=after)
    batch = list(products[:batch_size])
    known: dict[str, set] = {str(product.pk): set() for product in batch}
    for object_id, *image in SourceImage.objects.filter(
        content_type=ContentType.objects.get_for_model(conf.product_model()),
        object_id__in=list(known),
    ).values_list("object_id", "position", "name", "content_hash"):
        known[object_id].add(tuple(image))
    changed = 0
    for product in batch:
        now = {(s.position, s.name, s.content_hash) for s in source_images_sync(product=product)}
        changed += now != known[str(product.pk)]
    try:
        cache.set(PHOTO_SWEEP_KEY, batch[-1].pk if len(batch) == batch_size else None, None)
    except Exception as exc:
        logger.warning("Photo sweep position not kept: %s", exc)
    return changed


def source_images_of(products) -> dict:
    """Primary SourceImage per product pk; products never seen before are registered now."""
    found = selectors.source_images_for(products)
    for product in products:
        if product.pk not in found:
            sources = source_images_sync(product=product)
            if sources:
                found[product.pk] = sources[0]
    return found


# --- Requesting renditions ---------------------------------------------------------------------


def rendition_request(*, source: SourceImage, style: Style, bulk: bool = False) -> Rendition:
    """The rendition of `source` in the current version of `style`, enqueued if new.

    Race-safe: concurrent requests for one key create one row and enqueue one render.
    """
    rendition, created = _rendition_get_or_create(source=source, style=style)
    if created:
        rendition_enqueue(rendition=rendition, bulk=bulk)
    return rendition


def renditions_request_batch(*, sources, style: Style) -> list[Rendition]:
    """The renditions of `sources` in `style`, as rendition_request gives them; the new ones
    go to the render queue RENDER_BATCH_SIZE to a message (tasks.render_batch)."""
    renditions, created = [], []
    for source in sources:
        rendition, new = _rendition_get_or_create(source=source, style=style)
        renditions.append(rendition)
        if new:
            created.append(rendition)
    size = max(1, conf.RENDER_BATCH_SIZE)
    for start in range(0, len(created), size):
        renditions_enqueue_batch(renditions=created[start : start + size])
    return renditions


def _rendition_get_or_create(*, source: SourceImage, style: Style) -> tuple[Rendition, bool]:
    key = {
        "source_hash": source.content_hash,
        "style": style,
        "style_version": style.version,
        "params_hash": style.params_hash,
    }
    try:
        with transaction.atomic():
            return Rendition.objects.get_or_create(**key, defaults={"source_name": source.name})
    except IntegrityError:  # another process created it between our SELECT and INSERT
        return Rendition.objects.get(**key), False


def renditions_enqueue_batch(*, renditions: list[Rendition]) -> None:
    """rendition_enqueue for one message of several renditions (of one style): bulk."""
    ids = [rendition.pk for rendition in renditions]

    def send() -> None:
        if broker.send(
            tasks.render_batch,
            args=[ids],
            queue=conf.RENDER_QUEUE,
            priority=render_priority(bulk=True),
        ):
            Rendition.objects.filter(pk__in=ids).update(enqueued_at=timezone.now())

    transaction.on_commit(send)


def render_priority(*, bulk: bool) -> int | None:
    """The message priority of a render: bulk ones (a catalogue, a photo import) queue behind
    the rest (a recovered render, a retry, a preview, a page's miss), which then waits for at
    most one render per worker instead of the whole catalogue.

    Redis serves priority 0 first; RabbitMQ serves high numbers first, and only on a queue
    declared with x-max-priority; other transports have none.
    """
    scheme = (tasks.render_rendition.app.conf.broker_url or "").split(":", 1)[0]
    if scheme in {"redis", "rediss", "sentinel"}:
        return 6 if bulk else 0  # two of kombu's default priority steps (0, 3, 6, 9)
    if scheme in {"amqp", "amqps", "pyamqp"}:
        return 0 if bulk else 9
    return None


def rendition_enqueue(*, rendition: Rendition, bulk: bool = False) -> None:
    """Send the render to the render queue once the row is committed; a down broker is logged,
    and the row stays pending for renditions_requeue to send again."""

    def send() -> None:
        if broker.send(
            tasks.render_rendition,
            args=[rendition.pk],
            queue=conf.RENDER_QUEUE,
            priority=render_priority(bulk=bulk),
        ):
            Rendition.objects.filter(pk=rendition.pk).update(enqueued_at=timezone.now())

    transaction.on_commit(send)


def renditions_requeue() -> int:
    """Enqueue again what a down broker or a dead worker left behind; returns how many.

    Beat's sweep, every render worker's recovery loop and render_catalog --wait call it. A
    dead claim (rendering.dead_claims) is released to pending by an UPDATE that matches only
    the claim as it was seen, so when several of them run at once one enqueues it, and a
    claim whose heartbeat came back in the meantime is left to its worker.
    """
    now = timezone.now()
    pending = Rendition.objects.filter(status=Rendition.Status.PENDING)
    unsent = pending.filter(enqueued_at__isnull=True)
    if queues.queue_depths()[conf.RENDER_QUEUE] in (0, None):
        # Sent long ago and nothing waits in the queue: the broker lost them (a Redis restarted
        # empty). While the queue holds messages, these are among them: sending each again every
        # REQUEUE_AFTER would grow a deep catalogue queue without bound.
        unsent |= pending.filter(
            enqueued_at__lt=now - timezone.timedelta(seconds=conf.REQUEUE_AFTER)
        )
    never_sent = list(unsent)
    released = []
    dead = Rendition.objects.filter(status=Rendition.Status.RENDERING).filter(
        rendering.dead_claims()
    )
    for rendition in dead:
        claim = Rendition.objects.filter(
            pk=rendition.pk,
            status=Rendition.Status.RENDERING,
            task_id=rendition.task_id,
            started_at=rendition.started_at,
            heartbeat_at=rendition.heartbeat_at,
        )
        if claim.update(status=Rendition.Status.PENDING, heartbeat_at=None, enqueued_at=None):
            logger.warning("Rendition %s: its worker is gone; rendering it again", rendition.pk)
            released.append(rendition)
    for rendition in never_sent:  # mostly a catalogue the broker missed: bulk
        rendition_enqueue(rendition=rendition, bulk=True)
    for rendition in released:  # held by a dead worker: before the catalogue's queue
        rendition_enqueue(rendition=rendition)
    return len(never_sent) + len(released)


def styles_catch_up() -> int:
    """Make sure every active style is requested for the whole catalogue and has an embedding;
    returns how many styles needed a catalogue render."""
    styles_rekey()
    styles = list(Style.objects.filter(active=True))
    behind = 0
    for style in styles:
        counts = selectors.style_coverage([style])[style.pk]
        if counts["ready"] + counts["failed"] + counts["pending"] < counts["products"]:
            _send_catalog_render(style.pk)
            behind += 1
    for style in Style.objects.exclude(embedding_hash=models.F("reference_hash")):
        _send_embedding(style.pk)
    if conf.ONBOARD_STYLES:  # never requested, or refused by a worker (a tampered adapter)
        for style in Style.objects.filter(engine="feedforward").exclude(
            onboarding_reference=models.F("reference_hash")
        ):
            style_request_onboarding(style=style)
    return behind


def styles_rekey() -> int:
    """Save again the styles whose renders the settings now make differently (the shop changed
    STYLETRANSFER["WIDTHS"]): each gets a new version, drops its older renditions and renders
    its catalogue again (pages show originals meanwhile). Returns how many were re-keyed."""
    rekeyed = 0
    for style in Style.objects.all():
        params = style.render_params()
        # The adapter comes and goes with onboarding, which keys the style itself when it lands.
        keyed = {
            keys.params_hash(
                dataclasses.replace(params, adapter=adapter).canonical(), style.reference_hash
            )
            for adapter in {"", style.adapter_sha256}
        }
        if style.params_hash in keyed:
            continue
        try:
            with transaction.atomic():
                style_save(style=style)
        except ValidationError as exc:  # an older style the new settings make invalid
            logger.warning("Style %s not re-keyed: %s", style.slug, exc)
            continue
        rekeyed += 1
    return rekeyed


def rendition_retry(*, rendition: Rendition) -> None:
    """Put a failed rendition back in the queue (after its source or style was fixed)."""
    Rendition.objects.filter(pk=rendition.pk, status=Rendition.Status.FAILED).update(
        status=Rendition.Status.PENDING, error="", enqueued_at=None
    )
    rendition_enqueue(rendition=rendition)


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
    if conf.ONBOARD_STYLES and style.needs_onboarding():
        style_request_onboarding(style=style)
    return style


def style_request_onboarding(*, style: Style) -> None:
    """Ask a render worker to tune the feedforward decoder to the current reference image;
    until its adapter lands, renders use the shipped decoder (then they are superseded)."""
    if not style.reference_hash:
        return
    fields = {
        "onboarding_state": OnboardingState.PENDING,
        "onboarding_reference": style.reference_hash,
        "onboarding_error": "",
    }
    Style.objects.filter(pk=style.pk).update(**fields)
    for name, value in fields.items():
        setattr(style, name, value)
    transaction.on_commit(lambda: _send(tasks.onboard_style, style.pk, queue=conf.RENDER_QUEUE))


def style_onboarding_land(*, onboarded) -> Style | None:
    """Put a finished onboarding into effect: the adapter enters the style's rendition key
    (a new version: older renditions are superseded and an active style renders again).
    None when the style's reference image changed while it was being tuned."""
    with transaction.atomic():
        style = Style.objects.select_for_update().filter(pk=onboarded.style_id).first()
        reference = onboarded.reference_hash
        if style is None or (style.reference_hash, style.onboarding_reference) != (
            reference,
            reference,
        ):
            return None
        style.onboarding_state = OnboardingState.READY
        style.adapter_sha256 = onboarded.adapter_sha256
        style.quality = onboarded.quality
        style.onboarding_error = ""
        return style_save(style=style)


def style_onboarding_fail(*, style_id: int, error: str) -> None:
    """Record why onboarding failed; the style keeps rendering with the shipped decoder."""
    Style.objects.filter(pk=style_id).exclude(onboarding_state=OnboardingState.READY).update(
        onboarding_state=OnboardingState.FAILED, onboarding_error=error[:2000]
    )


def style_set_active(*, style: Style, active: bool) -> Style:
    style.active = active
    return style_save(style=style)


def style_render_catalog(*, style: Style, after_pk=None) -> object | None:
    """Request renditions for one batch of products after `after_pk`; returns the batch's last pk
    (the caller continues from it) or None when the catalogue is done."""
    products = conf.live_products().order_by("pk")
    if after_pk is not None:
        products = products.filter(pk__gt=after_pk)
    batch = list(products[: conf.CATALOG_BATCH_SIZE])
    renditions_request_batch(sources=source_images_of(batch).values(), style=style)
    return batch[-1].pk if len(batch) == conf.CATALOG_BATCH_SIZE else None


def renditions_delete(*, renditions) -> int:
    """Delete rows now and their files once the deletion has committed."""
    names = [
        stored
        for name, variants in renditions.values_list("file", "variants")
        for stored in [name, *(variant[2] for variant in variants or ())]
        if stored
    ]
    # Pages may have cached the styles' current renditions; older versions are never shown.
    current = set(
        renditions.filter(
            style_version=models.F("style__version"), params_hash=models.F("style__params_hash")
        ).values_list("source_hash", flat=True)
    )
    count, _ = renditions.delete()
    invalidation.sources_changed(current)

    def delete_files() -> None:
        for name in names:
            default_storage.delete(name)

    transaction.on_commit(delete_files)
    return count


def _send_catalog_render(style_id: int) -> None:
    _send(tasks.render_style_catalog, style_id)


def _send_embedding(style_id: int) -> None:
    _send(tasks.compute_style_embedding, style_id, queue=conf.RENDER_QUEUE)


def _send(task, *args, queue: str | None = None) -> None:
    # Not sent: the sweep's styles_catch_up sends it once the broker is back.
    broker.send(task, args=list(args), queue=queue or conf.DEFAULT_QUEUE)
