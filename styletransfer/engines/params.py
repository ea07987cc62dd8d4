"""What changes a rendition's pixels, and which engines exist (no torch, numpy or Pillow here)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

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


def content_budget(strength: int) -> float:
    """The relative relu4_1 change a render may make to the photo at this strength (0.49 at
    70): the optimize engine penalises steeply beyond it; the feedforward engine stops its
    compensation (or its strength) short of it when asked (RenderParams.recognisable).

    The issue calls a product recognisable up to 0.6; the margin covers 8-bit rounding and
    other implementations of the same measure.
    """
    return 0.75 * (strength / 100) ** 1.2


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
    # sha256 of the style's onboarding adapter (feedforward only; engines/onboarding.py), so
    # renditions made before a style was onboarded are superseded when its adapter lands.
    adapter: str = ""
    # Widths (px) stored besides the render, which is made at `size` (the largest of them):
    # smaller ones are scaled down from it, so every width of a srcset shows the same strokes.
    widths: tuple[int, ...] = ()
    # feedforward: keep the photo within content_budget(strength), as the optimize engine
    # always does, at the cost of style where the decoder cannot reach it within the budget.
    recognisable: bool = False

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
        if not isinstance(self.recognisable, bool):
            raise ValueError("recognisable must be true or false")
        _check_int("size", self.size, 16, MAX_SIZE)
        if self.steps is not None:
            _check_int("steps", self.steps, 1, 10_000)
        _check_int("seed", self.seed, 0, 2**32 - 1)
        if self.adapter and not (
            isinstance(self.adapter, str)
            and len(self.adapter) == 64
            and all(c in "0123456789abcdef" for c in self.adapter)
        ):
            raise ValueError(f"adapter must be a sha256 in hex, not {self.adapter!r}")
        for width in self.widths:
            _check_int("widths", width, 16, MAX_SIZE)
        ascending = list(self.widths) == sorted(set(self.widths))
        if self.widths and (not ascending or self.size < max(self.widths)):
            raise ValueError("widths must ascend, each once, none above size")
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
        if self.engine != "feedforward" or not self.adapter:  # keys made before onboarding hold
            ignored = ignored | {"adapter"}
        if not self.widths:  # keys made before widths hold
            ignored = ignored | {"widths"}
        if self.engine != "feedforward" or not self.recognisable:  # optimize always keeps it
            ignored = ignored | {"recognisable"}
        values = {k: v for k, v in asdict(self).items() if k not in ignored}
        if "widths" in values:
            values["widths"] = list(values["widths"])
        for name in ("sharpen", "denoise"):
            if name in values:
                values[name] = round(float(values[name]), 4)
        if self.engine == "feedforward":
            values["weights"] = DECODER_SHA256[:16]
            if "adapter" in values:
                values["adapter"] = values["adapter"][:16]
        return dict(sorted(values.items()))


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}, not {value!r}")
