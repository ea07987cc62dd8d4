"""Render parameters, the engine registry, and that importing them costs no torch."""

import subprocess
import sys

import pytest

from styletransfer.engines import ENGINE_NAMES, RenderParams, get_engine
from tests.helpers import ROOT


def test_importing_the_engines_package_imports_no_torch() -> None:
    code = "import sys, styletransfer.engines; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_both_engines_are_registered() -> None:
    assert {"optimize", "color"} <= set(ENGINE_NAMES)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"engine": "magic"}, "engine"),
        ({"strength": 101}, "strength"),
        ({"strength": -1}, "strength"),
        ({"strength": 50.5}, "strength"),
        ({"mode": "background"}, "mode"),
        ({"size": 8}, "size"),
        ({"size": 100_000}, "size"),
        ({"steps": 0}, "steps"),
        ({"seed": -3}, "seed"),
        ({"sharpen": 2.0}, "sharpen"),
        ({"denoise": "lots"}, "denoise"),
        ({"preserve_colors": "yes"}, "preserve_colors"),
    ],
)
def test_bad_params_name_the_field(changes: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        RenderParams(**changes).validate()


def test_defaults_validate() -> None:
    assert RenderParams().validate() == RenderParams()


def test_canonical_is_sorted_and_drops_what_the_engine_ignores() -> None:
    optimize = RenderParams(engine="optimize", steps=50).canonical()
    assert list(optimize) == sorted(optimize)
    assert optimize["steps"] == 50
    color = RenderParams(engine="color", steps=50, seed=3).canonical()
    assert "steps" not in color and "seed" not in color
    assert color == RenderParams(engine="color").canonical()


def test_unknown_engine_is_refused() -> None:
    with pytest.raises(ValueError, match="engine must be one of"):
        get_engine("nope", device="cpu")
