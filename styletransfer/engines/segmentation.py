"""Finding the product in a photo with neither alpha nor a plain background (OpenCV's GrabCut).

GrabCut runs on a reduced copy with the border as sure background, seeded once with all
inside it as probable product and once with only a centre box (_choose keeps the better
outline), then once more near the canvas's size in a band around the outline kept. It is
taken only when it looks like one product (or a pair) standing inside the frame; otherwise
`segment_product` says why, and the caller paints the whole photo.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2  # imported by images.find_product only when a photo needs it
import numpy as np
from scipy import ndimage

# GrabCut's cost grows with the pixels: the outline is found at WORK_SIDE px on the long side,
# its edge refined at up to REFINE_SIDE and then upsampled.
WORK_SIDE = 200
REFINE_SIDE = 1024
BORDER = 0.03  # the outermost ring (share of the short side) is sure background
CENTRE = 0.5  # the central box (share of each side) the narrow seeding calls product
ITERATIONS = 5
EDGE_BAND = 0.02  # half-width of the band refined near canvas size (share of the short side)
PART = 0.2  # a part this share of the largest one counts (the second shoe of a pair)
OPENING = 1  # erosions then dilations that cut bridges in the reduced copy (see _opened)
PAIR = 0.5  # colour overlap (colour_overlap) of a part that belongs with the largest one

# What a product's outline looks like: bounds set just outside what real clothing photos on
# floors, beds and carpets give, and inside what scenes with nothing separable give
# (bench/segmentation.py prints both).
MIN_COVERAGE = 0.04
MAX_COVERAGE = 0.85
MAX_PARTS = 2
MIN_DOMINANCE = 0.85  # share of the outline's area in its counted parts (not in specks)
MAX_BORDER_CONTACT = 0.35  # share of the ring just inside the seeded border that is product
MIN_STABILITY = 0.9  # IoU of the outline after ITERATIONS - 2 and after ITERATIONS
MIN_SEPARATION = 0.3  # see separation()


@dataclass
class Segmentation:
    """GrabCut's verdict on one photo; `mask` is None when it was refused (`reason` says why)."""

    mask: np.ndarray | None = None
    coverage: float = 0.0
    parts: int = 0
    dominance: float = 0.0
    border_contact: float = 0.0
    stability: float = 0.0
    separation: float = 0.0
    reason: str = ""


def segment_product(pixels: np.ndarray) -> Segmentation:
    """The product's coverage (H x W: 1.0 inside, a feathered edge) in an RGB photo (0..1)."""
    photo = np.clip(np.rint(pixels[..., :3] * 255), 0, 255).astype(np.uint8)
    small = _resized(photo, WORK_SIDE, cv2.INTER_AREA)
    frame = _seeds(small.shape[:2])
    wide = _outline(small, frame, frame)
    narrow = _outline(small, _centre_seeds(frame), frame)
    found, product = _choose(small, wide, narrow)
    if not found.reason:
        try:
            found.mask = _refine(photo, _counted_parts(product))
        except cv2.error as exc:
            return Segmentation(reason=f"GrabCut found no outline ({exc.err or exc})")
    return found


def _outline(small, seeds, frame) -> tuple[Segmentation, np.ndarray | None]:
    """GrabCut from these seeds, measured against the frame's border ring."""
    # GrabCut seeds its colour models' k-means from OpenCV's per-thread generator: the same
    # photo gives the same outline in any worker, whatever it segmented before.
    cv2.setRNGSeed(0)
    try:
        product, previous = _grabcut(small, seeds)
    except cv2.error as exc:  # e.g. no sample left for one of its colour models
        return Segmentation(reason=f"GrabCut found no outline ({exc.err or exc})"), None
    return _measure(small, product, previous, frame), product


def _choose(small, wide, narrow) -> tuple[Segmentation, np.ndarray | None]:
    """Of the outlines seeded from the whole frame and from its centre, the one to keep.

    From the whole frame, GrabCut takes in whatever has colours the border lacks (a door
    beside a shirt); from the centre, it may stop short of a garment's paler half. Where the
    wide outline adds to the narrow one in the narrow one's colours it is the same product
    (wide wins), in colours of their own something else (narrow wins).
    """
    (wide_found, wide_product), (narrow_found, narrow_product) = wide, narrow
    if narrow_found.reason:
        return wide
    if wide_found.reason:
        return narrow
    extra = wide_product & ~narrow_product
    if extra.sum() < 0.02 * narrow_product.sum():
        return wide
    return wide if colour_overlap(small, extra, narrow_product) >= PAIR else narrow


