"""One prepared run on a GPU machine: engine throughput, a real render worker end to end, decoder
training speed, then fine-tuning the decoder with whatever time is left. No network needed.

    python bench/gpu.py [--device cuda] [--budget 420] [--out $OUT]
    python bench/gpu.py --device cpu --quick          # the same steps in about a minute (CI)

1. The device: torch, CUDA, the GPU's name, memory and bf16 support (exits 2 without CUDA when
   --device cuda was asked for).
2. Engine throughput (FeedForwardEngine.stylise: upload, VGG19 to relu4_1, AdaIN with the two
   compensation rounds, the decoder, download) at 256/512/1024 px over batch sizes and dtypes
   (float16, bfloat16, float32 on CUDA; the CPU's own autocast on a CPU).
3. End to end: bench/batch.py in a subprocess, a real Celery render worker on this device
   against synthetic product photos through the real queue and storage (SQLite and kombu's
   filesystem transport unless BENCH_DATABASE_URL / BENCH_BROKER_URL say otherwise), batched and
   one task each side by side: images/s, `batch_speedup`, GPU utilisation (nvidia-smi).
4. Decoder training steps/s (styletransfer.engines.training, bf16 autocast on CUDA).
5. The rest of --budget fine-tunes the shipped decoder on the demo's photos and paintings;
   the checkpoint (with its .sha256) and gpu.json, every figure above, go to --out ($OUT).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEMO = ROOT / "storefront" / "demo"
DATA = ROOT / "tests" / "data"

# (sizes, batch sizes, products per mode, products one task each, RENDER_BATCH_SIZE, e2e px)
PLANS = {
    "cuda": ((256, 512, 1024), (1, 8, 32, 64), 2000, 300, 128, 512),
    "cpu": ((256, 512), (1, 2, 4), 24, 24, 16, 256),
    "quick": ((128,), (1, 2), 4, 4, 4, 128),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="a minute's worth of each step")
    parser.add_argument("--budget", type=float, help="seconds for it all (420; quick: 75)")
    parser.add_argument("--out", type=Path, default=os.environ.get("OUT") or ROOT / "bench/out")
    args = parser.parse_args()
    started = time.monotonic()
    # 420 s leaves a minute of the 8 for starting, loading and what overruns its share.
    budget = args.budget or (75 if args.quick else 420)
    deadline = started + budget
    args.out.mkdir(parents=True, exist_ok=True)
    import torch

    figures: dict = {"device": describe(args.device), "budget_s": budget, "quick": args.quick}
    if figures["device"].get("error"):
        print(figures["device"]["error"], file=sys.stderr)
        return 2
    print_device(figures["device"])
    sizes, batches, products, single, batch, e2e_size = PLANS[
        "quick" if args.quick else ("cuda" if args.device.startswith("cuda") else "cpu")
    ]
    share = 0.15 if args.quick else 0.25
    steps = figures["step_seconds"] = {}

    def step(name: str, run):
        begun = time.monotonic()
        figures[name] = run()
        steps[name] = round(time.monotonic() - begun, 1)

    step("engine", lambda: engine_throughput(args.device, sizes, batches, started + share * budget))
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()  # the worker below is another process on the same GPU
    e2e_until = started + 0.7 * budget  # training and fine-tuning keep the last 30 %
    step("end_to_end", lambda: end_to_end(args, products, single, batch, e2e_size, e2e_until))
    figures["batch_speedup"] = figures["end_to_end"].get("batch_speedup")
    step("training", lambda: training_speed(args.device, quick=args.quick))
    left = deadline - time.monotonic() - 10
    step("fine_tune", lambda: fine_tune(args.device, args.out, left, quick=args.quick))
    figures["total_s"] = round(time.monotonic() - started, 1)
    (args.out / "gpu.json").write_text(json.dumps(figures, indent=2))
    print(f"Figures in {args.out / 'gpu.json'} ({figures['total_s']} s in all)")
    return 0


def describe(device: str) -> dict:
    import torch

    from styletransfer.engines.decoder import cpu_has_bf16

    info = {
        "requested": device,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_cores": os.cpu_count(),
        "cuda_available": torch.cuda.is_available(),
    }
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            return info | {"error": "--device cuda asked for, but torch sees no CUDA GPU"}
        properties = torch.cuda.get_device_properties(torch.device(device))
        info |= {
            "name": properties.name,
            "memory_gib": round(properties.total_memory / 2**30, 1),
            "capability": f"{properties.major}.{properties.minor}",
            "bf16": torch.cuda.is_bf16_supported(),
            "cuda": torch.version.cuda,
            "driver": _nvidia_smi("driver_version"),
        }
    else:
        info |= {"name": platform.processor() or platform.machine(), "bf16": cpu_has_bf16()}
    return info


def _nvidia_smi(field: str) -> str | None:
    if not shutil.which("nvidia-smi"):
        return None
    answer = subprocess.run(
        ["nvidia-smi", f"--query-gpu={field}", "--format=csv,noheader"],
        capture_output=True,
        text=True,
    )
    return answer.stdout.strip() or None


def print_device(info: dict) -> None:
    extra = f", {info['memory_gib']} GiB, CUDA {info['cuda']}" if "memory_gib" in info else ""
    name = f"{info['requested']}: {info['name']}{extra}"
    print(f"Device {name}, bf16 {info['bf16']}, torch {info['torch']}")


def engine_throughput(device: str, sizes, batches, until: float) -> list[dict]:
    """Images/s of the feedforward engine's stylise pass, per size, dtype and batch."""
    from styletransfer.engines import RenderParams
    from styletransfer.engines.feedforward import FeedForwardEngine
    from styletransfer.engines.images import open_image

    engine = FeedForwardEngine(device)
    engine.load()
    style = open_image(DEMO / "styles" / "starry_night.jpg")
    content = open_image(DEMO / "products" / "saleor-blue-hoodie.png")
    cuda = device.startswith("cuda")
    dtypes = ("bfloat16", "float16", "float32") if cuda else ("cpu-autocast",)
    rows = []
    print("Engine throughput (stylise: upload, VGG19 relu4_1, AdaIN, 2 compensation rounds,")
    print("decoder, download), images/s:")
    for size in sizes:
        params = RenderParams(engine="feedforward", mode="product", size=size)
        canvas = engine.preprocess(content, style, params)
        pixels = engine._pixels(canvas, params)
        for dtype in dtypes:
            if cuda:
                os.environ["STYLETRANSFER_CUDA_DTYPE"] = dtype
            for batch in batches:
                if time.monotonic() > until:
                    rows.append({"size": size, "dtype": dtype, "batch": batch, "skipped": "time"})
                    continue
                row = {"size": size, "dtype": dtype, "batch": batch}
                row |= _time_passes(engine, [pixels] * batch, canvas.style, params, cuda)
                rows.append(row)
                label = f"  {size:5d} px {dtype:>12} batch {batch:3d}:"
                print(label, row.get("images_per_s", row.get("error")))
    os.environ.pop("STYLETRANSFER_CUDA_DTYPE", None)
    return rows


