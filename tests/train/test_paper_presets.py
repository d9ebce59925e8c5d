"""The paper presets end to end on the ADE20K and Adobe matting fixtures (real layouts, tiny sizes):
train, checkpoint, stop, resume, evaluate, results; the command-line overrides; --init from a
published weight format."""

import pytest
import torch

from fade.cli import main
from fade.data.fixtures import write_ade20k, write_adobe_matting
from fade.io import read_checked_json
from fade.models import create_model
from fade.models.pretrained import conversion_links
from fade.train.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("datasets")
    write_ade20k(root)
    write_adobe_matting(root)
    return root


PAPER_RUNS = {
    "segmentation": ["--size", "64", "64", "--batch-size", "2"],
    "matting": ["--size", "32", "32", "--batch-size", "2"],
}


@pytest.mark.parametrize("task", ["segmentation", "matting"])
def test_paper_preset_trains_stops_resumes_and_evaluates_on_the_fixtures(task, datasets, tmp_path, capsys):
    out = tmp_path / "run"
    common = ["train", "--task", task, "--preset", "paper", "--upsampler", "fade", "--data-dir", str(datasets)]
    common += [*PAPER_RUNS[task], "--steps", "2", "--workers", "0", "--out", str(out)]
    assert main([*common, "--stop-after", "1"]) == 0
    assert load_checkpoint(out / "checkpoint.pt", torch.device("cpu"))["step"] == 1
    assert not (out / "results.json").exists()
    assert main(common) == 0
    assert "resuming at step 1" in capsys.readouterr().err
    results = read_checked_json(out / "results.json", "test")
    assert results["status"] == "complete" and [h["step"] for h in results["history"]] == [2]
    preset = results["config"]["preset"]
    assert preset["data"] == {"segmentation": "ade20k", "matting": "composition1k"}[task]
    assert preset["data_options"]["root"] == str(datasets) and preset["batch_size"] == 2
    assert results["test_samples"] == {"segmentation": 2, "matting": 4}[task]  # every fixture test image
    expected = {"segmentation": {"miou", "biou", "pixel_accuracy"}, "matting": {"sad", "mse", "grad", "conn"}}
    assert set(results["metrics"]) == expected[task]


def test_paper_preset_without_its_data_dir_is_one_clear_line(tmp_path, capsys):
    argv = ["train", "--task", "segmentation", "--preset", "paper", "--upsampler", "bilinear", "--out", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pass --data-dir" in err


@pytest.mark.parametrize(
    "option, value, expected",
    [
        ("--batch-size", "0", "expected an integer >= 1"),
        ("--steps", "-3", "expected an integer in [1, 1000000000]"),
        ("--train-length", "x", "expected an integer >= 1"),
        ("--data-dir", "/no/such/folder", "expected an existing directory"),
    ],
)
def test_overrides_are_range_checked(option, value, expected, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--task", "matting", "--upsampler", "fade", option, value])
    assert exit_.value.code == 2 and expected in capsys.readouterr().err


def test_overrides_reach_the_preset(tmp_path):
    out = tmp_path / "run"
    argv = ["train", "--task", "reconstruction", "--preset", "quick", "--upsampler", "bilinear", "--out", str(out)]
    argv += ["--steps", "2", "--batch-size", "4", "--train-length", "8", "--test-length", "3", "--size", "28", "28"]
    assert main(argv) == 0
    results = read_checked_json(out / "results.json", "test")
    preset = results["config"]["preset"]
    assert (preset["steps"], preset["batch_size"], preset["train_length"], preset["test_length"]) == (2, 4, 8, 3)
    assert results["train_samples"] == 8 and results["test_samples"] == 3


def test_train_init_loads_mmseg_weights_into_the_encoder(tmp_path, capsys):
    """An mmseg-format MiT file of distinctive weights: after 2 steps of lr 4e-3 (Adam moves a weight
    by at most ~lr a step) the encoder is still the file's, far from any random initialisation."""
    torch.manual_seed(5)
    source = create_model("segformer_tiny", "bilinear", num_classes=11)
    with torch.no_grad():
        for name, tensor in source.state_dict().items():
            if name.startswith("encoder.") and tensor.is_floating_point():
                tensor.copy_(torch.linspace(-0.5, 0.5, tensor.numel()).reshape(tensor.shape) + 0.25)
    own, state = source.state_dict(), {}
    for link in conversion_links(source, "mmseg"):
        tensors = [own[k] for k in link.ours]
        value = torch.cat(tensors) if link.rule == "split" else tensors[0]
        state[link.theirs[0]] = value[:, :, None, None] if link.rule == "linear" else value
    torch.save({"state_dict": {f"backbone.{k}": v for k, v in state.items()}}, tmp_path / "mit.pth")
    out = tmp_path / "run"
    argv = ["train", "--task", "segmentation", "--preset", "scratch", "--upsampler", "bilinear", "--out", str(out)]
    argv += ["--steps", "2", "--batch-size", "2", "--train-length", "4", "--test-length", "2", "--size", "32", "32"]
    assert main([*argv, "--init", str(tmp_path / "mit.pth")]) == 0
    assert "mmseg format: loaded 100 tensors" in capsys.readouterr().err
    trained = load_checkpoint(out / "checkpoint.pt", torch.device("cpu"))["model"]
    for name in ("encoder.patch_embeds.0.proj.weight", "encoder.stages.2.0.attn.kv.weight", "encoder.norms.3.bias"):
        assert (trained[name] - own[name]).abs().max() < 2 * 4e-3 * 1.01, name

    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "layer1.0.conv1.weight": torch.zeros(1)}, tmp_path / "r.pth")
    assert main([*argv, "--out", str(tmp_path / "other"), "--init", str(tmp_path / "r.pth")]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("fade train: error: ") and "torchvision-format weights" in last and "fit a SegFormer" in last


def test_data_dir_reaches_the_fashion_mnist_source(tmp_path, capsys):
    """A folder of idx files in the Fashion-MNIST naming (links to the system's copy) is read from."""
    from fade.data.fashion_mnist import SYSTEM_DIR

    folder = tmp_path / "idx"
    folder.mkdir()
    for file in SYSTEM_DIR.iterdir():
        (folder / file.name).symlink_to(file)
    out = tmp_path / "run"
    argv = ["train", "--task", "reconstruction", "--preset", "quick", "--upsampler", "bilinear", "--out", str(out)]
    argv += ["--steps", "1", "--batch-size", "4", "--train-length", "4", "--test-length", "2"]
    assert main([*argv, "--data-dir", str(folder)]) == 0
    assert read_checked_json(out / "results.json", "test")["config"]["preset"]["data_options"]["root"] == str(folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([*argv, "--out", str(tmp_path / "other"), "--data-dir", str(empty)]) == 2
    assert str(empty) in capsys.readouterr().err.strip().splitlines()[-1]


def test_compare_refuses_to_run_under_torchrun(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["compare", "--task", "matting", "--quick"]) == 2
    assert "under torchrun, run fade train" in capsys.readouterr().err
