"""bench/gpu.py --device cpu --quick keeps working: every step runs and its figures are sane."""

import json
import os
import subprocess
import sys

import pytest

from styletransfer.engines.decoder import load_decoder
from tests.helpers import ROOT

pytestmark = pytest.mark.slow


def test_the_prepared_gpu_run_works_on_a_cpu(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "CACHE_URL"))}
    env = {k: v for k, v in env.items() if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    run = subprocess.run(
        [sys.executable, "bench/gpu.py", "--device", "cpu", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        env={**env, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    figures = json.loads((tmp_path / "gpu.json").read_text())
    assert figures["device"]["requested"] == "cpu"
    assert all(row["images_per_s"] > 0 for row in figures["engine"] if "skipped" not in row)
    end_to_end = figures["end_to_end"]
    for mode in ("single", "batched"):
        assert end_to_end[mode]["images"] == 4 and end_to_end[mode]["failed"] == 0
    assert figures["batch_speedup"] == end_to_end["batch_speedup"] > 0
    assert end_to_end["same_bytes"]["identical"] == end_to_end["same_bytes"]["compared"] == 4
    assert figures["training"]["steps_per_s"] > 0
    decoder, meta = load_decoder(tmp_path / "decoder-finetuned.pt")  # checksum and all
    assert meta["sha256"] == figures["fine_tune"]["sha256"] and meta["steps"] >= 1
    print(figures["step_seconds"], "batch_speedup", figures["batch_speedup"])


def test_asking_for_cuda_without_one_says_so(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    run = subprocess.run(
        [sys.executable, "bench/gpu.py", "--device", "cuda", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2 and "no CUDA GPU" in run.stderr
