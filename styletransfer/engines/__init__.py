"""Rendering engines (pure torch, no Django); importing this package imports no torch."""

from .engine import Engine, get_engine
from .errors import EngineError, InputImageError, OutOfMemory, WeightsError
from .params import ENGINE_NAMES, RenderParams

__all__ = [
    "ENGINE_NAMES",
    "Engine",
    "EngineError",
    "InputImageError",
    "OutOfMemory",
    "RenderParams",
    "WeightsError",
    "get_engine",
]
