"""Product-page renditions: the feedforward engine at 1000 px against 512 px, in one process.

    .venv/bin/python bench/product_page.py [--size 1000] [--repeats 3] [--threads 2]

A product page shows its photo about 1000 px wide (STYLETRANSFER["WIDTHS"] renders at the
largest width). The engine renders that in one pass, never in tiles, so there is no seam
(a per-line step measure was tried: a sharp product outline at 1000 px stands out from its
512 px render's as much as a seam would, so it could not tell one). This measures the rest,
with CLI defaults, on a photo (whole mode) and a cut-out
(product mode; and in whole mode, the content budget's slowest path), each after a demo
painting and a held-out one:

- seconds per render at --size (median of --repeats) and at 512 px, and their ratio beside
  the ratio of pixels (time that grows faster than the pixels would mean a slower path);
- the process's peak memory growth during the first render at --size;
- detail: metrics.fine_detail (variance finer than 1 px) of the render at --size against
  the 512 px render scaled up to the same size: above 1, the large render carries detail the
  small one cannot; and SSIM of each with the content photo (structure kept).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from styletransfer.engines import RenderParams, get_engine, metrics  # noqa: E402
from styletransfer.engines.images import open_image  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
CASES = [
    ("photo, whole", "train/kodak_kodim05.jpg", "whole"),
    ("cut-out, product", "products/saleor-dash-force-1.png", "product"),
    # a painted white backdrop is past the content budget: one more trial decode
    ("cut-out, whole", "products/saleor-white-parrot-cushion.png", "whole"),
]
PAINTINGS = [
    ROOT / "storefront" / "demo" / "styles" / "starry_night.jpg",
    DATA / "styles-eval" / "klee_signs_in_yellow.jpg",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    engine = get_engine("feedforward", args.device)
    print(f"feedforward at {args.size} px against 512 px; {args.threads} threads, {args.device}")
    header = (
        f"{'case':<40} {'s@512':>6} {f's@{args.size}':>7} {'ratio':>5} {'pixels':>6} "
        f"{'+MiB':>5} {'detail':>6} {'SSIM big/small':>14}"
    )
    print(header)
    rows = []
    for painting_path in [p for p in PAINTINGS if p.is_file()]:
        painting = open_image(painting_path)
        for label, name, mode in CASES:
            content = open_image(DATA / name)
            small_params = RenderParams(engine="feedforward", size=512, mode=mode)
            big_params = RenderParams(engine="feedforward", size=args.size, mode=mode)
            small, small_s = timed(engine, content, painting, small_params, args.repeats)
            before = peak_mib()
            big, big_s = timed(engine, content, painting, big_params, args.repeats)
            grown = peak_mib() - before
            scaled = small.resize(big.size, Image.Resampling.LANCZOS)
            row = {
                "small_s": small_s,
                "big_s": big_s,
                "pixels": (big.width * big.height) / (small.width * small.height),
                "grown": grown,
                "detail": metrics.fine_detail(big) / max(metrics.fine_detail(scaled), 1e-12),
                "ssim_big": metrics.ssim(big, content),
                "ssim_small": metrics.ssim(scaled, content),
            }
            rows.append(row)
            print(
                f"{label + ' x ' + painting_path.stem[:20]:<40} {small_s:6.2f} {big_s:7.2f} "
                f"{big_s / small_s:5.2f} {row['pixels']:6.2f} {grown:5.0f} "
                f"{row['detail']:6.2f} {row['ssim_big']:6.3f}/{row['ssim_small']:.3f}",
                flush=True,
            )
    print(
        f"\nmean: {statistics.fmean(r['big_s'] for r in rows):.2f} s per {args.size} px render "
        f"({statistics.fmean(r['big_s'] / r['small_s'] for r in rows):.2f}x the 512 px time for "
        f"{statistics.fmean(r['pixels'] for r in rows):.2f}x the pixels); fine detail "
        f"{statistics.fmean(r['detail'] for r in rows):.2f}x the 512 px render scaled up"
    )
    return 0


def timed(engine, content, painting, params, repeats: int) -> tuple[Image.Image, float]:
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        output = engine.render(content, painting, params)
        seconds.append(time.perf_counter() - started)
    return output, statistics.median(seconds)


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    sys.exit(main())
