"""Command line for the engines: `python -m styletransfer render ...` (no Django needed).

Exit status: 0 success; 2 bad arguments; 3 unusable input image; 4 missing or altered
weights; 5 out of memory; 1 any other failure. Failures print one line on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from .engine import get_engine
from .errors import EngineError, InputImageError, OutOfMemory, WeightsError
from .images import WEB_FORMATS, allowed_formats, open_image
from .params import ENGINE_NAMES, MODES, RenderParams

if TYPE_CHECKING:
    from PIL import Image

PROG = "python -m styletransfer"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INPUT, EXIT_WEIGHTS, EXIT_MEMORY = 0, 1, 2, 3, 4, 5
OUTPUT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


class CommandError(Exception):
    """A failure to report as one line, with its exit status."""

    def __init__(self, message: str, status: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.status = status


class OneLineParser(argparse.ArgumentParser):
    """argparse, but usage errors are a single line (the usage itself is in --help)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def add_render_command(commands: argparse._SubParsersAction) -> None:
    """`render`: stylise one content image after one style image."""
    render = commands.add_parser(
        "render",
        help="stylise a product photo after a painting",
        description="Stylise --content after --style and write the result to --out.",
    )
    render.add_argument("--content", required=True, type=Path, help="product photo")
    render.add_argument("--style", required=True, type=Path, help="style reference (painting)")
    render.add_argument("--out", required=True, type=Path, help="output .png, .jpg or .webp")
    render.add_argument("--engine", choices=ENGINE_NAMES, default="optimize")
    render.add_argument(
        "--mode",
        choices=MODES,
        default="whole",
        help="whole: stylise everything; product: keep the product's true colours, paint the rest",
    )
    render.add_argument("--size", type=int, default=512, help="longest side of the output, px")
    render.add_argument("--steps", type=int, default=None, help="optimisation steps (optimize)")
    render.add_argument("--strength", type=int, default=70, help="0 (none) to 100 (strongest)")
    render.add_argument(
        "--preserve-colors", action="store_true", help="transfer luminance only (whole mode)"
    )
    render.add_argument(
        "--recognisable",
        action="store_true",
        help="feedforward: keep the photo within the content budget, as optimize does",
    )
    render.add_argument("--seed", type=int, default=0)
    render.add_argument("--sharpen", type=float, default=0.0, help="0 to 1, light unsharp mask")
    render.add_argument("--denoise", type=float, default=0.0, help="0 to 1, light smoothing")
    render.add_argument("--device", choices=("cpu", "cuda"), default=None)
    render.add_argument(
        "--formats",
        type=_formats,
        default=WEB_FORMATS,
        help=f"comma-separated image formats to read (default {','.join(WEB_FORMATS)})",
    )
    render.add_argument("--quiet", action="store_true", help="no progress bar")
    render.add_argument(
        "--no-adapter",
        action="store_true",
        help="feedforward: ignore the style's onboarding (the shipped decoder alone)",
    )
    render.set_defaults(handler=run_render)


def add_onboard_command(commands: argparse._SubParsersAction) -> None:
    """`onboard`: tune the feedforward decoder to one painting, once per file content."""
    onboard = commands.add_parser(
        "onboard",
        help="tune the feedforward engine to a painting (render --engine feedforward uses it)",
        description="Fine-tune the decoder for --style; stored by the file's sha256.",
    )
    onboard.add_argument("--style", required=True, type=Path, help="style reference (painting)")
    onboard.add_argument(
        "--content", type=Path, nargs="+", help="photos to tune on (default: shipped samples)"
    )
    onboard.add_argument("--steps", type=int, default=None, help="fine-tune steps")
    onboard.add_argument("--minutes", type=float, default=None, help="stop after this long")
    onboard.add_argument("--force", action="store_true", help="tune again even when stored")
    onboard.add_argument("--device", choices=("cpu", "cuda"), default=None)
    onboard.add_argument(
        "--formats", type=_formats, default=WEB_FORMATS, help="image formats to read"
    )
    onboard.add_argument("--quiet", action="store_true", help="no progress bar")
    onboard.set_defaults(handler=run_onboard)


def add_train_decoder_command(commands: argparse._SubParsersAction) -> None:
    """`train-decoder`: train the feedforward engine's decoder (see engines/training.py)."""
    from . import training  # torch: only for the commands that train

    train = commands.add_parser(
        "train-decoder",
        help="train the feedforward engine's decoder on folders of photos and paintings",
        description="Train (or --resume) the AdaIN decoder; writes --out and --out.train.pt.",
    )
    training.add_arguments(train)
    train.set_defaults(handler=training.run)


def add_average_decoders_command(commands: argparse._SubParsersAction) -> None:
    """`average-decoders`: the mean of a run's last checkpoints (see training.average_decoders)."""
    from . import training  # torch: only for the commands that train

    average = commands.add_parser(
        "average-decoders",
        help="average the weights of decoder checkpoints into one decoder",
        description="Average decoder files (each with its .sha256 beside it) into --out.",
    )
    average.add_argument("decoders", type=Path, nargs="+", help="decoder files")
    average.add_argument("--out", type=Path, required=True, help="decoder file to write")
    average.set_defaults(handler=training.run_average)


# Subcommands register here; another module can append its own `add_*_command`.
COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    add_render_command,
    add_onboard_command,
    add_train_decoder_command,
    add_average_decoders_command,
]


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=PROG, description="StyleRec style-transfer engines.")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=OneLineParser
    )
    for add_command in COMMANDS:
        add_command(commands)
    return parser