def _resized(image: np.ndarray, side: int, interpolation: int) -> np.ndarray:
    height, width = image.shape[:2]
    scale = min(1.0, side / max(height, width))
    if scale == 1.0:
        return image
    size = (max(8, round(width * scale)), max(8, round(height * scale)))
    return cv2.resize(image, size, interpolation=interpolation)


def _seeds(shape: tuple[int, int]) -> np.ndarray:
    """The border ring sure background, the rest probable product."""
    height, width = shape
    seeds = np.full(shape, cv2.GC_PR_FGD, dtype=np.uint8)
    ring = max(1, round(BORDER * min(height, width)))
    seeds[:ring], seeds[-ring:], seeds[:, :ring], seeds[:, -ring:] = (cv2.GC_BGD,) * 4
    return seeds


def _centre_seeds(frame: np.ndarray) -> np.ndarray:
    """The frame's seeds with only the central CENTRE box probable product."""
    seeds = frame.copy()
    height, width = frame.shape
    top, left = round(height * (1 - CENTRE) / 2), round(width * (1 - CENTRE) / 2)
    box = np.zeros(frame.shape, dtype=bool)
    box[top : height - top, left : width - left] = True
    seeds[(frame == cv2.GC_PR_FGD) & ~box] = cv2.GC_PR_BGD
    return seeds


