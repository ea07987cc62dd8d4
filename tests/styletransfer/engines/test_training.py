"""train-decoder: a tiny run writes a checksummed decoder and a resumable state."""

import shutil
from pathlib import Path

import pytest
import torch

from styletransfer.engines import RenderParams, cli, training
from styletransfer.engines.decoder import SHIPPED_FILE, Decoder, load_decoder, save_decoder
from styletransfer.engines.feedforward import FeedForwardEngine
from styletransfer.engines.images import open_image
from tests.helpers import DATA


@pytest.fixture
def folders(tmp_path) -> tuple[Path, Path]:
    content, style = tmp_path / "content", tmp_path / "style"
    content.mkdir()
    style.mkdir()
    for name in ("product-hoodie.png", "product-mug-on-grey.jpg"):
        shutil.copy(DATA / name, content / name)
    for name in ("style-wave.jpg", "style-the-scream.jpg"):
        shutil.copy(DATA / name, style / name)
    (content / "notes.txt").write_text("not an image, skipped by suffix")
    return content, style


def tiny(folders, out: Path, steps: int, resume: bool = False) -> training.TrainConfig:
    content, style = folders
    return training.TrainConfig(
        content=[content],
        style=[style],
        out=out,
        steps=steps,
        size=64,
        batch=2,
        bank_crops=2,
        save_every=2,
        resume=resume,
        threads=None,
        quiet=True,
    )


@pytest.mark.slow
def test_a_tiny_run_writes_a_usable_checkpoint_and_resumes(folders, tmp_path) -> None:
    out = tmp_path / "decoder.pt"
    meta = training.train(tiny(folders, out, steps=2))
    assert meta["steps"] == 2 and out.is_file()
    assert (tmp_path / "decoder.pt.sha256").read_text().split()[0] == meta["sha256"]
    first = torch.load(out.with_name("decoder.pt.train.pt"), weights_only=False)
    assert first["step"] == 2

    meta = training.train(tiny(folders, out, steps=3, resume=True))
    assert meta["steps"] == 3
    state = torch.load(out.with_name("decoder.pt.train.pt"), weights_only=False)
    assert state["step"] == 3
    # the optimiser carried on (Adam's step count), it did not restart from scratch
    adam_steps = {int(s["step"]) for s in state["optimizer"]["state"].values()}
    assert adam_steps == {3}

    engine = FeedForwardEngine(weights=out)
    image = engine.render(
        open_image(DATA / "product-hoodie.png"),
        open_image(DATA / "style-wave.jpg"),
        RenderParams(engine="feedforward", size=64),
    )
    assert image.size == (64, 64)


def test_init_fine_tunes_from_a_finished_decoder(folders, tmp_path) -> None:
    first = tmp_path / "first.pt"
    training.train(tiny(folders, first, steps=1))
    config = tiny(folders, tmp_path / "tuned.pt", steps=0)
    config.init = first
    meta = training.train(config)  # zero steps: the written weights are the initial ones
    assert meta["steps"] == 0
    start, _ = load_decoder(first)
    tuned, _ = load_decoder(tmp_path / "tuned.pt")
    for name, value in start.state_dict().items():
        assert torch.equal(tuned.state_dict()[name], value), name


def test_the_style_term_is_the_weighted_sum_of_its_layers() -> None:
    from styletransfer.engines.decoder import Decoder
    from styletransfer.engines.vgg import load_vgg19, mean_std

    torch.manual_seed(0)
    vgg, decoder = load_vgg19("cpu"), Decoder()
    content, style = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    taps = vgg(style, training.STYLE_LAYERS)
    stats = {name: mean_std(taps[name]) for name in training.STYLE_LAYERS}

    def style_term(weights) -> float:
        return training.losses(vgg, decoder, content, stats, "cpu", weights)["style"].item()

    alone = [style_term([float(i == j) for j in range(4)]) for i in range(4)]
    assert all(value > 0 for value in alone)
    weights = (1.0, 0.5, 2.0, 6.0)
    weighted = sum(w * value for w, value in zip(weights, alone, strict=True))
    assert style_term(weights) == pytest.approx(weighted, rel=1e-4)


@pytest.mark.slow
def test_the_command_line_trains_and_reports(folders, tmp_path, capsys) -> None:
    content, style = folders
    out = tmp_path / "cli" / "decoder.pt"
    argv = ["train-decoder", "--content", str(content), "--style", str(style), "--out", str(out)]
    argv += ["--steps", "1", "--size", "64", "--batch", "1"]
    assert cli.main(argv) == 0
    assert "sha256" in capsys.readouterr().out and out.is_file()


def test_an_empty_folder_is_a_clear_error(tmp_path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = ["train-decoder", "--content", str(empty), "--style", str(empty)]
    argv += ["--out", str(tmp_path / "d.pt")]
    assert cli.main(argv) == cli.EXIT_FAILED
    assert "no images found" in capsys.readouterr().err


def test_average_decoders_writes_the_mean_of_their_weights(tmp_path, capsys) -> None:
    """Checkpoint averaging: every weight is the mean of the inputs' (within fp16 storage)."""
    paths = []
    for seed in (1, 2, 3):
        torch.manual_seed(seed)
        path = tmp_path / f"ck{seed}.pt"
        save_decoder(Decoder(), path, {"steps": seed * 100})
        paths.append(path)
    out = tmp_path / "mean.pt"
    assert cli.main(["average-decoders", *map(str, paths), "--out", str(out)]) == 0
    assert "the mean of 3 decoders" in capsys.readouterr().out
    mean, meta = load_decoder(out)  # the .sha256 beside it checks out
    inputs = [load_decoder(path)[0].state_dict() for path in paths]
    for name, value in mean.state_dict().items():
        expected = torch.stack([state[name] for state in inputs]).mean(0)
        assert torch.allclose(value, expected, atol=2e-3, rtol=2e-3), name
    assert [entry["steps"] for entry in meta["averaged"]] == [100, 200, 300]


def test_average_decoders_refuses_an_altered_file(tmp_path, capsys) -> None:
    path = tmp_path / "ck.pt"
    save_decoder(Decoder(), path, {})
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the weights
    path.write_bytes(bytes(data))
    status = cli.main(["average-decoders", str(path), "--out", str(tmp_path / "mean.pt")])
    assert status == cli.EXIT_WEIGHTS
    assert "altered" in capsys.readouterr().err
    assert not (tmp_path / "mean.pt").exists()


def test_init_can_switch_a_zero_padded_decoder_to_reflection_padding(folders, tmp_path) -> None:
    config = tiny(folders, tmp_path / "reflect.pt", steps=0)
    config.init, config.padding = SHIPPED_FILE, "reflect"
    training.train(config)  # the shipped weights, now behind reflection padding
    decoder, meta = load_decoder(tmp_path / "reflect.pt")
    assert meta["arch"]["padding"] == "reflect"
    convs = [m for m in decoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and {conv.padding_mode for conv in convs} == {"reflect"}
    shipped, _ = load_decoder()
    for name, value in shipped.state_dict().items():
        assert torch.equal(decoder.state_dict()[name], value), name