def _time_passes(engine, group, style, params, cuda: bool) -> dict:
    import torch

    from styletransfer.engines.engine import is_out_of_memory

    try:
        engine.stylise(group, style, params)  # kernels chosen, memory pooled
        passes, started = 0, time.perf_counter()
        while passes < 2 or (cuda and time.perf_counter() - started < 1.0):
            engine.stylise(group, style, params)
            passes += 1
        seconds = time.perf_counter() - started
    except (RuntimeError, MemoryError) as exc:
        if not is_out_of_memory(exc):
            raise
        if cuda:
            torch.cuda.empty_cache()
        return {"error": "out of memory"}
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    return {
        "images_per_s": round(len(group) * passes / seconds, 2),
        "seconds_per_pass": round(seconds / passes, 4),
        "peak_memory_gib": round(peak, 2) if peak is not None else None,
    }


def end_to_end(args, products: int, single: int, batch: int, size: int, deadline: float) -> dict:
    """bench/batch.py against a real render worker on this device; its figures."""
    work = Path(tempfile.mkdtemp(prefix="bench-gpu-e2e-"))
    result = work / "batch.json"
    command = [sys.executable, str(ROOT / "bench" / "batch.py"), "--device", args.device]
    command += ["--products", str(products), "--single-products", str(single)]
    command += ["--batch", str(batch), "--size", str(size), "--work", str(work / "shop")]
    command += ["--json", str(result)]
    print(f"End to end through a Celery render worker: {' '.join(command[1:])}")
    timeout = max(120.0, deadline - time.monotonic() - 30)
    process = subprocess.Popen(command, cwd=ROOT)
    try:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.terminate()  # batch.py stops its render worker on SIGTERM
            process.wait(timeout=60)
            raise
        if process.returncode:
            raise subprocess.CalledProcessError(process.returncode, command)
        figures = json.loads(result.read_text())
    except (subprocess.SubprocessError, OSError, ValueError) as exc:
        figures = {"error": f"{type(exc).__name__}: {exc}"}
        print(f"  end to end failed: {figures['error']}", file=sys.stderr)
    log = work / "shop" / "worker.log"
    if log.is_file():
        shutil.copy(log, args.out / "worker.log")
    shutil.rmtree(work, ignore_errors=True)
    return figures


