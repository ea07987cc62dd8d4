"""Catalogue renders through a real Celery render worker: batched against one task per rendition.

    .venv/bin/python bench/batch.py [--products 24] [--size 512] [--device cpu] [--batch 16]
        [--database-url postgres://...] [--broker-url redis://...] [--json out.json]

A shop of --products synthetic product photos (the demo's cut-outs, each moved, scaled, flipped
and re-coloured so every one has its own content hash), two `feedforward` styles with the same
reference and parameters, and one render worker as the README starts it (`celery worker -Q
render --pool solo`). One style's renditions are requested one task each (what a shopper's page
asks for), the other's as the catalogue asks for them (render_batch messages of --batch), in
ABBA order in the same run, so drift and caches hit both alike. Prints images/s of each, their
ratio (target on the 2-core CPU: >= 1.5), the time per image outside the render, whether both
stored the same bytes, and GPU utilisation while each ran (nvidia-smi, where there is one).

Without --database-url and --broker-url it runs on SQLite and kombu's filesystem transport
under --work (nothing to install: the GPU machine has neither PostgreSQL nor Redis). A
database named with --database-url is flushed.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "storefront" / "demo"
REFERENCE = DEMO / "styles" / "starry_night.jpg"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=24, help="renders per mode")
    parser.add_argument("--single-products", type=int, help="renders one task each (default all)")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=16, help="RENDER_BATCH_SIZE")
    parser.add_argument("--io-threads", type=int, help="RENDER_IO_THREADS (default: cores)")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    parser.add_argument("--broker-url", default=os.environ.get("BENCH_BROKER_URL"))
    parser.add_argument("--work", type=Path, help="folder for the shop (default: a temporary one)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    # Stopped from outside (bench/gpu.py's timeout): unwind, so the render worker is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("bench/batch.py: stopped"))
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-batch-"))
    figures = catalogue_comparison(args, work)
    report(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


def environment(args, work: Path) -> dict[str, str]:
    """What the bench process and its worker share: settings module, database, broker, media."""
    (work / "var").mkdir(parents=True, exist_ok=True)
    (work / "bench_batch_settings.py").write_text(
        "from storefront.settings import *  # noqa: F403\n"
        f"STYLETRANSFER = {{**STYLETRANSFER, 'DEVICE': {args.device!r},  # noqa: F405\n"
        f"    'RENDER_BATCH_SIZE': {args.batch}, 'CATALOG_BATCH_SIZE': {max(100, args.batch)},\n"
        f"    'RENDER_IO_THREADS': {args.io_threads!r},\n"
        "    'WIDTHS': []}  # one file per render, at the style's --size\n"
        "if CELERY_BROKER_URL.startswith('filesystem'):  # noqa: F405\n"
        "    # kombu polls the folder once a second by default: a message would wait for it.\n"
        "    CELERY_BROKER_TRANSPORT_OPTIONS = {**CELERY_BROKER_TRANSPORT_OPTIONS,  # noqa: F405\n"
        "        'polling_interval': 0.01}\n"
    )
    database = args.database_url or f"sqlite:///{work / 'var' / 'bench.sqlite3'}"
    return {
        "DJANGO_SETTINGS_MODULE": "bench_batch_settings",
        "PYTHONPATH": os.pathsep.join([str(work), str(ROOT)]),
        "DATABASE_URL": database,
        "CELERY_BROKER_URL": args.broker_url or "filesystem://",
        "STOREFRONT_VAR_DIR": str(work / "var"),
        "MEDIA_ROOT": str(work / "media"),
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "LOG_LEVEL": "WARNING",
    }


def synthetic_photos(count: int, seed: int = 0) -> list[bytes]:
    """`count` distinct product cut-outs (PNG bytes) made from the demo's 44, drawn in threads."""
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    bases = [Image.open(path).convert("RGBA") for path in sorted((DEMO / "products").glob("*.png"))]
    rng = random.Random(seed)
    plans = [
        (bases[number % len(bases)], rng.uniform(0.6, 0.95), rng.random() < 0.5, rng.random())
        for number in range(count)
    ]
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        return list(pool.map(lambda plan: _photo(*plan), plans))


