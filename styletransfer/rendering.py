"""Worker-side writes: claiming a rendition, rendering it, storing its file, style embeddings."""

import io
import logging
import os
import threading
import time
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import DatabaseError, connection, models, transaction
from django.db.models.functions import Now
from django.utils import timezone

from . import adapters, invalidation, keys
from .conf import conf
from .engines.engine import get_engine
from .engines.errors import EngineError, InputImageError, OutOfMemory
from .models import Rendition, Style
from .signals import style_embedding_updated
from .time_limits import soft_time_limit

logger = logging.getLogger(__name__)

EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}


def dead_claims() -> models.Q:
    """Rendering rows whose worker is gone: no heartbeat for HEARTBEAT_TIMEOUT seconds (by the
    database's clock, so no two machines' clocks are compared), or, for a worker that sends
    none (an older release), started more than STALE_AFTER seconds ago."""
    silent = timezone.timedelta(seconds=conf.HEARTBEAT_TIMEOUT)
    stale = timezone.now() - timezone.timedelta(seconds=conf.STALE_AFTER)
    no_heartbeat = models.Q(heartbeat_at__isnull=True)
    return models.Q(heartbeat_at__lt=Now() - silent) | (
        no_heartbeat & (models.Q(started_at__isnull=True) | models.Q(started_at__lt=stale))
    )


def _claim(rendition_id: int, task_id: str | None, stale_claim: str | None) -> Rendition | None:
    """Mark the rendition as rendering by us, unless it is done or a live worker is on it.

    A redelivered message keeps its task id, so a render whose worker died is taken over
    at once; another task takes it over once the claim is dead (dead_claims), or, for a
    claim with no heartbeat, when the sweep of an older release named that exact claim.
    """
    with transaction.atomic():
        rendition = (
            Rendition.objects.select_for_update()
            .select_related("style")
            .annotate(
                db_now=Now(),
                claim_dead=models.ExpressionWrapper(
                    dead_claims(), output_field=models.BooleanField()
                ),
            )
            .filter(pk=rendition_id)
        ).first()
        if rendition is None or rendition.status in (
            Rendition.Status.READY,
            Rendition.Status.FAILED,
        ):
            return None
        held_by_other = (
            rendition.status == Rendition.Status.RENDERING
            and rendition.task_id != (task_id or "")
            and not rendition.claim_dead
        )
        if held_by_other and (
            rendition.heartbeat_at is not None or rendition.started_at.isoformat() != stale_claim
        ):
            return None
        rendition.status = Rendition.Status.RENDERING
        rendition.started_at = timezone.now()
        rendition.heartbeat_at = rendition.db_now
        rendition.attempts += 1
        rendition.task_id = task_id or ""
        rendition.save(
            update_fields=["status", "started_at", "heartbeat_at", "attempts", "task_id"]
        )
    return rendition


