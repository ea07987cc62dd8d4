"""Worker-side batched renders: renditions of one style claimed together, their images decoded
and encoded on a thread pool while the device renders, each stored as a single render stores it.

The other half of rendering.py: the same claims (with one heartbeat for all of them), the same
file names and rows, the same outcome per rendition. A worker killed mid-batch leaves claims
whose heartbeat stops, recovered one by one like a single render's.
"""

import logging
import os
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from . import adapters, rendering
from .conf import conf
from .engines.engine import Engine, get_engine
from .engines.errors import EngineError, InputImageError, OutOfMemory
from .models import Rendition, Style

logger = logging.getLogger(__name__)

# Bad input: the rendition fails with the reason, as in rendering.rendition_render.
BAD_INPUT = (InputImageError, ValueError, EngineError)


@dataclass
class BatchOutcome:
    """What became of each rendition id a batch was given."""

    ready: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)  # done already, or a live worker holds it
    out_of_memory: list[int] = field(default_factory=list)  # released: render it alone on cpu

    def counts(self) -> dict[str, int]:
        return {name: len(ids) for name, ids in vars(self).items()}


@dataclass
class Item:
    """One claimed rendition on its way through the pipeline."""

    rendition: Rendition
    canvas: object = None
    seconds: float = 0.0  # its decode + share of the pass + encode
    product_mode: str = ""  # how product mode told the product apart (the image's info)


def renditions_render_batch(
    *, rendition_ids: list[int], task_id: str | None = None, device: str | None = None
) -> BatchOutcome:
    """Claim and render these renditions (catalogue renders send one style's at a time).

    Each ends as rendition_render would end it: ready with its file, or failed with the reason
    (one bad image fails alone). One that runs out of memory even alone is put back to pending
    and listed in `out_of_memory`; other errors propagate, leaving the claims to recovery.
    """
    outcome = BatchOutcome()
    claimed = []
    for rendition_id in dict.fromkeys(rendition_ids):
        rendition = rendering._claim(rendition_id, task_id, None)
        if rendition is None:
            outcome.skipped.append(rendition_id)
        else:
            claimed.append(rendition)
    if not claimed:
        return outcome
    by_style: dict[int, list[Rendition]] = {}
    with rendering.Heartbeat(*claimed):
        for rendition in claimed:
            style = rendition.style
            if (style.version, style.params_hash) != (
                rendition.style_version,
                rendition.params_hash,
            ):
                _fail(rendition, "superseded by a newer style", outcome)
            else:
                by_style.setdefault(style.pk, []).append(rendition)
        for renditions in by_style.values():
            _render_style(renditions, device, outcome)
    return outcome


def renditions_release(*, rendition_ids: list[int], task_id: str) -> list[Rendition]:
    """Put back to pending what this task still holds (its time ran out); returns those rows."""
    held = Rendition.objects.filter(
        pk__in=rendition_ids, status=Rendition.Status.RENDERING, task_id=task_id
    )
    renditions = list(held)
    held.update(status=Rendition.Status.PENDING, heartbeat_at=None, enqueued_at=None)
    return renditions


def _render_style(renditions: list[Rendition], device: str | None, outcome: BatchOutcome) -> None:
    style = renditions[0].style
    params = style.render_params()
    try:
        params.validate()
        reference = rendering._open_stored(style.reference_image.name)
        engine = get_engine(style.engine, device or conf.DEVICE)
        adapters.adapter_ensure_local(engine, params.adapter)
    except OutOfMemory:
        _release_out_of_memory(renditions, outcome)
        return
    except BAD_INPUT as exc:  # what every single render of this style would fail with
        for rendition in renditions:
            _fail(rendition, rendering._one_line(exc), outcome)
        return
    from .engines.images import resize_longest  # Pillow: workers only

    # Every canvas would resize the reference to the output size; once is enough (the canvas's
    # own resize of an image already that size is a no-op, so the pixels are the same).
    reference = resize_longest(reference, params.size)
    pipeline = Pipeline(engine, style, reference, params, outcome)
    with ThreadPoolExecutor(io_threads(engine), thread_name_prefix="render-io") as pool:
        pipeline.run(renditions, pool)


def io_threads(engine: Engine) -> int:
    """RENDER_IO_THREADS, else one per core beside a GPU; beside a CPU engine one, since torch's
    own threads already take every core there (more only stall them: bench/batch.py)."""
    if conf.RENDER_IO_THREADS:
        return max(1, conf.RENDER_IO_THREADS)
    return max(1, os.cpu_count() or 1) if engine.device.startswith("cuda") else 1


