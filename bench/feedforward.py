"""Benchmark of the feedforward engine: 512 px time, style loss against optimize, product ΔE2000.

    .venv/bin/python bench/feedforward.py [--threads 2] [--pairs 4] [--quality-size 256]
        [--decoder candidate.pt]

Everything runs in one process on one machine, so the figures and ratios are comparable.
Targets (issue 7): 512 px in <= 1.0 s on the 2-core CPU; style loss <= 1.5x the optimize
engine's at the same strength; product mode mean ΔE2000 <= 5 on product pixels.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from styletransfer.engines import (  # noqa: E402
    RenderParams,
    get_engine,
    metrics,  # noqa: E402
)
from styletransfer.engines.images import open_image, resize_longest  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
# (content, style) pairs from ../shared/data: photos and product shots, four paintings.
PAIRS = [
    ("train/kodak_kodim01.jpg", "styles/starry_night.jpg"),
    ("train/azure_ComputerVision_dog.jpg", "styles/the_scream.jpg"),
    ("products/saleor-blue-hoodie.png", "styles/udnie.jpg"),
    ("train/kodak_kodim23.jpg", "styles/wave.jpg"),
    ("products/saleor-mighty-mug.png", "styles/composition_vii.jpg"),
    ("train/kodak_kodim15.jpg", "styles/shipwreck.jpg"),
]
PRODUCTS = sorted((DATA / "products").glob("*.png"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    parser.add_argument("--strength", type=int, default=70)
    parser.add_argument("--pairs", type=int, default=4, help="pairs compared with optimize")
    parser.add_argument("--quality-size", type=int, default=256)
    parser.add_argument("--products", type=int, default=8, help="products for the ΔE figure")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--decoder", type=Path, help="a decoder file (+ .sha256) to measure")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    engine = get_engine("feedforward", device)
    if args.decoder:
        from styletransfer.engines.feedforward import FeedForwardEngine

        engine = FeedForwardEngine(device, weights=args.decoder)
        engine.load()
    print(f"feedforward decoder {engine.version} on {device} ({args.threads} threads)")
    print(f"machine load average before the run: {os.getloadavg()[0]:.1f}")
    speed(engine, args)
    if device.startswith("cuda"):
        gpu_throughput(engine)
    sheet = quality(engine, args, device)
    product_truth(engine, args, sheet)
    args.out.mkdir(parents=True, exist_ok=True)
    save_sheet(sheet, args.out / "feedforward-sheet.png")
    print(f"contact sheet: {args.out / 'feedforward-sheet.png'}")
    return 0


def speed(engine, args) -> None:
    """Wall time of one 512 px render (decode, resize, stylise, finish), style cached."""
    content = open_image(DATA / "train/kodak_kodim01.jpg")
    square = open_image(DATA / "products/saleor-blue-hoodie.png")
    style = open_image(DATA / "styles/starry_night.jpg")
    params = RenderParams(engine="feedforward", strength=args.strength, size=512)
    started = time.perf_counter()
    engine.render(content, style, params)
    first = time.perf_counter() - started
    for name, image, mode in (
        ("512x341 photo", content, "whole"),
        ("512x512 cut-out", square, "product"),
    ):
        times, cpu = [], []
        for _ in range(args.repeats):
            started, cpu_started = time.perf_counter(), time.process_time()
            engine.render(image, style, dataclasses.replace(params, mode=mode))
            times.append(time.perf_counter() - started)
            cpu.append(time.process_time() - cpu_started)
        median = statistics.median(times)
        # CPU seconds / threads is what the render costs on an otherwise idle machine.
        print(
            f"512 px {name} ({mode}): median {median:.3f} s wall, best {min(times):.3f} s, "
            f"{statistics.median(cpu):.2f} CPU s over {args.repeats}; "
            f"target <= 1.0 s: {'PASS' if median <= 1.0 else 'FAIL'}"
        )
    print(f"first render (loads nothing, encodes the style once): {first:.3f} s")
    batch = [content] * 4
    started = time.perf_counter()
    engine.render_batch(batch, style, params)
    elapsed = time.perf_counter() - started
    print(f"batched 4 x 512 px: {elapsed:.3f} s, {len(batch) / elapsed:.2f} images/s")


def gpu_throughput(engine) -> None:
    """Images/s at 512 x 512, batches of 16, fp16 autocast, channels_last (stylise only)."""
    import numpy as np
    import torch

    pixels = np.random.default_rng(0).random((512, 512, 3), dtype=np.float32)
    params = RenderParams(engine="feedforward", strength=100, size=512)
    batch = [pixels] * 16
    engine.stylise(batch, pixels, params)
    torch.cuda.synchronize()
    started, rounds = time.perf_counter(), 10
    for _ in range(rounds):
        engine.stylise(batch, pixels, params)
    torch.cuda.synchronize()
    rate = rounds * len(batch) / (time.perf_counter() - started)
    print(f"GPU: {rate:.1f} images/s at 512x512 (batch 16, fp16); AdaIN paper: 15/s on Titan X")


def quality(engine, args, device: str) -> list[list[Image.Image]]:
    """Style loss and content change of feedforward vs optimize on the same pairs."""
    optimize = get_engine("optimize", device)
    rows, ratios = [], []
    size = args.quality_size
    print(f"\nquality at {size} px, strength {args.strength} (style loss: lower is better)")
    print(f"{'pair':<48} {'input':>9} {'optimize':>9} {'feedfwd':>9} {'ratio':>6} {'Δcontent':>15}")
    for content_name, style_name in PAIRS[: args.pairs]:
        content, style = open_image(DATA / content_name), open_image(DATA / style_name)
        params = RenderParams(engine="feedforward", strength=args.strength, size=size)
        started = time.perf_counter()
        ours = engine.render(content, style, params)
        ours_time = time.perf_counter() - started
        started = time.perf_counter()
        theirs = optimize.render(content, style, dataclasses.replace(params, engine="optimize"))
        theirs_time = time.perf_counter() - started
        ours_fig = metrics.evaluate(ours, content, style, device=device)
        theirs_fig = metrics.evaluate(theirs, content, style, device=device)
        ratio = ours_fig["style_loss_out"] / theirs_fig["style_loss_out"]
        ratios.append(ratio)
        label = f"{Path(content_name).stem} x {Path(style_name).stem}"
        print(
            f"{label:<48} {ours_fig['style_loss_in']:9.3g} {theirs_fig['style_loss_out']:9.3g} "
            f"{ours_fig['style_loss_out']:9.3g} {ratio:6.2f} "
            f"{theirs_fig['content_change']:6.2f} / {ours_fig['content_change']:5.2f}   "
            f"({theirs_time:.1f} s / {ours_time:.2f} s)"
        )
        flat = resize_longest(content, size)
        if flat.mode == "RGBA":
            white = Image.new("RGB", flat.size, "white")
            white.paste(flat, mask=flat.getchannel("A"))
            flat = white
        rows.append([flat, resize_longest(style, size), theirs, ours])
    mean_ratio = statistics.fmean(ratios)
    print(
        f"style loss feedforward / optimize: mean {mean_ratio:.2f}, worst {max(ratios):.2f}; "
        f"target <= 1.5: {'PASS' if mean_ratio <= 1.5 else 'FAIL'}"
    )
    return rows


def product_truth(engine, args, sheet: list[list[Image.Image]]) -> None:
    """Mean ΔE2000 on product pixels and the backdrop's style cut, product mode, 512 px."""
    style = open_image(DATA / "styles/starry_night.jpg")
    params = RenderParams(engine="feedforward", strength=args.strength, size=512, mode="product")
    errors, cuts = [], []
    for path in PRODUCTS[: args.products]:
        content = open_image(path)
        out = engine.render(content, style, params)
        figures = metrics.evaluate(out, content, style, mode="product")
        errors.append(figures["product_delta_e"])
        cuts.append(figures["backdrop_style_cut"])
        if len(sheet) < args.pairs + 2:
            sheet.append([resize_longest(out, args.quality_size)])
    mean = statistics.fmean(errors)
    print(
        f"\nproduct mode, {len(errors)} products at 512 px: mean ΔE2000 {mean:.2f} "
        f"(worst {max(errors):.2f}); target <= 5: {'PASS' if mean <= 5 else 'FAIL'}; "
        f"backdrop style cut {statistics.fmean(cuts):.0%}"
    )


def save_sheet(rows: list[list[Image.Image]], path: Path) -> None:
    """Rows of content, style, optimize, feedforward (then product-mode outputs)."""
    width = max(sum(image.width + 8 for image in row) for row in rows)
    height = sum(max(image.height for image in row) + 8 for row in rows)
    sheet = Image.new("RGB", (width, height), "white")
    top = 0
    for row in rows:
        left = 0
        for image in row:
            sheet.paste(image.convert("RGB"), (left, top))
            left += image.width + 8
        top += max(image.height for image in row) + 8
    sheet.save(path)


if __name__ == "__main__":
    sys.exit(main())
