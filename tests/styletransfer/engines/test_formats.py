"""The format allowlist: only the web formats' decoders (or a shop's opt-ins) read a byte."""

import io
import warnings
from pathlib import Path

import pytest
from PIL import FitsImagePlugin, Image, features

from styletransfer.engines import InputImageError, cli
from styletransfer.engines.images import WEB_FORMATS, check_image, open_image
from tests.helpers import DATA

WAVE = str(DATA / "style-wave.jpg")
pytestmark = pytest.mark.filterwarnings("ignore:IM image format is deprecated:DeprecationWarning")


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def sample(mode: str = "RGB", size: tuple[int, int] = (24, 16)) -> Image.Image:
    """A small picture with some structure, in `mode`."""
    image = Image.new("L", size)
    image.putdata([(x * 9 + y * 5) % 256 for y in range(size[1]) for x in range(size[0])])
    return image.convert(mode)


def encode_deprecated_im(image: Image.Image) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # still read by Pillow 13
        return encode(image, "IM")


def fits_bytes(width: int = 8, height: int = 8) -> bytes:
    """A minimal valid FITS file: one 2880-byte header of 80-character cards, then 8-bit data."""
    cards = [
        f"{'SIMPLE':<8}= {'T':>20}",
        f"{'BITPIX':<8}= {8:>20}",
        f"{'NAXIS':<8}= {2:>20}",
        f"{'NAXIS1':<8}= {width:>20}",
        f"{'NAXIS2':<8}= {height:>20}",
        "END",
    ]
    header = "".join(card.ljust(80) for card in cards).ljust(2880).encode("ascii")
    data = bytes((x * 16) % 256 for x in range(width * height))
    return header + data.ljust(2880, b"\0")


def eps_bytes() -> bytes:
    return (
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\n%%EndComments\n"
        b"newpath 0 0 moveto 16 16 lineto stroke\nshowpage\n%%EOF\n"
    )


def foreign_corpus() -> dict[str, tuple[str, bytes]]:
    """Pillow format name -> (a web image's file name, bytes Pillow would decode as that format).

    Formats a shop never serves; each is named like a web image, as an attacker would.
    """
    corpus = {
        "FITS": ("photo.png", fits_bytes()),
        "EPS": ("photo.jpg", eps_bytes()),
        "PCX": ("photo.png", encode(sample(), "PCX")),
        "SGI": ("photo.jpg", encode(sample(), "SGI")),
        "TGA": ("photo.webp", encode(sample(), "TGA")),
        "BMP": ("photo.gif", encode(sample(), "BMP")),
        "TIFF": ("photo.png", encode(sample(), "TIFF")),
        "ICO": ("photo.png", encode(sample(size=(16, 16)), "ICO")),
        "PPM": ("photo.jpg", encode(sample(), "PPM")),
        "IM": ("photo.png", encode_deprecated_im(sample())),
        "DDS": ("photo.png", encode(sample("RGBA", (16, 16)), "DDS")),
        "QOI": ("photo.webp", encode(sample(), "QOI")),
        "XBM": ("photo.gif", encode(sample("1"), "XBM")),
        "MSP": ("photo.png", encode(sample("1"), "MSP")),
        "SPIDER": ("photo.jpg", encode(sample("L").convert("F"), "SPIDER")),
    }
    if features.check("jpg_2000"):
        corpus["JPEG2000"] = ("photo.jpg", encode(sample(), "JPEG2000"))
    if features.check("avif"):
        corpus["AVIF"] = ("photo.webp", encode(sample(), "AVIF"))  # a web format, not opted in
    return corpus


def odd_web_corpus() -> dict[str, tuple[str, bytes]]:
    """Allowlisted files that stress the decoders: each still renders."""
    cmyk = encode(Image.new("CMYK", (24, 16), (0, 200, 200, 0)), "JPEG")
    deep = Image.new("I;16", (24, 16))
    deep.putdata([x * 2700 for y in range(16) for x in range(24)])
    palette = Image.new("P", (24, 16), 1)
    palette.putpalette([0, 0, 0, 220, 30, 30] + [0] * 762)
    palette.paste(0, (0, 0, 8, 16))
    rotated = Image.new("RGB", (40, 20), (30, 30, 200))
    exif = rotated.getexif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to view
    frames = [Image.new("RGB", (24, 16), colour) for colour in ((220, 30, 30), (30, 30, 220))]
    gif = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    webp = encode(
        frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100, lossless=True
    )
    return {
        "CMYK JPEG": ("cmyk.jpg", cmyk),
        "16-bit PNG": ("deep.png", encode(deep, "PNG")),
        "palette PNG with transparency": ("palette.png", encode(palette, "PNG", transparency=0)),
        "EXIF-rotated JPEG": ("rotated.jpg", encode(rotated, "JPEG", exif=exif)),
        "animated GIF": ("animated.gif", gif),
        "animated WebP": ("animated.webp", webp),
    }


FOREIGN = foreign_corpus()
ODD = odd_web_corpus()
SNIFFED = {"FITS", "EPS", "PCX", "SGI", "TGA", "BMP", "TIFF", "ICO", "PPM", "IM", "DDS", "QOI"}
SNIFFED |= {"JPEG2000", "AVIF"}


def refusal_is_clear(message: str, fmt: str) -> bool:
    """One line that names the format, or says the file is in no allowed format."""
    named = f"in {fmt} format; only JPEG, PNG, WEBP, GIF images are allowed" in message
    generic = "not an image in an allowed format (JPEG, PNG, WEBP, GIF)" in message
    return "\n" not in message and (named if fmt in SNIFFED else generic)


def spy_on_other_plugins(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every plugin outside the web formats replaced by a spy; the list of those touched."""
    Image.init()
    reached: list[str] = []
    for name in [name for name in Image.OPEN if name not in WEB_FORMATS]:

        def accept(prefix: bytes, name: str = name) -> bool:
            reached.append(name)
            return True

        def factory(fp, filename=None, name: str = name):
            reached.append(name)
            raise AssertionError(f"the {name} plugin parsed the file")

        monkeypatch.setitem(Image.OPEN, name, (factory, accept))
    return reached


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
