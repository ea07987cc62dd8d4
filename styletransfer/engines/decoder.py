"""The feed-forward decoder (VGG19 relu4_1 features -> RGB), AdaIN, and its checksummed weights."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .errors import WeightsError
from .params import DECODER_SHA256
from .vgg import cuda_dtype, mean_std

# A slimmed mirror of VGG19 up to relu4_1: full width where the maps are small, a quarter of
# it at full resolution, so a 512 px decode costs ~24 GMAC instead of the mirror's ~63.
ARCH: dict[str, Any] = {
    "kind": "adain-relu4_1",
    "stages": [[512, 256], [256, 128, 128], [128, 64, 64], [64, 32]],
    # relu4_1 of the Caffe VGG is O(1000) for 0..255 pixels; the convolutions want O(1).
    "input_scale": 0.001,
}
FORMAT = 1
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
SHIPPED_FILE = WEIGHTS_DIR / "decoder.pt"
# sha256 of the shipped decoder; a retrained file is shipped by updating DECODER_SHA256 in
# params.py (the training command prints the value), which also renews rendition keys.
SHIPPED_SHA256 = DECODER_SHA256
TRAIN_COMMAND = (
    "python -m styletransfer train-decoder --content ../shared/data/train "
    "../shared/data/products --style ../shared/data/styles --out {out}"
)


class Decoder(nn.Module):
    """relu4_1 features (N x 512 x h x w) -> RGB in 0..1 (N x 3 x 8h x 8w)."""

    def __init__(self, arch: dict[str, Any] | None = None) -> None:
        super().__init__()
        arch = arch or ARCH
        self.arch = arch
        stages = arch["stages"]
        self.input_scale = float(arch["input_scale"])
        # "zeros" (the shipped decoder: a third faster on a CPU) leaves a light frame at the
        # borders (bench/heldout.py's border_frame); "reflect" needs a decoder trained with it.
        padding = arch.get("padding", "zeros")
        layers: list[nn.Module] = []
        for index, widths in enumerate(stages):
            for c_in, c_out in zip(widths, widths[1:], strict=False):
                conv = nn.Conv2d(c_in, c_out, 3, padding=1, padding_mode=padding)
                layers += [conv, nn.ReLU(inplace=True)]
            if index < len(stages) - 1:
                layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
        layers.append(nn.Conv2d(stages[-1][-1], 3, 3, padding=1, padding_mode=padding))
        self.layers = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features * self.input_scale)


def adain(content: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor) -> torch.Tensor:
    """Content features renormalised to the style's channel statistics (Huang & Belongie 2017).

    `style_mean` and `style_std` are N x C (or 1 x C), as vgg.mean_std gives them.
    """
    content = content.float()
    mean, std = mean_std(content)
    scale = (style_std / std)[..., None, None]
    return (content - mean[..., None, None]) * scale + style_mean[..., None, None]


def autocast(device: str):
    """fp16 on CUDA (vgg.cuda_dtype), bf16 on CPUs with native bf16 (AVX512-BF16/AMX: ~3x),
    else float32."""
    if torch.device(device).type == "cuda":
        dtype = cuda_dtype()
        return torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32)
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=cpu_has_bf16())


def cpu_has_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def weights_path() -> Path:
    """$STYLETRANSFER_DECODER_WEIGHTS, else the decoder shipped inside the package."""
    override = os.environ.get("STYLETRANSFER_DECODER_WEIGHTS")
    return Path(override) if override else SHIPPED_FILE


def expected_sha256(path: Path) -> str:
    """The checksum `path` must have: the one pinned here, or the `.sha256` file beside it."""
    if path.resolve() == SHIPPED_FILE.resolve() and SHIPPED_SHA256:
        return SHIPPED_SHA256
    sidecar = path.with_name(path.name + ".sha256")
    try:
        return sidecar.read_text().split()[0]
    except (OSError, IndexError):
        raise WeightsError(
            f"decoder weights at {path} have no checksum ({sidecar.name} is missing); "
            f"retrain them with `{TRAIN_COMMAND.format(out=path)}`"
        ) from None


def load_decoder(path: Path | None = None) -> tuple[Decoder, dict[str, Any]]:
    """The decoder in float32 and its metadata, after checking the file's sha256."""
    path = Path(path) if path is not None else weights_path()
    if not path.is_file():
        raise WeightsError(f"decoder weights not found at {path}; {_remedy(path)}")
    checksum = sha256_of(path)
    expected = expected_sha256(path)
    if checksum != expected:
        raise WeightsError(
            f"decoder weights at {path} are altered (sha256 {checksum[:12]}…, expected "
            f"{expected[:12]}…); {_remedy(path)}"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        meta = json.loads(payload["meta"])
        decoder = Decoder(meta["arch"])
        decoder.load_state_dict({k: v.float() for k, v in payload["state"].items()})
    except Exception as exc:  # the checksum matched, so the writer and reader disagree
        raise WeightsError(f"cannot read decoder weights at {path}: {exc}") from exc
    decoder.requires_grad_(False).eval()
    return decoder, meta | {"sha256": checksum}


def _remedy(path: Path) -> str:
    """What to run about a missing or wrong decoder file."""
    if path.resolve() != SHIPPED_FILE.resolve():
        return f"train one with `{TRAIN_COMMAND.format(out=path)}`"
    mine = "/path/to/decoder.pt"
    return (
        f"restore the shipped file with `git checkout -- styletransfer/weights/decoder.pt`, "
        f"or train one with `{TRAIN_COMMAND.format(out=mine)}` and set "
        f"STYLETRANSFER_DECODER_WEIGHTS={mine}"
    )


def save_decoder(decoder: Decoder, path: Path, meta: dict[str, Any]) -> str:
    """Write fp16 weights plus metadata atomically, and the `.sha256` beside them; return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "state": {k: v.detach().to("cpu", torch.float16) for k, v in decoder.state_dict().items()},
        "meta": json.dumps({"format": FORMAT, "arch": decoder.arch} | meta, sort_keys=True),
    }
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(payload, partial)
    os.replace(partial, path)
    checksum = sha256_of(path)
    path.with_name(path.name + ".sha256").write_text(f"{checksum}  {path.name}\n")
    return checksum


def upsample_to(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Crop or resize a decoded image to the input's exact size (VGG pools floor odd sizes)."""
    if image.shape[-2:] == (height, width):
        return image
    return F.interpolate(image, size=(height, width), mode="bilinear", align_corners=False)
