"""Rendering engines (pure torch, no Django); importing this package imports no torch."""

from .base import (
    ENGINE_NAMES,
    Engine,
    EngineError,
    InputImageError,
    OutOfMemory,
    RenderParams,
    WeightsError,
    get_engine,
)

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