def run_render(args: argparse.Namespace) -> int:
    output_format = OUTPUT_FORMATS.get(args.out.suffix.lower())
    if output_format is None:
        raise CommandError(
            f"--out must end in {', '.join(OUTPUT_FORMATS)}, not {args.out.name!r}", EXIT_USAGE
        )
    if not args.out.parent.is_dir():
        raise CommandError(f"the output folder {args.out.parent} does not exist", EXIT_USAGE)
    try:
        params = RenderParams(
            engine=args.engine,
            strength=args.strength,
            mode=args.mode,
            preserve_colors=args.preserve_colors,
            recognisable=args.recognisable,
            size=args.size,
            steps=args.steps,
            seed=args.seed,
            sharpen=args.sharpen,
            denoise=args.denoise,
        ).validate()
    except ValueError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from exc
    content = _open(args.content, "content", args.formats)
    style = _open(args.style, "style", args.formats)

    engine = get_engine(params.engine, args.device)
    if params.engine == "feedforward" and not args.no_adapter:
        from dataclasses import replace

        from .onboarding import reference_hash

        adapter = engine.adapters.lookup(reference_hash(args.style), engine.meta["sha256"])
        if adapter:  # a tampered file is refused when the engine loads it (exit status 4)
            params = replace(params, adapter=adapter)
    with _progress_bar(args.quiet, params.engine) as progress:
        result = engine.render(content, style, params, progress=progress)
    _save(result, args.out, output_format)
    return EXIT_OK


def run_onboard(args: argparse.Namespace) -> int:
    from . import onboarding  # torch: only for the commands that tune

    painting = _open(args.style, "style", args.formats)
    contents = onboarding.content_images(args.content)
    engine = get_engine("feedforward", args.device)
    device = engine.device
    store, reference = engine.adapters, onboarding.reference_hash(args.style)
    stored = store.lookup(reference, engine.meta["sha256"])
    if stored and not args.force:
        try:
            store.load(stored)
        except WeightsError as exc:
            sys.stderr.write(f"{PROG}: {' '.join(str(exc).split())}; tuning it again\n")
            store.forget(stored)
        else:
            print(f"{args.style} is onboarded already: adapter {stored} in {store.directory}")
            return EXIT_OK
    changes = {"device": device}
    if args.steps is not None:
        changes["steps"] = args.steps
    if args.minutes is not None:
        changes["minutes"] = args.minutes
    try:
        config = onboarding.OnboardConfig(**changes)
        with _tuning_bar(args.quiet, config.steps) as bar:
            adapter = onboarding.onboard(
                painting, reference=reference, contents=contents, config=config, progress=bar
            )
    except ValueError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from exc
    sha256 = store.save(adapter)
    print(
        f"onboarded {args.style} in {adapter.meta['steps']} steps ({adapter.meta['seconds']:.0f}"
        f" s): adapter {sha256} in {store.directory}; render --engine feedforward uses it"
    )
    return EXIT_OK


@contextlib.contextmanager
def _tuning_bar(quiet: bool, total: int) -> Iterator[Callable[[int, int, dict], None] | None]:
    if quiet:
        yield None
        return
    from tqdm import tqdm

    bar = tqdm(total=total, desc="onboard", unit="step", file=sys.stderr, mininterval=2.0)

    def update(step: int, steps: int, losses: dict) -> None:
        bar.update(step - bar.n)
        bar.set_postfix({name: f"{value:.3f}" for name, value in losses.items()})

    try:
        yield update
    finally:
        bar.close()


def _formats(value: str) -> tuple[str, ...]:
    try:
        return allowed_formats([name.strip() for name in value.split(",") if name.strip()])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _open(path: Path, role: str, formats: Sequence[str]) -> Image.Image:
    try:
        return open_image(path, formats=formats)
    except InputImageError as exc:
        raise InputImageError(f"{role} image {path}: {exc}") from exc


@contextlib.contextmanager
def _progress_bar(quiet: bool, label: str) -> Iterator[Callable[[int, int], None] | None]:
    """A tqdm bar on stderr driven by the engine's (done, total) callback."""
    if quiet:
        yield None
        return
    from tqdm import tqdm

    bars: list[tqdm] = []

    def update(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, desc=label, unit="step", file=sys.stderr))
        bars[0].total = total
        bars[0].update(done - bars[0].n)

    try:
        yield update
    finally:
        for bar in bars:
            bar.close()  # ends the bar's line, so an error message starts on its own


def _save(image: Image.Image, path: Path, output_format: str) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    options = {"quality": 92} if output_format in ("JPEG", "WEBP") else {}
    try:
        image.save(partial, output_format, **options)
        os.replace(partial, path)  # never leave half an image under the real name
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise CommandError(f"cannot write {path}: {exc.strerror or exc}") from exc


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except CommandError as exc:
        return _fail(str(exc), exc.status)
    except InputImageError as exc:
        return _fail(str(exc), EXIT_INPUT)
    except WeightsError as exc:
        return _fail(str(exc), EXIT_WEIGHTS)
    except OutOfMemory as exc:
        return _fail(str(exc), EXIT_MEMORY)
    except EngineError as exc:
        return _fail(str(exc), EXIT_FAILED)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as exc:  # the contract is one line, even for bugs
        return _fail(f"unexpected {type(exc).__name__}: {exc}", EXIT_FAILED)


def _fail(message: str, status: int) -> int:
    line = " ".join(str(message).split())  # one line, whatever the message held
    sys.stderr.write(f"{PROG}: error: {line}\n")
    return status
