"""The `feedforward` engine: one pass of VGG19 relu4_1 -> AdaIN -> the project's trained decoder."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .color import painted_backdrop
from .colour_space import keep_colours
from .decoder import adain, autocast, load_decoder
from .engine import Engine, Progress, is_out_of_memory
from .errors import WeightsError
from .images import Canvas
from .onboarding import AdapterStore
from .params import RenderParams, content_budget
from .vgg import check_device, load_vgg19, mean_std

STYLE_CACHE_SIZE = 32
ADAPTER_CACHE_SIZE = 4  # onboarded decoders kept loaded (7 MB each in float32)
# Below this AdaIN alpha the decoder's reconstruction error is added back, fading from all of
# it at alpha 0 to none here; above it one decode is enough (the default strength, 70, is).
DETAIL_UNTIL = 0.9
MAX_BATCH = 64  # images per pass on a GPU at most (a bigger one gains no throughput)
# On a CPU a pass of a few images beats one at a time while it stays small: interleaved on the
# 2-core development machine under other load, 4 images of 256 px took 1.1 s each against 2.9 s
# one by one, and at 512 px passes of 2 took 1.4 s each against 2.0 s (4: 1.8 s). So a CPU
# pass holds up to CPU_PASS images and CPU_PASS_PIXELS pixels (bench/gpu.py --device cpu).
CPU_PASS = 4
CPU_PASS_PIXELS = 2 * 512 * 512
# GPU memory one image needs per padded pixel in a pass (fp16 VGG and decoder activations,
# the float32 input and output, cuDNN workspace), with room to spare: 256 MB at 512 px.
BYTES_PER_PIXEL = 1024
COMPENSATION_ROUNDS = 2  # trial decodes that measure what the decoder misses (see _compensate)
MULTIPLE = 8  # relu4_1 is three poolings deep: inputs padded to a multiple of 8 decode exactly


class FeedForwardEngine(Engine):
    """AdaIN (Huang & Belongie 2017) with a decoder trained by `train-decoder`."""

    name = "feedforward"

    def __init__(self, device: str = "cpu", weights: Path | None = None) -> None:
        super().__init__(device)
        self.weights = weights
        self.meta: dict[str, Any] = {}
        self._style_stats: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self.adapters = AdapterStore()
        self._tuned: OrderedDict[str, torch.nn.Module] = OrderedDict()
        self._lock = threading.Lock()
        self.max_pass = MAX_BATCH  # lowered for good when a pass runs out of memory

    @property
    def version(self) -> str:
        """Changes whenever the decoder's weights change (part of a style's pixel identity)."""
        return self.meta.get("sha256", "")[:16]

    def load(self) -> None:
        check_device(self.device)
        decoder, self.meta = load_decoder(self.weights)
        self.vgg = load_vgg19(self.device)
        self.decoder = decoder.to(self.device, memory_format=torch.channels_last)
        self.loaded = True

    def decoder_for(self, adapter: str) -> torch.nn.Module:
        """The base decoder, or the one onboarded for a style (params.adapter, its sha256)."""
        if not adapter:
            return self.decoder
        with self._lock:
            tuned = self._tuned.get(adapter)
            if tuned is not None:
                self._tuned.move_to_end(adapter)
                return tuned
        loaded = self.adapters.load(adapter)
        if loaded.decoder_sha256 != self.meta.get("sha256"):
            raise WeightsError(
                f"style adapter {adapter[:12]}… was tuned from decoder "
                f"{loaded.decoder_sha256[:12]}…, not the loaded {self.version}…; onboard the "
                "style again"
            )
        tuned = loaded.apply(self.decoder).to(self.device, memory_format=torch.channels_last)
        with self._lock:
            self._tuned[adapter] = tuned
            while len(self._tuned) > ADAPTER_CACHE_SIZE:
                self._tuned.popitem(last=False)
        return tuned

    def infer(self, canvas: Canvas, params: RenderParams, progress: Progress | None) -> np.ndarray:
        params = _painted_as(canvas, params)
        stylised = self.stylise([self._pixels(canvas, params)], canvas.style, params)[0]
        if progress is not None:
            progress(1, 1)
        return stylised

    def render_batch(
        self, contents: Sequence[Image.Image], style: Image.Image, params: RenderParams
    ) -> list[Image.Image]:
        """Stylise several content images after one style; same-sized canvases share a pass."""
        params.validate()
        if not self.loaded:
            self.load()
        with self.out_of_memory_as_error(params):
            canvases = [self.preprocess(content, style, params) for content in contents]
            stylised = self.infer_batch(canvases, params)
            return [
                self.postprocess(pixels, canvas, params)
                for pixels, canvas in zip(stylised, canvases, strict=True)
            ]

    def infer_batch(self, canvases: Sequence[Canvas], params: RenderParams) -> list[np.ndarray]:
        """Canvases of one shape go through the networks together, as many at once as the
        device holds; a pass that runs out of memory is halved and tried again (the smaller
        size is kept for later passes), and only one image alone out of memory raises."""
        outputs: list[np.ndarray | None] = [None] * len(canvases)
        by_shape: dict[tuple, list[int]] = {}
        for index, canvas in enumerate(canvases):
            key = (canvas.content.shape, _painted_as(canvas, params).mode)
            by_shape.setdefault(key, []).append(index)
        for same_shape in by_shape.values():
            start = 0
            shape_params = _painted_as(canvases[same_shape[0]], params)
            while start < len(same_shape):
                count = self.pass_size(canvases[same_shape[0]].content.shape[:2])
                indices = same_shape[start : start + count]
                group = [self._pixels(canvases[i], shape_params) for i in indices]
                try:
                    stylised = self.stylise(group, canvases[indices[0]].style, shape_params)
                except (RuntimeError, MemoryError) as exc:
                    if not is_out_of_memory(exc) or len(indices) == 1:
                        raise
                    del group
                    self._release_memory()
                    self.max_pass = max(1, len(indices) // 2)
                    continue
                for index, pixels in zip(indices, stylised, strict=True):
                    outputs[index] = pixels
                start += len(indices)
        return [output for output in outputs if output is not None]

    def pass_size(self, shape: tuple[int, int]) -> int:
        """Images per pass at this canvas size: what fits in free GPU memory (BYTES_PER_PIXEL
        per padded pixel, a fifth kept spare), at most max_pass; on a CPU a few small images
        (CPU_PASS, CPU_PASS_PIXELS)."""
        height, width = (side + -side % MULTIPLE for side in shape)
        if torch.device(self.device).type != "cuda":
            return max(1, min(self.max_pass, CPU_PASS, CPU_PASS_PIXELS // (height * width)))
        free, _ = torch.cuda.mem_get_info(torch.device(self.device))
        fits = int(0.8 * free // (height * width * BYTES_PER_PIXEL))
        return max(1, min(self.max_pass, fits))

    def _release_memory(self) -> None:
        if torch.device(self.device).type == "cuda":
            torch.cuda.empty_cache()

    def _pixels(self, canvas: Canvas, params: RenderParams) -> np.ndarray:
        """What the encoder sees: in product mode the painting stands in for the plain backdrop,
        so the decoder paints brushwork there (finish() puts the product's true pixels back)."""
        if params.mode != "product" or canvas.mask is None:
            return canvas.content
        coverage = canvas.mask[..., None]
        backdrop = painted_backdrop(canvas, adain_alpha(params.strength))
        # content = coverage * product + (1 - coverage) * plain: swap the plain part only.
        swapped = canvas.content + (1 - coverage) * (backdrop - canvas.backdrop)
        return swapped.astype(np.float32)

    def stylise(
        self, contents: Sequence[np.ndarray], style: np.ndarray, params: RenderParams
    ) -> list[np.ndarray]:
        """H x W x 3 float arrays of one shape -> their stylised versions (same shape)."""
        alpha = adain_alpha(params.strength)
        if alpha == 0:
            return [np.array(content, dtype=np.float32) for content in contents]
        height, width = contents[0].shape[:2]
        batch = torch.from_numpy(np.stack(contents).transpose(0, 3, 1, 2).copy())
        batch = _pad_to_multiple(batch.to(self.device), MULTIPLE)
        style_mean, style_std = self.style_statistics(style)
        decoder = self.decoder_for(params.adapter)
        with torch.inference_mode(), autocast(self.device):
            content_features = self.vgg(batch, ["relu4_1"])["relu4_1"]
            target = adain(content_features, style_mean, style_std)
            target = alpha * target + (1 - alpha) * content_features.float()
            if params.mode != "product":  # product mode's backdrop is the painting already
                budget = content_budget(params.strength) if params.recognisable else float("inf")
                target = self._compensate(target, decoder, content_features.float(), budget)
            detail = max(0.0, 1.0 - alpha / DETAIL_UNTIL)
            if detail > 0:
                # Decoding the content's own features too gives the decoder's reconstruction
                # error; adding it back keeps the photo's detail at low strengths.
                decoded = self._decode(torch.cat([target, content_features.float()]), decoder)
                stylised, reconstruction = decoded.chunk(2)
                stylised = stylised + detail * (batch - reconstruction)
            else:
                stylised = self._decode(target, decoder)
        stylised = stylised[..., :height, :width].clamp(0, 1).float().cpu().numpy()
        stylised = stylised.transpose(0, 2, 3, 1)
        if params.preserve_colors and params.mode != "product":  # the backdrop is the style's
            return [
                keep_colours(out, content) for out, content in zip(stylised, contents, strict=True)
            ]
        return list(stylised)

    def _compensate(
        self,
        target: torch.Tensor,
        decoder: torch.nn.Module,
        content: torch.Tensor,
        budget: float,
    ) -> torch.Tensor:
        """The target, its channel statistics pre-distorted by what the decoder misses, within
        the content budget.

        The decoder under-shoots: re-encoding its output finds relu4_1 channel means and
        deviations short of the AdaIN target's, which is most of the style loss left. Each
        trial decode measures that gap per channel and asks for that much more; two rounds cut
        the bench pairs' style loss by about 40% (the second a further 15%), for two more
        encodes and decodes.

        Each trial is also measured against the photo's own features: asking for more
        changes the photo more, and on a painting the decoder never saw, or a cut-out whose
        white backdrop gets painted, past the budget the optimize engine keeps to. So each
        image stops where its measured (for the last step, extrapolated) change reaches the
        budget. An image the plain target already takes past it spends its later trials on a
        target part of the way from the photo's features instead, and gets the share that
        meets the budget (`_share_within`): no more decodes than without a budget.
        """
        wanted = mean_std(target)
        path, changes = [wanted], []
        mean, std = wanted
        trial_target, over = adain(target, mean, std), None  # renormalised, as ever
        bounded = math.isfinite(budget)  # unbounded: the compensation alone, nothing measured
        for _ in range(COMPENSATION_ROUNDS):
            got = self._trial(trial_target, decoder)
            got_mean, got_std = mean_std(got)
            mean = (mean + wanted[0] - got_mean).clamp_min(0)
            std = std * (wanted[1] / got_std.clamp_min(1e-3)).clamp(0.5, 2.0)
            trial_target = adain(target, mean, std)
            if not bounded:
                continue
            change = relative_change(got, content)
            if over is None:  # the plain target: which images are past the budget already
                over, plain_change = change > budget, change
                share = (budget / change).clamp(0, 1)[:, None, None, None]
            else:
                share = _share_within(budget, share, change, plain_change, over)
            changes.append(change)
            path.append((mean, std))
            towards = torch.lerp(content, target, share)
            trial_target = torch.where(over[:, None, None, None], towards, trial_target)
        if not bounded:
            return trial_target
        changes.append(2 * changes[-1] - changes[-2] if len(changes) > 1 else changes[-1])
        measured = torch.stack(changes, dim=1)  # N x (rounds + 1): the change at each point
        position = torch.stack([stop_position(row, budget) for row in measured])
        step = position.floor().long().clamp(max=COMPENSATION_ROUNDS - 1)
        fraction = (position - step)[:, None]
        means, stds = (torch.stack([point[i] for point in path], dim=1) for i in (0, 1))
        rows = torch.arange(len(target))
        mean = torch.lerp(means[rows, step], means[rows, step + 1], fraction)
        std = torch.lerp(stds[rows, step], stds[rows, step + 1], fraction)
        return torch.where(over[:, None, None, None], towards, adain(target, mean, std))

    def _trial(self, target: torch.Tensor, decoder: torch.nn.Module) -> torch.Tensor:
        """relu4_1 features of what `target` decodes to."""
        trial = self._decode(target, decoder).clamp(0, 1)
        return self.vgg(trial, ["relu4_1"])["relu4_1"].float()

    def _decode(self, features: torch.Tensor, decoder: torch.nn.Module) -> torch.Tensor:
        features = features.to(memory_format=torch.channels_last)
        return decoder(features).float()

    def style_statistics(self, style: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """relu4_1 channel mean and std of a style image, cached per image and size."""
        key = hashlib.blake2b(np.ascontiguousarray(style).tobytes(), digest_size=16).hexdigest()
        key = f"{key}-{style.shape}"
        with self._lock:
            cached = self._style_stats.get(key)
            if cached is not None:
                self._style_stats.move_to_end(key)
                return cached
        pixels = torch.from_numpy(style.transpose(2, 0, 1).copy())[None].to(self.device)
        with torch.inference_mode(), autocast(self.device):
            stats = mean_std(self.vgg(pixels, ["relu4_1"])["relu4_1"].float())
        with self._lock:
            self._style_stats[key] = stats
            while len(self._style_stats) > STYLE_CACHE_SIZE:
                self._style_stats.popitem(last=False)
        return stats


def _painted_as(canvas: Canvas, params: RenderParams) -> RenderParams:
    """A product-mode photo in which no product was found is painted as whole mode paints it
    (with the decoder's compensation), its colours not kept: its key ignores preserve_colors."""
    if params.mode == "product" and canvas.mask is None:
        return dataclasses.replace(params, mode="whole", preserve_colors=False)
    return params


def adain_alpha(strength: int) -> float:
    """Strength 0..100 -> AdaIN's feature interpolation weight, eased out: 1 - (1 - s)^2.

    Linear alpha leaves the default strength (70) visibly weaker than the optimize engine's
    70; the eased curve keeps 0 -> 0 and 100 -> 1 and puts 70 at 0.91, 30 at 0.51.
    """
    share = strength / 100.0
    return 1.0 - (1.0 - share) ** 2


def relative_change(features: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Per image (N,): metrics.content_loss on features, |f - c|^2 / |c|^2."""
    dims = tuple(range(1, content.dim()))
    gap = (features - content).square().sum(dim=dims)
    return gap / content.square().sum(dim=dims).clamp_min(1e-12)


def _share_within(budget, share, change, plain_change, over) -> torch.Tensor:
    """For images past the budget: the share of the way from the photo's features to the
    plain target that meets it, linear between the two measured points (the trial at
    `share`, which changed the photo by `change`, and the plain target at 1); 1 elsewhere."""
    share, slope = share.flatten(), (plain_change - change) / (1 - share.flatten()).clamp_min(1e-6)
    met = (share + (budget - change) / slope.clamp_min(1e-6)).clamp(0, 1)
    return torch.where(over, met, torch.ones_like(met))[:, None, None, None]


def stop_position(changes: torch.Tensor, budget: float) -> torch.Tensor:
    """Where along the compensation path (0: the plain target, k: after k rounds) the change,
    linear between the points measured, reaches `budget`; the last point if it never does,
    0 if the plain target is over it already."""
    if changes[-1] <= budget:
        return torch.tensor(float(len(changes) - 1))
    for k in range(len(changes) - 1):
        low, high = changes[k], changes[k + 1]
        if low <= budget < high:
            return k + (budget - low) / (high - low)
    return torch.tensor(0.0)


def _pad_to_multiple(batch: torch.Tensor, multiple: int) -> torch.Tensor:
    height, width = batch.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if not pad_h and not pad_w:
        return batch
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(batch, (0, pad_w, 0, pad_h), mode=mode)
