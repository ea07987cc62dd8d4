"""Style embeddings: VGG19 feature statistics of a reference image, for the recommender."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from .engine import default_device
from .images import resize_longest, to_float
from .vgg import load_vgg19

LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
CHANNELS = (64, 128, 256, 512)
# Per-channel mean and std at each layer: the statistics AdaIN-style transfer matches,
# so styles that render alike sit close together.
STYLE_EMBEDDING_DIM = 2 * sum(CHANNELS)
# A fixed working size makes the statistics independent of the upload's resolution.
EMBEDDING_SIZE = 256


def style_embedding(image: Image.Image, device: str | None = None) -> np.ndarray:
    """A float32 vector of STYLE_EMBEDDING_DIM numbers describing the image's style."""
    device = device or default_device()
    rgb = to_float(resize_longest(image.convert("RGB"), EMBEDDING_SIZE))
    tensor = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].to(device)
    with torch.inference_mode():
        features = load_vgg19(device)(tensor, LAYERS)
        parts = []
        for name in LAYERS:
            flat = features[name].float().flatten(2)
            # log1p tames the heavy tails of ReLU activations, so no layer dominates.
            parts += [flat.mean(dim=2).log1p(), flat.std(dim=2).log1p()]
    return torch.cat(parts, dim=1)[0].cpu().numpy().astype(np.float32)
