"""The format allowlist: only the web formats' decoders (or a shop's opt-ins) read a byte."""

import io
from pathlib import Path

import pytest
from PIL import FitsImagePlugin, Image

from styletransfer.engines import InputImageError, cli
from styletransfer.engines.images import WEB_FORMATS, check_image, open_image
from tests.helpers import DATA

from .helpers import (
    FOREIGN,
    ODD,
    fits_bytes,
    refusal_is_clear,
    spy_on_other_plugins,
)

WAVE = str(DATA / "style-wave.jpg")
pytestmark = pytest.mark.filterwarnings("ignore:IM image format is deprecated:DeprecationWarning")


@pytest.fixture
def other_plugins_reached(monkeypatch) -> list[str]:
    return spy_on_other_plugins(monkeypatch)


@pytest.mark.parametrize("fmt", sorted(FOREIGN))
def test_the_corpus_is_real_pillow_would_decode_each_file(fmt: str) -> None:
    with Image.open(io.BytesIO(FOREIGN[fmt][1])) as image:
        assert image.format == fmt


@pytest.mark.parametrize("fmt", sorted(FOREIGN))
def test_foreign_formats_are_refused_by_open_image_with_one_clear_line(fmt: str) -> None:
    with pytest.raises(InputImageError) as caught:
        open_image(FOREIGN[fmt][1])
    assert refusal_is_clear(str(caught.value), fmt), str(caught.value)
    with pytest.raises(InputImageError):
        check_image(FOREIGN[fmt][1])


@pytest.mark.parametrize("fmt", sorted(FOREIGN))
def test_no_other_plugin_sees_a_byte(fmt: str, other_plugins_reached: list[str]) -> None:
    with pytest.raises(InputImageError):
        open_image(FOREIGN[fmt][1])
    with pytest.raises(InputImageError):
        check_image(FOREIGN[fmt][1])
    assert other_plugins_reached == []
    # The spies are live: an open without the allowlist goes straight to them.
    with pytest.raises(AssertionError):
        Image.open(io.BytesIO(FOREIGN[fmt][1]))
    assert other_plugins_reached


def test_the_fits_parser_is_never_called(monkeypatch) -> None:
    calls = []

    def parse(self) -> None:
        calls.append(self)
        raise AssertionError("FITS parsed")

    monkeypatch.setattr(FitsImagePlugin.FitsImageFile, "_open", parse)
    with pytest.raises(InputImageError, match="FITS format"):
        open_image(fits_bytes())
    assert calls == []
    with pytest.raises(AssertionError):
        Image.open(io.BytesIO(fits_bytes()))  # without the allowlist it is the one that parses
    assert len(calls) == 1


@pytest.mark.parametrize("name", sorted(ODD))
def test_odd_web_files_still_decode(name: str) -> None:
    image = open_image(ODD[name][1])
    assert image.mode in ("RGB", "RGBA")
    assert check_image(ODD[name][1]) in WEB_FORMATS


def test_what_the_odd_files_decode_to() -> None:
    assert Image.open(io.BytesIO(ODD["16-bit PNG"][1])).mode == "I;16"
    assert open_image(ODD["16-bit PNG"][1]).getpixel((23, 0))[0] > 200
    assert open_image(ODD["CMYK JPEG"][1]).getpixel((5, 5))[0] > 200  # cyan-free: red
    assert open_image(ODD["palette PNG with transparency"][1]).getpixel((2, 2))[3] == 0
    assert open_image(ODD["EXIF-rotated JPEG"][1]).size == (20, 40)
    for animated in ("animated GIF", "animated WebP"):
        assert Image.open(io.BytesIO(ODD[animated][1])).n_frames == 2
        red, _, blue = open_image(ODD[animated][1]).getpixel((5, 5))
        assert red > 200 and blue < 60, animated  # the first frame


def test_an_opted_in_format_is_read() -> None:
    tiff = FOREIGN["TIFF"][1]
    image = open_image(tiff, formats=[*WEB_FORMATS, "tiff"])
    assert image.size == (24, 16)
    assert check_image(tiff, formats=(*WEB_FORMATS, "TIFF")) == "TIFF"


def test_a_web_format_left_out_is_refused_by_name() -> None:
    with pytest.raises(InputImageError, match="in JPEG format; only PNG images are allowed"):
        open_image(ODD["CMYK JPEG"][1], formats=["PNG"])


def test_a_broken_allowed_file_is_called_corrupt_not_foreign() -> None:
    broken = b"\xff\xd8\xff\xe0" + b"\x00" * 40
    with pytest.raises(InputImageError, match="JPEG image but is corrupt"):
        open_image(broken)


@pytest.mark.parametrize("formats", [["JPEG", "NOPE"], "JPEG", [], None])
def test_an_unknown_allowlist_is_a_value_error_not_an_input_error(formats) -> None:
    with pytest.raises(ValueError) as caught:
        open_image(ODD["CMYK JPEG"][1], formats=formats)
    assert not isinstance(caught.value, InputImageError)


@pytest.mark.parametrize("fmt", sorted(FOREIGN))
def test_the_cli_refuses_each_with_exit_3(fmt: str, tmp_path: Path, capsys) -> None:
    name, data = FOREIGN[fmt]
    content = tmp_path / name
    content.write_bytes(data)
    out = tmp_path / "out.png"
    argv = ["render", "--content", str(content), "--style", WAVE, "--out", str(out)]
    assert cli.main([*argv, "--engine", "color", "--quiet"]) == cli.EXIT_INPUT
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f"content image {content}" in lines[0]
    assert refusal_is_clear(lines[0], fmt), lines[0]
    assert not out.exists()


def test_the_cli_refuses_a_foreign_style_too(tmp_path: Path, capsys) -> None:
    style = tmp_path / "painting.jpg"
    style.write_bytes(fits_bytes())
    argv = ["render", "--content", WAVE, "--style", str(style), "--out", str(tmp_path / "o.png")]
    assert cli.main(argv) == cli.EXIT_INPUT
    line = capsys.readouterr().err.strip()
    assert f"style image {style}" in line and "FITS format" in line


def test_the_cli_reads_an_opted_in_format(tmp_path: Path) -> None:
    content = tmp_path / "photo.tif"
    content.write_bytes(FOREIGN["TIFF"][1])
    out = tmp_path / "out.png"
    argv = ["render", "--content", str(content), "--style", WAVE, "--out", str(out)]
    argv += ["--engine", "color", "--size", "32", "--quiet", "--formats", "jpeg,png,webp,gif,tiff"]
    assert cli.main(argv) == cli.EXIT_OK
    assert Image.open(out).size == (32, 21)


def test_the_cli_refuses_an_unknown_format_name_with_exit_2(tmp_path: Path, capsys) -> None:
    argv = ["render", "--content", WAVE, "--style", WAVE, "--out", str(tmp_path / "o.png")]
    with pytest.raises(SystemExit) as caught:
        cli.main([*argv, "--formats", "JPEG,NOPE"])
    assert caught.value.code == cli.EXIT_USAGE
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "NOPE" in lines[0]
