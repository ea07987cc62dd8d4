"""Style onboarding with the real decoder and VGG: it tunes, is stored once, refuses tampering."""

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from styletransfer.engines import RenderParams, WeightsError, cli, metrics, onboarding
from styletransfer.engines.feedforward import FeedForwardEngine
from styletransfer.engines.images import open_image
from tests.helpers import ROOT

DATA = ROOT / "tests" / "data"
WAVE = DATA / "style-wave.jpg"
CONTENTS = [DATA / "product-hoodie.png", DATA / "product-mug-on-grey.jpg"]
# Small and short (16 steps: -26% at 256 px when measured; 5e-4 without warm-up made it worse).
QUICK = onboarding.OnboardConfig(steps=16, minutes=None, size=96, batch=2, lr=2e-4, warmup=4)


@pytest.fixture(scope="module")
def tuned(tmp_path_factory) -> tuple[onboarding.Adapter, str, Path]:
    store = onboarding.AdapterStore(tmp_path_factory.mktemp("adapters"))
    adapter = onboarding.onboard(
        open_image(WAVE),
        reference=onboarding.reference_hash(WAVE),
        contents=[open_image(path) for path in CONTENTS],
        config=QUICK,
    )
    return adapter, store.save(adapter), store.directory


def engine_on(directory: Path) -> FeedForwardEngine:
    engine = FeedForwardEngine("cpu")
    engine.load()
    engine.adapters = onboarding.AdapterStore(directory)
    return engine


@pytest.mark.slow
def test_onboarding_lowers_the_style_loss_of_the_painting_it_was_tuned_on(tuned) -> None:
    adapter, sha256, directory = tuned
    engine = engine_on(directory)
    painting, mug = open_image(WAVE), open_image(DATA / "product-mug-on-grey.jpg")
    # 256 px: a size onboarding tunes for (onboarding.STYLE_SIDES)
    params = RenderParams(engine="feedforward", size=256, mode="whole")
    before = metrics.style_loss(engine.render(mug, painting, params), painting)
    onboarded = engine.render(mug, painting, replace(params, adapter=sha256))
    after = metrics.style_loss(onboarded, painting)
    assert after < 0.9 * before
    assert adapter.meta["steps"] == QUICK.steps
    assert adapter.decoder_sha256 == engine.meta["sha256"]


@pytest.mark.slow
def test_an_adapter_is_stored_once_by_the_reference_and_decoder_and_found_again(tuned) -> None:
    adapter, sha256, directory = tuned
    store = onboarding.AdapterStore(directory)
    assert store.lookup(onboarding.reference_hash(WAVE), adapter.decoder_sha256) == sha256
    assert store.lookup("0" * 64, adapter.decoder_sha256) is None
    assert store.lookup(onboarding.reference_hash(WAVE), "f" * 64) is None  # another decoder
    assert store.save(adapter) == sha256  # the same tensors: the same file, not a second one
    assert len(list(directory.glob("*.pt"))) == 1
    loaded = store.load(sha256)
    assert set(loaded.state) == set(adapter.state)


