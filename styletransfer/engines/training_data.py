"""What the decoder's training and a style's onboarding crop from: image folders, pools, crops."""

from __future__ import annotations

import math
import random
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import images
from .errors import EngineError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


def image_files(folders: list[Path]) -> list[Path]:
    """Every image below `folders`, sorted, so a run sees the same list on every machine."""
    files: list[Path] = []
    for folder in folders:
        if folder.is_file():
            files.append(folder)
            continue
        if not folder.is_dir():
            raise EngineError(f"{folder} is not a folder of images")
        files += sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise EngineError(f"no images found in {', '.join(map(str, folders))}")
    return files


def load_pool(files: list[Path], shortest: int) -> list[torch.Tensor]:
    """Images as 3 x H x W uint8 tensors, scaled so the shorter side is `shortest` px."""
    pool = []
    for path in files:
        try:
            image = images.open_image(path)
        except EngineError as exc:
            print(f"skipping {path}: {exc}", file=sys.stderr)
            continue
        scale = shortest / min(image.size)
        if scale < 1:
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            image = image.resize(size, images.Image.Resampling.LANCZOS)
        pixels, _ = images.flatten_on(image)  # cut-outs on white, as in product mode
        pool.append(torch.from_numpy(np.ascontiguousarray(pixels * 255).astype(np.uint8)))
    if not pool:
        raise EngineError("none of the training images could be read")
    return [p.permute(2, 0, 1).contiguous() for p in pool]


def random_crop(image: torch.Tensor, size: int, rng: random.Random) -> torch.Tensor:
    """A random square crop (between `size` and the whole short side), resized, maybe flipped."""
    _, height, width = image.shape
    short = min(height, width)
    side = rng.randint(min(size, short), short)
    top, left = rng.randint(0, height - side), rng.randint(0, width - side)
    crop = image[:, top : top + side, left : left + side].float()[None] / 255.0
    if side != size:
        crop = F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True)
    if rng.random() < 0.5:
        crop = crop.flip(3)
    return crop[0].clamp(0, 1)


def hue_rotate(batch: torch.Tensor, angle: float) -> torch.Tensor:
    """Rotate hue by `angle` radians in YIQ space: new palettes from the same brushwork."""
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    c, s = math.cos(angle), math.sin(angle)
    rotate = torch.tensor([[1.0, 0, 0], [0, c, -s], [0, s, c]])
    matrix = torch.linalg.inv(to_yiq) @ rotate @ to_yiq
    return torch.einsum("ij,njhw->nihw", matrix, batch).clamp(0, 1)
