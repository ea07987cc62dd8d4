"""Training the feed-forward decoder: `python -m styletransfer train-decoder …` (CPU or CUDA)."""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .decoder import ARCH, Decoder, adain, autocast, load_decoder, save_decoder
from .errors import EngineError
from .training_data import hue_rotate, image_files, load_pool, random_crop
from .vgg import check_device, load_vgg19, mean_std

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
# Typical channel-statistic magnitudes of the Caffe VGG per layer (measured on photos and
# paintings), so that every layer's style term and the content term weigh in at O(1).
LAYER_SCALE = {"relu1_1": 30.0, "relu2_1": 150.0, "relu3_1": 200.0, "relu4_1": 700.0}
# How much each layer's (normalised) style term counts, relu1_1..relu4_1. Colour and fine
# texture (relu1_1, relu2_1) are matched early; coarse brushwork at relu4_1 is what the decoder
# struggles with, and what the style loss of `metrics.style_loss` is mostly made of.
LAYER_WEIGHTS = (1.0, 1.0, 1.0, 1.0)
LOGGED = ("content", "style", "recon", "feature_recon")


@dataclass
class TrainConfig:
    content: list[Path]
    style: list[Path]
    out: Path
    steps: int = 4000
    size: int = 160
    batch: int = 6
    style_weight: float = 3.0
    layer_weights: tuple[float, ...] = LAYER_WEIGHTS
    recon_weight: float = 5.0
    # relu4_1 of the photo's own decoding against the photo's: the decoder's error there is
    # content change every render pays before any style (0.26-0.36 of the budget 0.49 at
    # strength 70 with pixel reconstruction alone, measured on the shipped decoder).
    feature_recon_weight: float = 0.0
    lr: float = 4e-4
    lr_decay: float = 2e-4
    photo_style_share: float = 0.15
    bank_crops: int = 24
    bank_refresh: int = 250
    save_every: int = 100
    minutes: float | None = None
    resume: bool = False
    init: Path | None = None
    device: str = "cpu"
    padding: str = "zeros"
    threads: int | None = None
    seed: int = 0
    quiet: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def state_path(self) -> Path:
        return self.out.with_name(self.out.name + ".train.pt")


