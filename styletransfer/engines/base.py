"""Engine interface: errors, render parameters, the engine registry and the Engine base class."""

from __future__ import annotations

import contextlib
import importlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # only for annotations: web processes must not pay for numpy/PIL imports here
    import numpy as np
    from PIL import Image


class EngineError(Exception):
    """Base class of every error an engine raises on purpose."""


class InputImageError(EngineError):
    """The content or style image cannot be used (unreadable, corrupt, not an image, too large)."""


class WeightsError(EngineError):
    """Model weights are missing or do not match their checksum."""


class OutOfMemory(EngineError):
    """The device ran out of memory; retry smaller or on the CPU."""


Progress = Callable[[int, int], None]

# name -> "module:Class"; modules are imported on first use so that importing this
# package never imports torch.
ENGINES: dict[str, str] = {
    "optimize": "styletransfer.engines.optimize:OptimizeEngine",
    "color": "styletransfer.engines.color:ColorEngine",
    "feedforward": "styletransfer.engines.feedforward:FeedForwardEngine",
}
ENGINE_NAMES: tuple[str, ...] = tuple(ENGINES)
MODES: tuple[str, ...] = ("whole", "product")
# sha256 of the feed-forward decoder shipped in styletransfer/weights/ (printed by the
# training command). It is part of that engine's canonical parameters, so shipping a
# retrained decoder gives styles new rendition keys instead of serving the old pixels.
DECODER_SHA256 = "524e826e065ee243ee612830090a7c608420a86a0592219d3b2bd7178c2c1755"
MAX_SIZE = 4096


@dataclass(frozen=True)
class RenderParams:
    """Everything that changes the pixels of a rendition, apart from the two images."""

    engine: str = "optimize"
    strength: int = 70
    mode: str = "whole"
    preserve_colors: bool = False
    size: int = 512
    steps: int | None = None
    seed: int = 0
    sharpen: float = 0.0
    denoise: float = 0.0

    # Parameters an engine ignores stay out of its canonical form, so changing them
    # does not invalidate renditions.
    IGNORED: ClassVar[dict[str, frozenset[str]]] = {
        "color": frozenset({"steps", "seed"}),
        "feedforward": frozenset({"steps", "seed"}),
    }

    def validate(self) -> RenderParams:
        """Raise ValueError naming the first bad field; return self so calls can chain."""
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not {self.engine!r}")
        _check_int("strength", self.strength, 0, 100)
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if not isinstance(self.preserve_colors, bool):
            raise ValueError("preserve_colors must be true or false")
        _check_int("size", self.size, 16, MAX_SIZE)
        if self.steps is not None:
            _check_int("steps", self.steps, 1, 10_000)
        _check_int("seed", self.seed, 0, 2**32 - 1)
        for name in ("sharpen", "denoise"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise ValueError(f"{name} must be a number from 0 to 1, not {value!r}")
        return self

    def canonical(self) -> dict[str, Any]:
        """The engine-relevant values, sorted by name, in a form that hashes stably."""
        ignored = self.IGNORED.get(self.engine, frozenset())
        if self.mode == "product":  # the product keeps its colours anyway
            ignored = ignored | {"preserve_colors"}
        values = {k: v for k, v in asdict(self).items() if k not in ignored}
        for name in ("sharpen", "denoise"):
            if name in values:
                values[name] = round(float(values[name]), 4)
        if self.engine == "feedforward":
            values["weights"] = DECODER_SHA256[:16]
        return dict(sorted(values.items()))


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}, not {value!r}")


@dataclass
class Canvas:
    """Preprocessed inputs shared by every engine (float32 arrays in 0..1)."""

    content: np.ndarray  # H x W x 3, composited on white when the input had alpha
    style: np.ndarray  # h x w x 3
    mask: np.ndarray | None = None  # H x W product coverage in product mode
    backdrop: np.ndarray | None = None  # the plain colour the product was shot on (RGB)
    alpha: np.ndarray | None = None  # H x W alpha of a cut-out, in either mode


class Engine:
    """Load once, then render: preprocess -> infer -> postprocess (TorchServe's handler shape)."""

    name: ClassVar[str] = ""

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self.loaded = False

    def load(self) -> None:
        """Load weights; called once per process by get_engine."""
        self.loaded = True

    def render(
        self,
        content: Image.Image,
        style: Image.Image,
        params: RenderParams,
        progress: Progress | None = None,
    ) -> Image.Image:
        """Stylise `content` after `style`: an RGB image whose longest side is params.size."""
        params.validate()
        if not self.loaded:
            self.load()
        with self.out_of_memory_as_error(params):
            canvas = self.preprocess(content, style, params)
            stylised = self.infer(canvas, params, progress)
            return self.postprocess(stylised, canvas, params)

    @contextlib.contextmanager
    def out_of_memory_as_error(self, params: RenderParams) -> Iterator[None]:
        """Turn torch's and Python's out-of-memory errors into OutOfMemory (tasks retry on cpu)."""
        try:
            yield
        except MemoryError as exc:
            raise OutOfMemory(f"out of memory rendering at {params.size} px: {exc}") from exc
        except RuntimeError as exc:
            # torch.OutOfMemoryError subclasses RuntimeError; matching by name keeps torch out.
            message = str(exc)
            if (
                type(exc).__name__ == "OutOfMemoryError"
                or "out of memory" in message
                or "can't allocate memory" in message  # torch's CPU allocator
            ):
                raise OutOfMemory(
                    f"{self.device} ran out of memory at {params.size} px; retry smaller or on cpu"
                ) from exc
            raise

    def preprocess(self, content: Image.Image, style: Image.Image, params: RenderParams) -> Canvas:
        from . import images

        return images.prepare_canvas(content, style, size=params.size, mode=params.mode)

    def infer(self, canvas: Canvas, params: RenderParams, progress: Progress | None) -> np.ndarray:
        """Return the stylised canvas, H x W x 3 float32 in 0..1."""
        raise NotImplementedError

    def postprocess(
        self, stylised: np.ndarray, canvas: Canvas, params: RenderParams
    ) -> Image.Image:
        from . import images

        return images.finish(
            stylised, canvas, sharpen=params.sharpen, denoise=params.denoise, mode=params.mode
        )


_engines: dict[tuple[str, str], Engine] = {}
_engines_lock = threading.Lock()


def default_device() -> str:
    """cuda when a GPU is usable, else cpu (imports torch, so only call it in workers)."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def get_engine(name: str, device: str | None = None) -> Engine:
    """The loaded engine `name` on `device`, one instance per (name, device) per process."""
    if name not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not {name!r}")
    device = device or default_device()
    key = (name, device)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            module_name, class_name = ENGINES[name].split(":")
            engine_class = getattr(importlib.import_module(module_name), class_name)
            engine = engine_class(device=device)
            engine.load()
            _engines[key] = engine
    return engine
