"""Product mode on real photos: how each photo's product is found, its coverage and the time.

    .venv/bin/python bench/segmentation.py [--size 512] [--limit N] [--quiet]

Sets from ../shared/data: the 44 cut-outs (alpha), the same flattened on a plain grey
(a packshot), the clothing photos of train/ (garments on floors, beds and carpets), scenes of
train/ (Kodak, camera traps, landscapes, cities), and a synthetic set whose true mask is known:
each cut-out pasted on a busy real photo, where the IoU of the outline found against the
cut-out's alpha is measured. Prints one line per photo (mode, coverage of the mask, seconds to
find the product, and GrabCut's reason where it refused), then the share of each mode per set.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from styletransfer.engines.images import (  # noqa: E402
    find_product,
    open_image,
    prepare_canvas,
    resize_longest,
)
from styletransfer.engines.segmentation import segment_product  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
SCENES = [
    "kodak_*.jpg",
    "camtrap_*.jpg",
    "azure_Hemlock_*.jpg",
    "azure_storage_lab_tutorial_*.jpg",
    "azure_Multi_service_*.jpg",
]
# Busy backgrounds for the synthetic set: a mountain stream, a street, a facade, bikers.
BACKGROUNDS = ["kodak_kodim13.jpg", "kodak_kodim08.jpg", "kodak_kodim01.jpg", "kodak_kodim05.jpg"]
GREY = (242, 242, 240)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="canvas size (longest side)")
    parser.add_argument("--limit", type=int, help="at most this many photos per set")
    parser.add_argument("--quiet", action="store_true", help="no line per photo")
    args = parser.parse_args()
    cut_outs = sorted((DATA / "products").glob("*.png"))[: args.limit]
    clothing = sorted((DATA / "train").glob("cloth_*.jpg"))[: args.limit]
    scenes = [path for pattern in SCENES for path in sorted((DATA / "train").glob(pattern))]
    sets = {
        "cut-outs": [(path.name, open_image(path)) for path in cut_outs],
        "packshots on grey": [(path.name, on_grey(open_image(path))) for path in cut_outs],
        "clothing photos": [(path.name, open_image(path)) for path in clothing],
        "scenes": [(path.name, open_image(path)) for path in scenes[: args.limit]],
    }
    print(f"product mode at {args.size} px; one line per photo: mode, coverage, seconds")
    summaries = [survey(name, photos, args) for name, photos in sets.items()]
    ious = synthetic(cut_outs, args)
    print("\n== summary ==")
    for line in summaries:
        print(line)
    print(iou_summary("synthetic (cut-out on a busy photo", ious))
    for number, background in enumerate(BACKGROUNDS):
        print(iou_summary(f"  on {background}", ious[number :: len(BACKGROUNDS)]))
    return 0


def iou_summary(name: str, ious: list[float | None]) -> str:
    accepted = [value for value in ious if value is not None]
    if not accepted:
        return f"{name}, {len(ious)}): none segmented"
    return (
        f"{name}, {len(ious)}): segmented {len(accepted)}, IoU median "
        f"{statistics.median(accepted):.3f}, >= 0.9 in {sum(value >= 0.9 for value in accepted)}"
        f", < 0.5 in {sum(value < 0.5 for value in accepted)}"
    )


def on_grey(cut_out: Image.Image) -> Image.Image:
    packshot = Image.new("RGB", cut_out.size, GREY)
    packshot.paste(cut_out, (0, 0), cut_out if cut_out.mode == "RGBA" else None)
    return packshot


def survey(name: str, photos: list[tuple[str, Image.Image]], args) -> str:
    modes, seconds = Counter(), []
    for label, photo in photos:
        mode, coverage, took, reason = find(photo, args.size)
        modes[mode] += 1
        seconds.append(took)
        if not args.quiet:
            print(f"{name:18} {label[:40]:40} {mode:9} {coverage:5.2f} {took:6.3f} s {reason}")
    shares = ", ".join(f"{mode} {count}" for mode, count in modes.most_common())
    return (
        f"{name} ({len(photos)}): {shares}; median {statistics.median(seconds):.3f} s, "
        f"max {max(seconds):.3f} s"
    )


def find(photo: Image.Image, size: int) -> tuple[str, float, float, str]:
    """Product mode, mask coverage, seconds to find the product, GrabCut's refusal if any."""
    canvas = prepare_canvas(photo, photo, size=size, mode="whole")
    started = time.perf_counter()
    find_product(canvas, cut_out=canvas.alpha is not None)
    took = time.perf_counter() - started
    coverage = float((canvas.mask > 0.5).mean()) if canvas.mask is not None else 0.0
    reason = segment_product(canvas.content).reason if canvas.product_mode == "whole" else ""
    return canvas.product_mode, coverage, took, reason


def synthetic(cut_outs: list[Path], args) -> list[float | None]:
    """IoU of GrabCut's outline against the alpha of each cut-out pasted on a busy photo."""
    ious: list[float | None] = []
    for number, path in enumerate(cut_outs):
        background_name = BACKGROUNDS[number % len(BACKGROUNDS)]
        photo, truth = composite(open_image(path), background_name, number, args.size)
        started = time.perf_counter()
        found = segment_product(np.asarray(photo, dtype=np.float32) / 255)
        took = time.perf_counter() - started
        if found.mask is None:
            ious.append(None)
            line = f"refused: {found.reason}"
        else:
            product = found.mask > 0.5
            ious.append(float((product & truth).sum() / (product | truth).sum()))
            line = f"IoU {ious[-1]:.3f}"
        if not args.quiet:
            print(f"synthetic {path.name[:32]:32} on {background_name:17} {took:6.3f} s {line}")
    return ious


def composite(cut_out: Image.Image, background_name: str, number: int, size: int):
    """The cut-out (0.6 of the frame) on a centre square of a real photo, and its true mask."""
    background = resize_longest(open_image(DATA / "train" / background_name), round(1.5 * size))
    left, top = (background.width - size) // 2, (background.height - size) // 2
    photo = background.crop((left, top, left + size, top + size)).convert("RGB")
    product = resize_longest(cut_out, round(0.6 * size)).convert("RGBA")
    x = (size - product.width) // 2 + (number % 3 - 1) * size // 12
    y = (size - product.height) // 2 + (number % 2) * size // 16
    photo.paste(product, (x, y), product)
    truth = np.zeros((size, size), dtype=bool)
    alpha = np.asarray(product)[..., 3] > 127
    truth[y : y + product.height, x : x + product.width] = alpha
    return photo, truth


if __name__ == "__main__":
    sys.exit(main())