class StyleBank:
    """Channel statistics of augmented style crops, recomputed every so often (VGG is frozen)."""

    def __init__(self, vgg, paintings, photos, config: TrainConfig, rng: random.Random):
        self.vgg, self.paintings, self.photos = vgg, paintings, photos
        self.config, self.rng = config, rng
        self.stats: list[dict[str, tuple[torch.Tensor, torch.Tensor]]] = []

    def refresh(self) -> None:
        config, rng = self.config, self.rng
        crops = []
        for painting in self.paintings:
            for index in range(config.bank_crops):
                crop = random_crop(painting, config.size, rng)[None]
                if index % 3 == 2:  # a third of the crops get a new palette
                    crop = hue_rotate(crop, rng.uniform(0.5, 2 * math.pi - 0.5))
                crops.append(crop)
        photo_count = round(len(crops) * config.photo_style_share)
        crops += [
            random_crop(rng.choice(self.photos), config.size, rng)[None]
            for _ in range(photo_count if self.photos else 0)
        ]
        self.stats = []
        for start in range(0, len(crops), 16):
            chunk = torch.cat(crops[start : start + 16]).to(self.config.device)
            with torch.no_grad(), autocast(self.config.device):
                taps = self.vgg(chunk, STYLE_LAYERS)
            stats = {name: mean_std(taps[name].float()) for name in STYLE_LAYERS}
            for row in range(chunk.shape[0]):
                self.stats.append(
                    {k: (m[row : row + 1], s[row : row + 1]) for k, (m, s) in stats.items()}
                )

    def sample(self, count: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        chosen = [self.rng.randrange(len(self.stats)) for _ in range(count)]
        return {
            name: (
                torch.cat([self.stats[i][name][0] for i in chosen]),
                torch.cat([self.stats[i][name][1] for i in chosen]),
            )
            for name in STYLE_LAYERS
        }


def losses(
    vgg,
    decoder,
    content: torch.Tensor,
    style_stats,
    device: str,
    layer_weights=LAYER_WEIGHTS,
    feature_recon: bool = False,
) -> dict[str, Any]:
    """The AdaIN paper's content and style losses, plus a cheap pixel reconstruction term.

    Reconstruction (decoding the content's own features back to the photo) needs no pass
    through the encoder, so it is the cheapest signal there is for inverting VGG features;
    the engine also uses that reconstruction to keep detail at strengths below 100. With
    `feature_recon` the reconstruction also goes through the encoder, and "feature_recon" is
    its relu4_1 error (what TrainConfig.feature_recon_weight weighs).
    """
    with torch.no_grad(), autocast(device):
        content_features = vgg(content, ["relu4_1"])["relu4_1"]
    target = adain(content_features, *style_stats["relu4_1"])
    with autocast(device):
        output, reconstruction = decoder(torch.cat([target, content_features.float()])).chunk(2)
        encoded = torch.cat([output, reconstruction]) if feature_recon else output
        taps = vgg(encoded.float(), STYLE_LAYERS)
    scale = LAYER_SCALE["relu4_1"]
    terms = {"feature_recon": torch.zeros((), device=content.device)}
    if feature_recon:
        own = {name: tap.chunk(2)[1] for name, tap in taps.items()}
        taps = {name: tap.chunk(2)[0] for name, tap in taps.items()}
        terms["feature_recon"] = F.mse_loss(
            own["relu4_1"].float() / scale, content_features.float() / scale
        )
    content_loss = F.mse_loss(taps["relu4_1"].float() / scale, target / scale)
    style_loss = torch.zeros((), device=content.device)
    for name, weight in zip(STYLE_LAYERS, layer_weights, strict=True):
        mean, std = mean_std(taps[name].float())
        target_mean, target_std = style_stats[name]
        scale = LAYER_SCALE[name]
        gap = F.mse_loss(mean / scale, target_mean / scale)
        style_loss = style_loss + weight * (gap + F.mse_loss(std / scale, target_std / scale))
    # Pixels outside 0..1 are clipped at render time; keep the decoder from relying on them.
    range_loss = (output.float() - output.float().clamp(0, 1)).pow(2).mean()
    recon_loss = F.l1_loss(reconstruction.float(), content)
    return terms | {
        "content": content_loss,
        "style": style_loss,
        "recon": recon_loss,
        "range": range_loss,
    }


def train(config: TrainConfig) -> dict[str, Any]:
    """Run (or resume) training; writes `out` (fp16, checksummed) and `out.train.pt` (resumable)."""
    check_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    content_files, style_files = image_files(config.content), image_files(config.style)
    shortest = config.size * 2
    photos = load_pool(content_files, shortest)
    paintings = load_pool(style_files, shortest)
    vgg = load_vgg19(config.device)
    decoder = Decoder(ARCH | {"padding": config.padding}).to(config.device)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=config.lr)
    step, seconds, history = 0, 0.0, {}
    if config.init is not None:  # fine-tune a finished decoder (fresh Adam state, step 0)
        initial, _ = load_decoder(config.init)
        decoder.load_state_dict(initial.state_dict())
    if config.resume and config.state_path.is_file():
        state = torch.load(config.state_path, map_location=config.device, weights_only=False)
        decoder.load_state_dict(state["decoder"])
        optimizer.load_state_dict(state["optimizer"])
        step, seconds, history = state["step"], state["seconds"], state["history"]
        rng.setstate(state["rng"])
        torch.set_rng_state(state["torch_rng"])
    decoder.train()
    bank = StyleBank(vgg, paintings, photos, config, rng)
    bank.refresh()
    started = time.monotonic() - seconds
    deadline = None if config.minutes is None else time.monotonic() + config.minutes * 60
    progress = _progress_bar(step, config)
    while step < config.steps and (deadline is None or time.monotonic() < deadline):
        if step and step % config.bank_refresh == 0:
            bank.refresh()
        for group in optimizer.param_groups:
            group["lr"] = config.lr / (1.0 + config.lr_decay * step)
        batch = torch.stack(
            [random_crop(rng.choice(photos), config.size, rng) for _ in range(config.batch)]
        ).to(config.device)
        style_stats = bank.sample(config.batch)
        terms = losses(
            vgg,
            decoder,
            batch,
            style_stats,
            config.device,
            config.layer_weights,
            feature_recon=config.feature_recon_weight > 0,
        )
        loss = terms["content"] + config.style_weight * terms["style"] + terms["range"]
        loss = loss + config.recon_weight * terms["recon"]
        loss = loss + config.feature_recon_weight * terms["feature_recon"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        history = _smooth(history, {name: terms[name].item() for name in LOGGED})
        progress.update(1)
        progress.set_postfix({name: f"{history[name]:.3f}" for name in LOGGED})
        if step % config.save_every == 0 or step == config.steps:
            _save(config, decoder, optimizer, step, time.monotonic() - started, history, rng)
    progress.close()
    return _save(config, decoder, optimizer, step, time.monotonic() - started, history, rng)


def _smooth(history: dict[str, float | None], values: dict[str, float]) -> dict[str, float]:
    """Exponential moving averages (about the last 50 steps) of the logged losses."""
    return {
        name: value if history.get(name) is None else 0.98 * history[name] + 0.02 * value
        for name, value in values.items()
    }


def _progress_bar(step: int, config: TrainConfig):
    from tqdm import tqdm

    return tqdm(
        total=config.steps,
        initial=step,
        desc="train-decoder",
        unit="step",
        disable=config.quiet,
        file=sys.stderr,
        mininterval=2.0,
    )


def _save(config, decoder, optimizer, step, seconds, history, rng) -> dict[str, Any]:
    meta = {
        "steps": step,
        "seconds": round(seconds, 1),
        "device": config.device,
        "size": config.size,
        "batch": config.batch,
        "style_weight": config.style_weight,
        "layer_weights": list(config.layer_weights),
        "recon_weight": config.recon_weight,
        "feature_recon_weight": config.feature_recon_weight,
        "content": [str(p) for p in config.content],
        "style": [str(p) for p in config.style],
        "final_losses": {name: round(value, 4) for name, value in history.items()},
    }
    state = {
        "decoder": decoder.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": step,
        "seconds": seconds,
        "history": history,
        "rng": rng.getstate(),
        "torch_rng": torch.get_rng_state(),
        "meta": meta,
    }
    partial = config.state_path.with_name(config.state_path.name + ".tmp")
    config.state_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, partial)
    partial.replace(config.state_path)
    meta["sha256"] = save_decoder(decoder, config.out, meta)
    return meta


