"""`python -m styletransfer render`: exit statuses, one-line reasons, progress on stderr."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from styletransfer.engines import cli
from tests.helpers import ROOT

DATA = ROOT / "tests" / "data"
HOODIE = str(DATA / "product-hoodie.png")
WAVE = str(DATA / "style-wave.jpg")


def run_module(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "styletransfer", *args]
    return subprocess.run(
        command, cwd=ROOT, env=env or dict(os.environ), capture_output=True, text=True
    )


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.slow
def test_render_as_a_module_without_django(tmp_path: Path) -> None:
    # a `django` that cannot be imported proves the command never needs it
    (tmp_path / "django").mkdir()
    (tmp_path / "django" / "__init__.py").write_text("raise ImportError('no django here')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
    out = tmp_path / "out.png"
    result = run_module(
        "render", "--content", HOODIE, "--style", WAVE, "--out", str(out),
        "--engine", "color", "--size", "80", env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert Image.open(out).size == (80, 80)
    assert "step" in result.stderr  # the tqdm bar


@pytest.mark.slow
def test_optimize_render_in_process(tmp_path: Path) -> None:
    out = tmp_path / "out.jpg"
    argv = ["render", "--content", HOODIE, "--style", WAVE, "--out", str(out)]
    argv += ["--mode", "product", "--size", "64", "--steps", "3", "--seed", "5", "--quiet"]
    assert cli.main(argv) == cli.EXIT_OK
    with Image.open(out) as image:
        assert image.format == "JPEG" and image.size == (64, 64)


def test_unreadable_content_exits_3_with_one_line(tmp_path: Path, capsys) -> None:
    bogus = tmp_path / "photo.png"
    bogus.write_text("not a png")
    argv = ["render", "--content", str(bogus), "--style", WAVE, "--out", str(tmp_path / "o.png")]
    assert cli.main(argv) == cli.EXIT_INPUT
    line = one_line(capsys.readouterr().err)
    assert "content image" in line and "not an image" in line
    assert not (tmp_path / "o.png").exists()


def test_missing_style_exits_3(tmp_path: Path, capsys) -> None:
    argv = ["render", "--content", HOODIE, "--style", str(tmp_path / "gone.jpg")]
    argv += ["--out", str(tmp_path / "o.png")]
    assert cli.main(argv) == cli.EXIT_INPUT
    assert "style image" in one_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    ("extra", "needle"), [(["--strength", "150"], "strength"), (["--size", "0"], "size")]
)
def test_out_of_range_values_exit_2_with_one_line(tmp_path: Path, capsys, extra, needle) -> None:
    argv = ["render", "--content", HOODIE, "--style", WAVE, "--out", str(tmp_path / "o.png")]
    assert cli.main(argv + extra) == cli.EXIT_USAGE
    assert needle in one_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    ("extra", "needle"),
    [(["--engine", "deepdream"], "invalid choice"), (["--steps", "many"], "invalid int")],
)
def test_malformed_arguments_exit_2_with_one_line(tmp_path: Path, capsys, extra, needle) -> None:
    argv = ["render", "--content", HOODIE, "--style", WAVE, "--out", str(tmp_path / "o.png")]
    with pytest.raises(SystemExit) as exited:
        cli.main(argv + extra)
    assert exited.value.code == cli.EXIT_USAGE
    assert needle in one_line(capsys.readouterr().err)


@pytest.mark.slow
def test_argparse_errors_are_one_line_with_status_2(tmp_path: Path) -> None:
    result = run_module("render", "--content", HOODIE)
    assert result.returncode == 2
    assert "required" in one_line(result.stderr)


def test_unknown_output_format_is_refused_before_any_work(tmp_path: Path, capsys) -> None:
    argv = ["render", "--content", HOODIE, "--style", WAVE, "--out", str(tmp_path / "o.gif")]
    assert cli.main(argv) == cli.EXIT_USAGE
    assert ".png" in one_line(capsys.readouterr().err)


@pytest.mark.slow
def test_missing_vgg_weights_exit_4_with_advice(tmp_path: Path) -> None:
    env = dict(os.environ, STYLETRANSFER_VGG_WEIGHTS=str(tmp_path / "vgg.bin"))
    result = run_module(
        "render", "--content", HOODIE, "--style", WAVE, "--out", str(tmp_path / "o.png"),
        "--size", "32", "--steps", "1", "--device", "cpu", env=env,
    )  # fmt: skip
    assert result.returncode == cli.EXIT_WEIGHTS
    assert "pip install" in one_line(result.stderr)


def test_cuda_without_a_gpu_is_a_one_line_failure(tmp_path: Path, capsys) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    argv = ["render", "--content", HOODIE, "--style", WAVE, "--out", str(tmp_path / "o.png")]
    assert cli.main([*argv, "--device", "cuda", "--quiet"]) == cli.EXIT_FAILED
    assert "no CUDA GPU" in one_line(capsys.readouterr().err)
