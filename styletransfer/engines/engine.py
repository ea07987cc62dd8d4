"""The Engine base class and the per-process registry of loaded engines."""

from __future__ import annotations

import contextlib
import importlib
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, ClassVar

from .errors import OutOfMemory
from .params import ENGINES, RenderParams

if TYPE_CHECKING:  # only for annotations: importing the registry must not import numpy or PIL
    import numpy as np
    from PIL import Image

    from .images import Canvas

Progress = Callable[[int, int], None]


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
            if is_out_of_memory(exc):
                raise OutOfMemory(
                    f"{self.device} ran out of memory at {params.size} px; retry smaller or on cpu"
                ) from exc
            raise

    def preprocess(self, content: Image.Image, style: Image.Image, params: RenderParams) -> Canvas:
        from .images import prepare_canvas  # numpy and Pillow: loaded with the first render

        return prepare_canvas(content, style, size=params.size, mode=params.mode)

    def infer(self, canvas: Canvas, params: RenderParams, progress: Progress | None) -> np.ndarray:
        """Return the stylised canvas, H x W x 3 float32 in 0..1."""
        raise NotImplementedError

    def pass_size(self, shape: tuple[int, int]) -> int:
        """How many canvases of this height and width one infer_batch pass takes at once."""
        return 1

    def infer_batch(self, canvases: Sequence[Canvas], params: RenderParams) -> list[np.ndarray]:
        """Stylise several canvases of one style; engines whose device gains from batches
        override it, the others stylise one canvas after another."""
        return [self.infer(canvas, params, None) for canvas in canvases]

    def postprocess(
        self, stylised: np.ndarray, canvas: Canvas, params: RenderParams
    ) -> Image.Image:
        from .images import finish

        return finish(
            stylised, canvas, sharpen=params.sharpen, denoise=params.denoise, mode=params.mode
        )


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether torch (CUDA or CPU allocator) or Python ran out of memory."""
    if isinstance(exc, MemoryError):
        return True
    # torch.OutOfMemoryError subclasses RuntimeError; matching by name keeps torch out.
    message = str(exc)
    return isinstance(exc, RuntimeError) and (
        type(exc).__name__ == "OutOfMemoryError"
        or "out of memory" in message
        or "can't allocate memory" in message  # torch's CPU allocator
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