# Small crops, few of them: what keeps --quick quick (the decoder's own recipe otherwise).
QUICK_TRAINING = {"size": 96, "batch": 2, "bank_crops": 4}


def training_files(quick: bool) -> tuple[list[Path], list[Path]]:
    """Photos and paintings that travel with the repository (no network, no ../shared)."""
    return ([DATA] if quick else [DEMO / "products", DATA]), [DEMO / "styles"]


def training_speed(device: str, *, quick: bool) -> dict:
    """Steps/s of the decoder's training loop (its defaults; bf16 autocast on CUDA)."""
    from styletransfer.engines.training import TrainConfig, train

    content, style = training_files(quick)
    with tempfile.TemporaryDirectory() as folder, _training_dtype(device):
        config = TrainConfig(
            content=content,
            style=style,
            out=Path(folder) / "speed.pt",
            steps=2 if quick else 60,
            minutes=None if quick else 1.0,  # a slow device measures fewer steps
            save_every=10**9,
            device=device,
            quiet=True,
            **(QUICK_TRAINING if quick else {}),
        )
        meta = train(config)
    rate = meta["steps"] / max(meta["seconds"], 1e-9)
    print(f"Decoder training: {rate:.2f} steps/s (batch {config.batch} at {config.size} px)")
    return {"steps": meta["steps"], "seconds": meta["seconds"], "steps_per_s": round(rate, 3)}


def fine_tune(device: str, out: Path, seconds: float, *, quick: bool) -> dict:
    """Fine-tune the shipped decoder for `seconds` (at least one step); save it under `out`."""
    from styletransfer.engines.decoder import SHIPPED_FILE
    from styletransfer.engines.training import TrainConfig, train

    content, style = training_files(quick)
    with tempfile.TemporaryDirectory() as folder, _training_dtype(device):
        config = TrainConfig(
            content=content,
            style=style,
            out=Path(folder) / "decoder-finetuned.pt",
            steps=10**7 if seconds > 5 else 1,
            minutes=max(seconds, 1.0) / 60,
            init=SHIPPED_FILE,
            lr=1e-4,
            device=device,
            quiet=True,
            **(QUICK_TRAINING if quick else {}),
        )
        meta = train(config)
        for name in ("decoder-finetuned.pt", "decoder-finetuned.pt.sha256"):
            shutil.copy(Path(folder) / name, out / name)
    print(
        f"Fine-tuned the decoder for {meta['steps']} steps ({meta['seconds']} s): "
        f"losses {meta['final_losses']}; saved {out / 'decoder-finetuned.pt'}"
    )
    return {
        "steps": meta["steps"],
        "seconds": meta["seconds"],
        "final_losses": meta["final_losses"],
        "checkpoint": "decoder-finetuned.pt",
        "sha256": meta["sha256"],
    }


class _training_dtype:
    """bf16 autocast for training on CUDA: fp16 without a gradient scaler underflows."""

    def __init__(self, device: str) -> None:
        self.cuda = device.startswith("cuda")

    def __enter__(self) -> None:
        if self.cuda:
            os.environ["STYLETRANSFER_CUDA_DTYPE"] = "bfloat16"

    def __exit__(self, *exc_info) -> None:
        os.environ.pop("STYLETRANSFER_CUDA_DTYPE", None)


if __name__ == "__main__":
    raise SystemExit(main())