def _photo(base, scale: float, mirror: bool, placement: float) -> bytes:
    from PIL import Image, ImageOps

    product = base.resize((round(base.width * scale), round(base.height * scale)))
    if mirror:
        product = ImageOps.mirror(product)
    red, green, blue, alpha = product.split()
    order = [(red, green, blue), (green, blue, red), (blue, red, green)][int(placement * 3)]
    product = Image.merge("RGBA", [*order, alpha])  # a colourway of its own
    canvas = Image.new("RGBA", (640, 640), (0, 0, 0, 0))
    room_x, room_y = 640 - product.width, 640 - product.height
    canvas.paste(product, (round(placement * room_x), round((1 - placement) * room_y)), product)
    buffer = io.BytesIO()
    canvas.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    handle = open(log, "ab")  # noqa: SIM115 - the worker keeps writing to it
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "storefront", "worker", "-Q", "render"]
        + ["--pool", "solo", "--loglevel", "INFO", "-n", f"bench-batch-{os.getpid()}@%h"]
        + ["--without-heartbeat", "--without-gossip", "--without-mingle"],
        cwd=ROOT,
        env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while b"ready." not in log.read_bytes():
        if worker.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the render worker did not start; see {log}")
        time.sleep(0.2)
    return worker


class GpuSampler:
    """nvidia-smi's utilisation and memory every 0.2 s while a block runs (None without one)."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.available = shutil.which("nvidia-smi") is not None

    def __enter__(self) -> GpuSampler:
        if self.available:
            self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stopped.set()
        if self.available:
            self.thread.join(timeout=5)

    def _sample(self) -> None:
        query = ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used"]
        query.append("--format=csv,noheader,nounits")
        while not self.stopped.wait(0.2):
            try:
                answer = subprocess.run(query, capture_output=True, text=True, timeout=5)
                utilisation, memory = (float(x) for x in answer.stdout.splitlines()[0].split(","))
            except (OSError, ValueError, IndexError, subprocess.SubprocessError):
                return
            self.samples.append((utilisation, memory))

    def figures(self) -> dict | None:
        if not self.samples:
            return None
        return {
            "utilisation_mean_pct": round(statistics.fmean(s[0] for s in self.samples), 1),
            "utilisation_max_pct": max(s[0] for s in self.samples),
            "memory_max_mib": max(s[1] for s in self.samples),
            "samples": len(self.samples),
        }


def catalogue_comparison(args, work: Path) -> dict:
    env = environment(args, work)
    os.environ.update(env)
    sys.path[:0] = [str(work), str(ROOT)]
    import django

    django.setup()
    from django.core.files.base import ContentFile
    from django.core.management import call_command
    from django.db import connection

    from storefront.celery import app
    from storefront.models import Category, Product
    from styletransfer import services
    from styletransfer.models import Style

    call_command("migrate", verbosity=0)
    call_command("flush", interactive=False, verbosity=0)
    app.control.purge()
    category = Category.objects.create(name="Bench", slug="bench")
    products = []
    for number, png in enumerate(synthetic_photos(args.products + 2)):
        product = Product(slug=f"p{number}", name=f"P{number}", price=1, category=category)
        product.image.save(f"p{number}.png", ContentFile(png), save=True)
        products.append(product)
    sources = services.source_images_of(products)
    styles = {}
    for slug in ("warm-up", "single", "batched"):
        style = Style(slug=slug, name=slug, engine="feedforward", size=args.size, mode="product")
        style.reference_image.save(f"{slug}.jpg", ContentFile(REFERENCE.read_bytes()), save=False)
        styles[slug] = services.style_save(style=style)
    log = work / "worker.log"
    worker = start_worker(env, log)
    try:
        # The engine loads and the first shapes are planned outside the timed part.
        warm = [sources[p.pk] for p in products[-2:]]
        timed_segment("single", styles["warm-up"], warm[:1], args.timeout)
        timed_segment("batched", styles["warm-up"], warm[1:], args.timeout)
        catalogue = [sources[p.pk] for p in products[: args.products]]
        single = catalogue[: args.single_products or args.products]
        halves = {"single": _halves(single), "batched": _halves(catalogue)}
        runs: dict[str, list[dict]] = {"single": [], "batched": []}
        for half, mode in ((0, "single"), (0, "batched"), (1, "batched"), (1, "single")):
            runs[mode].append(timed_segment(mode, styles[mode], halves[mode][half], args.timeout))
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
    figures = {
        "device": args.device,
        "size": args.size,
        "render_batch_size": args.batch,
        "database": connection.vendor,
        "broker": env["CELERY_BROKER_URL"].split(":")[0],
        "cpu_cores": os.cpu_count(),
        **{mode: _combine(parts) for mode, parts in runs.items()},
    }
    figures["batch_speedup"] = round(
        figures["batched"]["images_per_s"] / figures["single"]["images_per_s"], 3
    )
    figures["same_bytes"] = _same_bytes(styles["single"], styles["batched"])
    return figures


def _halves(items: list) -> tuple[list, list]:
    middle = len(items) // 2
    return items[:middle], items[middle:]


def timed_segment(mode: str, style, sources: list, timeout: float) -> dict:
    """Request these renditions one task each or in batches; wait until all are settled."""
    from styletransfer import services
    from styletransfer.models import Rendition

    hashes = [source.content_hash for source in sources]
    with GpuSampler() as gpu:
        started = time.perf_counter()
        if mode == "single":
            for source in sources:
                services.rendition_request(source=source, style=style)
        else:
            services.renditions_request_batch(sources=sources, style=style)
        rows = Rendition.objects.filter(style=style, source_hash__in=hashes)
        deadline = time.monotonic() + timeout
        while rows.filter(status__in=["ready", "failed"]).count() < len(set(hashes)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{mode} renders did not finish within {timeout:.0f} s")
            time.sleep(0.1)  # a tighter poll takes CPU from the worker on a small machine
        seconds = time.perf_counter() - started
    render_seconds = list(rows.filter(status="ready").values_list("render_seconds", flat=True))
    return {
        "images": len(set(hashes)),
        "failed": rows.filter(status="failed").count(),
        "seconds": seconds,
        "render_seconds": render_seconds,
        "gpu": gpu.figures(),
    }


def _combine(parts: list[dict]) -> dict:
    images = sum(part["images"] for part in parts)
    seconds = sum(part["seconds"] for part in parts)
    renders = [value for part in parts for value in part["render_seconds"]]
    inside = statistics.fmean(renders) if renders else 0.0
    return {
        "images": images,
        "failed": sum(part["failed"] for part in parts),
        "seconds": round(seconds, 2),
        "images_per_s": round(images / seconds, 3),
        "seconds_per_image": round(seconds / images, 4),
        # Inside rendition_render / the batch pipeline: decode, engine share, encode, store.
        "render_seconds_per_image": round(inside, 4),
        # The rest of the wall time per image: broker, task, claim, heartbeat, rows (negative
        # when decoding and encoding overlap the device's passes).
        "outside_render_seconds_per_image": round(seconds / images - inside, 4),
        "gpu": [part["gpu"] for part in parts if part["gpu"]] or None,
    }


def _same_bytes(single, batched) -> dict:
    from styletransfer.models import Rendition

    batched_files = {
        r.source_hash: r.file.name for r in Rendition.objects.filter(style=batched, status="ready")
    }
    compared = identical = 0
    for rendition in Rendition.objects.filter(style=single, status="ready"):
        other = batched_files.get(rendition.source_hash)
        if other:
            compared += 1
            with rendition.file.open("rb") as a, Rendition.file.field.storage.open(other) as b:
                identical += a.read() == b.read()
    return {"compared": compared, "identical": identical}


def report(figures: dict) -> None:
    print(
        f"Catalogue renders at {figures['size']} px on {figures['device']} through one Celery "
        f"render worker ({figures['database']}, {figures['broker']} broker), "
        f"RENDER_BATCH_SIZE {figures['render_batch_size']}:"
    )
    for mode in ("single", "batched"):
        row = figures[mode]
        label = "one task each" if mode == "single" else "batched      "
        print(
            f"  {label}: {row['images']:5d} images in {row['seconds']:8.2f} s = "
            f"{row['images_per_s']:7.2f} images/s; per image {row['seconds_per_image'] * 1000:7.1f}"
            f" ms, of which inside the render {row['render_seconds_per_image'] * 1000:7.1f} ms, "
            f"outside {row['outside_render_seconds_per_image'] * 1000:6.1f} ms"
            + (f"; GPU {row['gpu']}" if row["gpu"] else "")
        )
    same = figures["same_bytes"]
    print(
        f"  batched / one task each: {figures['batch_speedup']:.2f}x images/s "
        f"(target on the 2-core CPU >= 1.5); same bytes {same['identical']}/{same['compared']}"
    )


if __name__ == "__main__":
    main()