def average_decoders(paths: list[Path], out: Path) -> str:
    """Write the mean of finished decoders' weights to `out`; returns its sha256.

    Averaging the last checkpoints of one run (every `--save-every` steps) lands nearer the
    middle of the region SGD wanders in late in training than any one of them (Izmailov et
    al. 2018, "Averaging Weights Leads to Wider Optima"). The decoder has no batch norm, so
    the averaged weights need no re-estimated statistics.
    """
    loaded = [load_decoder(path) for path in paths]
    decoder, meta = loaded[0]
    states = [d.state_dict() for d, _ in loaded]
    decoder.load_state_dict({k: torch.stack([s[k] for s in states]).mean(0) for k in states[0]})
    meta = {k: v for k, v in meta.items() if k != "sha256"}
    meta["averaged"] = [
        {"file": Path(p).name, "steps": m.get("steps")}
        for p, (_, m) in zip(paths, loaded, strict=True)
    ]
    return save_decoder(decoder, out, meta)


def run_average(args: argparse.Namespace) -> int:
    """CLI entry for average-decoders."""
    checksum = average_decoders(args.decoders, args.out)
    print(f"wrote {args.out}, the mean of {len(args.decoders)} decoders, sha256 {checksum}")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The train-decoder options (shared by the CLI subcommand and `python -m …training`)."""
    defaults = TrainConfig(content=[], style=[], out=Path())
    parser.add_argument("--content", type=Path, nargs="+", required=True, help="photo folders")
    parser.add_argument("--style", type=Path, nargs="+", required=True, help="painting folders")
    parser.add_argument("--out", type=Path, required=True, help="decoder file to write")
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--size", type=int, default=defaults.size, help="crop size in px")
    parser.add_argument("--batch", type=int, default=defaults.batch)
    parser.add_argument("--style-weight", type=float, default=defaults.style_weight)
    parser.add_argument(
        "--layer-weights",
        type=float,
        nargs=4,
        default=defaults.layer_weights,
        metavar=("RELU1_1", "RELU2_1", "RELU3_1", "RELU4_1"),
        help="weight of each layer's style term",
    )
    parser.add_argument("--recon-weight", type=float, default=defaults.recon_weight)
    parser.add_argument(
        "--feature-recon-weight",
        type=float,
        default=defaults.feature_recon_weight,
        help="relu4_1 error of the photo's own decoding (content change before any style)",
    )
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--save-every", type=int, default=defaults.save_every)
    parser.add_argument("--minutes", type=float, help="stop (and save) after this long")
    parser.add_argument("--resume", action="store_true", help="continue from OUT.train.pt")
    parser.add_argument("--init", type=Path, help="start from this decoder file's weights")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--padding",
        choices=("zeros", "reflect"),
        default=defaults.padding,
        help="the decoder's convolution padding (reflect: no border frame; --init may change it)",
    )
    parser.add_argument("--threads", type=int, help="CPU threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=defaults.seed)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        content=args.content,
        style=args.style,
        out=args.out,
        steps=args.steps,
        size=args.size,
        batch=args.batch,
        style_weight=args.style_weight,
        layer_weights=tuple(args.layer_weights),
        recon_weight=args.recon_weight,
        feature_recon_weight=args.feature_recon_weight,
        lr=args.lr,
        save_every=args.save_every,
        minutes=args.minutes,
        resume=args.resume,
        init=args.init,
        device=args.device,
        padding=args.padding,
        threads=args.threads,
        seed=args.seed,
    )


def run(args: argparse.Namespace) -> int:
    """CLI entry: train, print where the weights went and their checksum."""
    meta = train(config_from_args(args))
    print(
        f"wrote {args.out} after {meta['steps']} steps ({meta['seconds']:.0f} s): "
        + ", ".join(f"{name} {value:.4f}" for name, value in meta["final_losses"].items())
        + f", sha256 {meta['sha256']}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m styletransfer.engines.training")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
