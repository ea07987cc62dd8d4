"""The errors an engine raises on purpose; callers map each to an outcome."""


class EngineError(Exception):
    """Base class of every error an engine raises on purpose."""


class InputImageError(EngineError):
    """The content or style image cannot be used (unreadable, corrupt, not an image, too large)."""


class WeightsError(EngineError):
    """Model weights are missing or do not match their checksum."""


class OutOfMemory(EngineError):
    """The device ran out of memory; retry smaller or on the CPU."""