@pytest.mark.slow
def test_a_tampered_adapter_is_refused_with_a_clear_error(tuned, tmp_path) -> None:
    _, sha256, directory = tuned
    copy = onboarding.AdapterStore(tmp_path)
    data = bytearray(Path(directory, f"{sha256}.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.path_of(sha256).write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="altered.*refused.*onboard the style again"):
        copy.load(sha256)
    with pytest.raises(WeightsError, match="received altered"):
        copy.add_bytes(sha256, bytes(data))
    engine = engine_on(tmp_path)
    params = RenderParams(engine="feedforward", size=64, adapter=sha256)
    with pytest.raises(WeightsError, match="altered"):
        engine.render(open_image(CONTENTS[0]), open_image(WAVE), params)


def test_the_adapter_enters_the_feedforward_key_only() -> None:
    plain = RenderParams(engine="feedforward")
    onboarded = replace(plain, adapter="ab" * 32)
    assert "adapter" not in plain.canonical()  # keys made before onboarding stay as they were
    assert onboarded.canonical() != plain.canonical()
    assert onboarded.canonical()["adapter"] == "ab" * 8
    slow = RenderParams(engine="optimize")
    assert replace(slow, adapter="ab" * 32).canonical() == slow.canonical()
    with pytest.raises(ValueError, match="adapter must be a sha256"):
        replace(plain, adapter="not-a-hash").validate()


def test_the_frame_and_grid_measures_see_what_they_are_named_for() -> None:
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:128, 0:128] / 128.0
    smooth = np.stack([0.4 + 0.2 * np.sin(6 * xs), 0.5 + 0.2 * ys, 0.5 + 0.1 * xs * ys], -1)
    photo = np.clip(smooth + 0.03 * rng.standard_normal(smooth.shape), 0, 1).astype(np.float32)
    framed = photo.copy()
    framed[:3], framed[-3:], framed[:, :3], framed[:, -3:] = 0.95, 0.95, 0.95, 0.95
    assert metrics.border_frame(framed) > 5 * metrics.border_frame(photo)
    checker = photo + 0.04 * (((np.indices((128, 128)).sum(0) // 2) % 2)[..., None] - 0.5)
    assert metrics.grid_energy(checker.astype(np.float32)) > 10 * metrics.grid_energy(photo)


@pytest.mark.slow
def test_cli_onboard_is_cached_by_content_and_render_uses_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("STYLETRANSFER_ADAPTER_DIR", str(tmp_path / "adapters"))
    painting = tmp_path / "painting.jpg"
    painting.write_bytes(WAVE.read_bytes())
    onboard = ["onboard", "--style", str(painting), "--content", *map(str, CONTENTS)]
    assert cli.main([*onboard, "--steps", "3", "--quiet"]) == cli.EXIT_OK
    assert "onboarded" in capsys.readouterr().out
    renamed = tmp_path / "same-painting.jpg"  # the content counts, not the name
    renamed.write_bytes(WAVE.read_bytes())
    assert cli.main(["onboard", "--style", str(renamed), "--quiet"]) == cli.EXIT_OK
    assert "onboarded already" in capsys.readouterr().out

    outputs = {}
    for name, extra in (("tuned", []), ("plain", ["--no-adapter"])):
        out = tmp_path / f"{name}.png"
        render = ["render", "--engine", "feedforward", "--size", "64", "--quiet"]
        render += ["--content", str(CONTENTS[0]), "--style", str(painting), "--out", str(out)]
        assert cli.main([*render, *extra]) == cli.EXIT_OK
        outputs[name] = np.asarray(Image.open(out), dtype=np.float32)
    assert np.abs(outputs["tuned"] - outputs["plain"]).mean() > 0.5  # 8-bit levels

    adapter_file = next((tmp_path / "adapters").glob("*.pt"))
    adapter_file.write_bytes(adapter_file.read_bytes()[:-100])  # torn or tampered
    # a new process, as a user runs it (this one keeps the verified weights it loaded)
    env = dict(os.environ, STYLETRANSFER_ADAPTER_DIR=str(tmp_path / "adapters"))
    command = [sys.executable, "-m", "styletransfer", *render[:-1], str(tmp_path / "again.png")]
    refused = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert refused.returncode == cli.EXIT_WEIGHTS
    assert "altered" in refused.stderr and "onboard" in refused.stderr
    assert cli.main([*onboard, "--steps", "2", "--quiet"]) == cli.EXIT_OK
    captured = capsys.readouterr()
    assert "tuning it again" in captured.err and "onboarded" in captured.out
    assert cli.main([*render[:-1], str(tmp_path / "again.png")]) == cli.EXIT_OK


def test_cli_onboard_of_an_unreadable_painting_exits_3(tmp_path, capsys) -> None:
    broken = tmp_path / "painting.jpg"
    broken.write_bytes(b"not an image")
    assert cli.main(["onboard", "--style", str(broken), "--quiet"]) == cli.EXIT_INPUT
    assert "style image" in capsys.readouterr().err