def _grabcut(small: np.ndarray, seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The product after ITERATIONS, and after ITERATIONS - 2 (for the stability check).

    A part apart from the product in colours of its own (a door, a window behind a shirt)
    is made sure background midway, so the colour models learn it is not product; a part in
    the product's colours (the second shoe of a pair) stays.
    """
    labels = seeds.copy()
    background, foreground = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(small, labels, None, background, foreground, ITERATIONS - 2, cv2.GC_INIT_WITH_MASK)
    strays = _strays(small, _opened(_is_product(labels)))
    if strays.any():
        labels[strays] = cv2.GC_BGD
        cv2.grabCut(small, labels, None, background, foreground, 2, cv2.GC_EVAL)
    previous = _opened(_is_product(labels))
    cv2.grabCut(small, labels, None, background, foreground, 2, cv2.GC_EVAL)
    return _opened(_is_product(labels)), previous


def _opened(product: np.ndarray) -> np.ndarray:
    """Without the one-pixel bridges that join the product to a neighbour of other colours."""
    return ndimage.binary_opening(product, iterations=OPENING)


def _strays(small: np.ndarray, product: np.ndarray) -> np.ndarray:
    """Parts other than the largest whose colours overlap the largest's by under PAIR."""
    labels, count = ndimage.label(product)
    strays = np.zeros_like(product)
    if count < 2:
        return strays
    areas = ndimage.sum_labels(product, labels, index=np.arange(1, count + 1))
    largest = labels == np.argmax(areas) + 1
    # Small ones too: a door left as a speck grows back into a part in the next iterations.
    for number in np.flatnonzero(areas >= 0.02 * areas.max()) + 1:
        part = labels == number
        if not (part & largest).any() and colour_overlap(small, part, largest) < PAIR:
            strays |= part
    return strays


def _is_product(labels: np.ndarray) -> np.ndarray:
    return (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)


def _measure(small, product, previous, seeds) -> Segmentation:
    found = Segmentation(coverage=float(product.mean()))
    union = np.logical_or(product, previous).sum()
    found.stability = float(np.logical_and(product, previous).sum() / union) if union else 0.0
    areas = _part_areas(product)
    if areas.size:
        counted = areas[areas >= PART * areas.max()]
        found.parts, found.dominance = len(counted), float(counted.sum() / areas.sum())
    sure = seeds == cv2.GC_BGD
    inner_ring = ndimage.binary_dilation(sure, iterations=2) & ~sure
    found.border_contact = float(product[inner_ring].mean())
    found.separation = separation(small, product)
    found.reason = _refusal(found)
    return found


def _part_areas(product: np.ndarray) -> np.ndarray:
    labels, count = ndimage.label(product)
    return ndimage.sum_labels(product, labels, index=np.arange(1, count + 1))


def _counted_parts(product: np.ndarray) -> np.ndarray:
    """The parts of at least PART of the largest one's area, without the specks (which the
    refinement would otherwise grow into parts of their own)."""
    labels, count = ndimage.label(product)
    if count < 2:
        return product
    areas = ndimage.sum_labels(product, labels, index=np.arange(1, count + 1))
    return np.isin(labels, np.flatnonzero(areas >= PART * areas.max()) + 1)


def separation(photo: np.ndarray, product: np.ndarray) -> float:
    """How far apart product and surroundings are in colour: 1 - colour_overlap.
    0: the same colours, 1: none in common."""
    if not product.any() or product.all():
        return 0.0
    return 1.0 - colour_overlap(photo, product, ~product)


def colour_overlap(photo: np.ndarray, one: np.ndarray, other: np.ndarray) -> float:
    """The intersection (0..1) of two regions' coarse colour histograms (8 levels a channel)."""
    bins = (photo // 32).astype(np.int32)
    codes = bins[..., 0] * 64 + bins[..., 1] * 8 + bins[..., 2]
    first = np.bincount(codes[one], minlength=512) / max(1, one.sum())
    second = np.bincount(codes[other], minlength=512) / max(1, other.sum())
    return float(np.minimum(first, second).sum())


def _refusal(found: Segmentation) -> str:
    if not MIN_COVERAGE <= found.coverage <= MAX_COVERAGE:
        return f"the outline GrabCut found covers {found.coverage:.0%} of the photo"
    if found.parts > MAX_PARTS or found.dominance < MIN_DOMINANCE:
        return "the outline GrabCut found falls apart into many pieces"
    if found.border_contact > MAX_BORDER_CONTACT:
        return "the outline GrabCut found runs along the photo's border"
    if found.stability < MIN_STABILITY:
        return "the outline GrabCut found keeps changing between iterations"
    if found.separation < MIN_SEPARATION:
        return "the product's colours are those of its surroundings"
    return ""


def _refine(photo: np.ndarray, product: np.ndarray) -> np.ndarray:
    """The outline near canvas size: GrabCut once more in a band around the upsampled edge,
    specks dropped and pinholes filled, then 1.0 inside and a one-pixel feather at the edge."""
    height, width = photo.shape[:2]
    work = _resized(photo, REFINE_SIDE, cv2.INTER_AREA)
    size = (work.shape[1], work.shape[0])
    coarse = cv2.resize(product.astype(np.float32), size, interpolation=cv2.INTER_LINEAR) >= 0.5
    band = max(2, round(EDGE_BAND * min(size)))
    labels = np.where(coarse, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    labels[ndimage.binary_erosion(coarse, iterations=band)] = cv2.GC_FGD
    labels[~ndimage.binary_dilation(coarse, iterations=band)] = cv2.GC_BGD
    ring = max(1, round(BORDER * min(size)))  # as sure background as in the first pass
    labels[:ring], labels[-ring:], labels[:, :ring], labels[:, -ring:] = (cv2.GC_BGD,) * 4
    background, foreground = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(work, labels, None, background, foreground, 1, cv2.GC_INIT_WITH_MASK)
    fine = _fill_pinholes(_counted_parts(ndimage.binary_opening(_is_product(labels))))
    if size != (width, height):
        fine = cv2.resize(fine.astype(np.float32), (width, height), cv2.INTER_LINEAR) >= 0.5
    mask = ndimage.gaussian_filter(fine.astype(np.float32), sigma=0.7)
    return np.where(ndimage.binary_erosion(fine, iterations=2), 1.0, mask).astype(np.float32)


def _fill_pinholes(product: np.ndarray) -> np.ndarray:
    """Holes under 1% of the product's area are GrabCut's misses (a logo's colour), not the
    background seen through a handle, so they become product."""
    holes = ndimage.binary_fill_holes(product) & ~product
    labels, count = ndimage.label(holes)
    if not count:
        return product
    areas = ndimage.sum_labels(holes, labels, index=np.arange(1, count + 1))
    small = np.flatnonzero(areas < 0.01 * product.sum()) + 1
    return product | np.isin(labels, small)