class Heartbeat:
    """While the engine runs, a daemon thread refreshes the heartbeat_at of the claims (one
    render's, or a batch's) every HEARTBEAT_INTERVAL seconds, so a long healthy render is never
    taken for a dead one.

    It stops when the block ends, or when no claim is ours any more (taken over, finished: a
    finished rendition of a batch simply drops out of the UPDATE).
    """

    def __init__(self, *renditions: Rendition):
        self.rendition_ids = [rendition.pk for rendition in renditions]
        claims = models.Q(pk__in=[])
        for rendition in renditions:
            claims |= models.Q(
                pk=rendition.pk, task_id=rendition.task_id, started_at=rendition.started_at
            )
        self.claim = Rendition.objects.filter(claims, status=Rendition.Status.RENDERING)
        self.stopped = threading.Event()
        name = f"rendition-{self.rendition_ids[0] if self.rendition_ids else 0}-heartbeat"
        self.thread = threading.Thread(target=self._beat, name=name, daemon=True)

    def __enter__(self) -> "Heartbeat":
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)  # one UPDATE at most is in flight; never hold the render up

    def _beat(self) -> None:
        try:
            while not self.stopped.wait(conf.HEARTBEAT_INTERVAL):
                try:
                    if not self.claim.update(heartbeat_at=Now()):
                        logger.warning(
                            "Rendition(s) %s no longer claimed by this render", self.rendition_ids
                        )
                        return
                except DatabaseError as exc:  # the next beat tries again
                    logger.warning("Heartbeat of %s failed: %s", self.rendition_ids, exc)
                    connection.close()
        finally:
            connection.close()  # this thread's own connection


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
    with Heartbeat(rendition):
        try:
            content = _open_stored(rendition.source_name)
            reference = _open_stored(style.reference_image.name)
            engine = get_engine(style.engine, device or conf.DEVICE)
            params = style.render_params()
            adapters.adapter_ensure_local(engine, params.adapter)
            with soft_time_limit(conf.RENDER_TIME_LIMIT):
                image = engine.render(content, reference, params)
        except SoftTimeLimitExceeded:
            _finish(rendition, status=Rendition.Status.FAILED, error=time_limit_error())
            return rendition
        except (InputImageError, ValueError) as exc:
            _finish(rendition, status=Rendition.Status.FAILED, error=_one_line(exc))
            return rendition
        except EngineError as exc:
            if isinstance(exc, OutOfMemory):
                raise
            _finish(rendition, status=Rendition.Status.FAILED, error=_one_line(exc))
            return rendition
        name, variants = _store(rendition, style, image, params.widths)
    _finish(
        rendition,
        status=Rendition.Status.READY,
        file=name,
        width=image.width,
        height=image.height,
        variants=variants,
        engine=style.engine,
        device=engine.device,
        render_seconds=time.perf_counter() - started,
        product_mode=image.info.get("product_mode", ""),
    )
    return rendition


def time_limit_error() -> str:
    return f"took longer than {conf.RENDER_TIME_LIMIT} s; use a smaller size or fewer steps"


def _open_stored(name: str):
    from .engines.images import open_image  # numpy and Pillow's codecs: workers only

    try:
        with default_storage.open(name, "rb") as fh:
            return open_image(fh, max_pixels=conf.MAX_SOURCE_PIXELS, formats=conf.IMAGE_FORMATS)
    except FileNotFoundError as exc:
        raise InputImageError(f"the file {name} is missing from storage") from exc


def _store(rendition: Rendition, style: Style, image, widths=()) -> tuple[str, list]:
    """Write the rendition's file under its key-derived name, and one file per smaller width
    scaled down from it; returns the name and the variants ([width, height, name], ascending).

    The variants are written first, so a rendition whose file exists has them all."""
    from PIL import Image  # workers only

    extension = EXTENSIONS[conf.OUTPUT_FORMAT]
    name = keys.rendition_name(
        directory=conf.RENDITIONS_DIR,
        style_slug=style.slug,
        source_hash=rendition.source_hash,
        style_version=rendition.style_version,
        params_hash=rendition.params_hash,
        extension=extension,
    )
    variants = []
    for width in widths:
        if width >= image.width:  # a portrait photo's largest width is the render itself
            continue
        height = max(1, round(image.height * width / image.width))
        smaller = image.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0)
        variant = keys.variant_name(name, width)
        _write(variant, _encode(smaller))
        variants.append([width, height, variant])
    _write(name, _encode(image))
    return name, variants


def _encode(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=conf.OUTPUT_FORMAT, quality=conf.OUTPUT_QUALITY, optimize=True)
    return buffer.getvalue()


def _write(name: str, data: bytes) -> None:
    """Write atomically where the storage allows: a killed worker leaves no half image."""
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
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(partial, path)


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
    invalidation.sources_changed([rendition.source_hash])


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:500] or type(exc).__name__


def style_compute_embedding(*, style: Style) -> Style:
    """Feature statistics of the reference image (worker side: loads the VGG encoder)."""
    from .engines.embedding import style_embedding  # torch: workers only

    reference = _open_stored(style.reference_image.name)
    vector = style_embedding(reference, device=conf.DEVICE)
    Style.objects.filter(pk=style.pk).update(
        embedding=[round(float(x), 6) for x in vector], embedding_hash=style.reference_hash
    )
    style.refresh_from_db(fields=["embedding", "embedding_hash"])
    style_embedding_updated.send(sender=Style, style=style)
    return style