class Pipeline:
    """Decode ahead on the pool, stylise passes on the device, encode and store on the pool."""

    def __init__(self, engine: Engine, style: Style, reference, params, outcome: BatchOutcome):
        self.engine, self.style, self.reference, self.params = engine, style, reference, params
        self.outcome = outcome
        self.storing: list[tuple[Item, Future]] = []

    def run(self, renditions: list[Rendition], pool: ThreadPoolExecutor) -> None:
        waiting = deque(renditions)
        decoding: deque[tuple[Item, Future]] = deque()
        ahead = 2 * io_threads(self.engine)  # grows to two passes once the pass size is known
        while waiting or decoding:
            while waiting and len(decoding) < ahead:
                item = Item(waiting.popleft())
                decoding.append((item, pool.submit(self._prepare, item)))
            chunk, size = [], None
            while decoding and len(chunk) < (size or 1):
                item, future = decoding.popleft()
                try:
                    future.result()
                except BAD_INPUT as exc:
                    _fail(item.rendition, rendering._one_line(exc), self.outcome)
                    continue
                chunk.append(item)
                if size is None:
                    size = self.engine.pass_size(item.canvas.content.shape[:2])
                    ahead = max(ahead, 2 * size)
                while waiting and len(decoding) < ahead:
                    more = Item(waiting.popleft())
                    decoding.append((more, pool.submit(self._prepare, more)))
            for item, pixels in self._stylise(chunk):
                self.storing.append((item, pool.submit(self._encode_store, item, pixels)))
            self._settle(wait=False)
        self._settle(wait=True)

    def _prepare(self, item: Item) -> None:
        started = time.perf_counter()
        content = rendering._open_stored(item.rendition.source_name)
        item.canvas = self.engine.preprocess(content, self.reference, self.params)
        item.seconds += time.perf_counter() - started

    def _stylise(self, chunk: list[Item]) -> list[tuple[Item, object]]:
        """The stylised pixels of each item; an error in a pass of several is retried one image
        at a time, so only the image that causes it fails (or leaves for the cpu)."""
        if not chunk:
            return []
        started = time.perf_counter()
        try:
            with self.engine.out_of_memory_as_error(self.params):
                stylised = self.engine.infer_batch([item.canvas for item in chunk], self.params)
        except (OutOfMemory, *BAD_INPUT) as exc:
            if len(chunk) > 1:
                return [done for item in chunk for done in self._stylise([item])]
            if isinstance(exc, OutOfMemory):
                _release_out_of_memory([chunk[0].rendition], self.outcome)
            else:
                _fail(chunk[0].rendition, rendering._one_line(exc), self.outcome)
            return []
        share = (time.perf_counter() - started) / len(chunk)
        for item in chunk:
            item.seconds += share
        return list(zip(chunk, stylised, strict=True))

    def _encode_store(self, item: Item, pixels) -> tuple[str, int, int, list]:
        started = time.perf_counter()
        image = self.engine.postprocess(pixels, item.canvas, self.params)
        item.product_mode = image.info.get("product_mode", "")
        name, variants = rendering._store(item.rendition, self.style, image, self.params.widths)
        item.canvas = None  # its pixels are no longer needed
        item.seconds += time.perf_counter() - started
        return name, image.width, image.height, variants

    def _settle(self, *, wait: bool) -> None:
        """Mark stored renditions ready (on this thread: the pool never touches the database)."""
        left = []
        for item, future in self.storing:
            if not wait and not future.done():
                left.append((item, future))
                continue
            name, width, height, variants = future.result()  # a storage error propagates
            rendering._finish(
                item.rendition,
                status=Rendition.Status.READY,
                file=name,
                width=width,
                height=height,
                variants=variants,
                engine=self.style.engine,
                device=self.engine.device,
                render_seconds=item.seconds,
                product_mode=item.product_mode,
            )
            self.outcome.ready.append(item.rendition.pk)
        self.storing = left


def _fail(rendition: Rendition, error: str, outcome: BatchOutcome) -> None:
    rendering._finish(rendition, status=Rendition.Status.FAILED, error=error)
    outcome.failed.append(rendition.pk)


def _release_out_of_memory(renditions: list[Rendition], outcome: BatchOutcome) -> None:
    for rendition in renditions:
        logger.warning("Rendition %s ran out of memory alone; it goes to the cpu", rendition.pk)
        Rendition.objects.filter(pk=rendition.pk, status=Rendition.Status.RENDERING).update(
            status=Rendition.Status.PENDING, heartbeat_at=None
        )
        outcome.out_of_memory.append(rendition.pk)
