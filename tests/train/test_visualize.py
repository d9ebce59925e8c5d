"""fade visualize on a tiny trained run: the recorded gates and kernels are the ones the upsampler used."""

import math

import pytest
import torch

from fade.cli import main
from fade.ops.carafe import carafe
from fade.train.compare import compare
from fade.train.visualize import inspect_upsamplers, kernel_entropy, kernel_mosaic, load_run, visualize

from .conftest import TINY


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_data):
    """A 2-step FADE segmentation run of a comparison (which keeps seed 0's model.pt)."""
    out = tmp_path_factory.mktemp("compare")
    compare(TINY["segmentation"].replace(steps=2), ["fade"], [0], out, data=tiny_data("segmentation"), plots=False)
    return out / "runs" / "fade" / "seed0"


def test_recorded_kernels_and_gates_rebuild_every_output(tiny_run):
    preset, upsampler, model = load_run(tiny_run)
    assert (preset.name, upsampler, model.training) == ("tiny", "fade", False)
    x = torch.randn(2, 3, *preset.size)
    output, stages = inspect_upsamplers(model, x)
    assert output.shape[:2] == (2, 11) and len(stages) == 6  # the chain head: 3 + 2 + 1 upsamplers
    for stage in stages:
        assert stage.kernels.shape == (2, 25, *stage.en.shape[-2:])
        torch.testing.assert_close(stage.kernels.sum(1), torch.ones(2, *stage.en.shape[-2:]))
        assert stage.gate.min() >= 0 and stage.gate.max() <= 1
        module = model.get_submodule(stage.name)
        en = stage.en if module.aligner is None else module.aligner(stage.en)
        rebuilt = carafe(stage.de, stage.kernels, module.scale) * (1 - stage.gate) + en * stage.gate
        torch.testing.assert_close(rebuilt, stage.out, atol=1e-5, rtol=1e-5)


def test_entropy_and_mosaic_by_hand():
    uniform = torch.full((1, 9, 2, 2), 1 / 9)
    torch.testing.assert_close(kernel_entropy(uniform), torch.full((1, 2, 2), math.log(9)))
    one_hot = torch.zeros(1, 9, 2, 2)
    one_hot[:, 4] = 1.0
    torch.testing.assert_close(kernel_entropy(one_hot), torch.zeros(1, 2, 2))
    # K = 2, a 2x2 map: kernel of pixel (r, c) is [[a, b], [c, d]] with values 10 * (2r + c) + k.
    kernels = torch.zeros(4, 2, 2)
    for r in range(2):
        for c in range(2):
            kernels[:, r, c] = 10 * (2 * r + c) + torch.arange(4.0)
    expected = torch.tensor([[0, 1, 10, 11], [2, 3, 12, 13], [20, 21, 30, 31], [22, 23, 32, 33]], dtype=torch.float32)
    torch.testing.assert_close(kernel_mosaic(kernels, 0, 0, 2), expected)
    torch.testing.assert_close(kernel_mosaic(kernels, 1, 1, 1), torch.tensor([[30.0, 31.0], [32.0, 33.0]]))


def test_visualize_writes_the_pngs_and_the_cli_reports_mistakes(tiny_run, tmp_path, capsys):
    assert main(["visualize", str(tiny_run), "--out", str(tmp_path / "png"), "--samples", "1"]) == 0
    names = ["sample0_features.png", "sample0_gates.png", "sample0_kernels.png"]
    assert capsys.readouterr().out.split() == [str(tmp_path / "png" / name) for name in names]
    assert all((tmp_path / "png" / name).read_bytes()[:4] == b"\x89PNG" for name in names)
    assert main(["visualize", str(tmp_path / "nowhere")]) == 2
    assert "expected a run folder with results.json" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "results.json").write_bytes((tiny_run / "results.json").read_bytes())
    with pytest.raises(FileNotFoundError, match="expected the run's weights"):
        load_run(empty)
    with pytest.raises(ValueError, match=r"samples: expected an integer in 1..64, got 0"):
        visualize(tiny_run, samples=0)


@pytest.mark.parametrize(
    "preset",
    [{"task": "reconstruction"}, {"size": 3}, "not a preset"],
    ids=["fields missing", "size not a pair", "a string"],
)
def test_a_verified_results_json_with_a_preset_fade_cannot_rebuild_is_one_line(preset, tmp_path, capsys):
    """A checksummed results.json whose preset lacks fields or has wrong ones: one line naming it (was KeyError)."""
    from fade.io import write_checked_json

    config = {"preset": preset, "upsampler": "fade"}
    write_checked_json(tmp_path / "results.json", {"status": "complete", "config": config})
    assert main(["visualize", str(tmp_path)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"fade visualize: error: {tmp_path / 'results.json'}: expected a preset of this fade")


def test_an_out_that_cannot_be_a_folder_is_one_line_naming_it(tiny_run, tmp_path, capsys):
    """--out on a file was a bare 'File exists: PATH' after the network had run."""
    (tmp_path / "file").write_text("x")
    for out, why in ((tmp_path / "file", "it is not a folder"), (tmp_path / "file" / "png", "its parent")):
        assert main(["visualize", str(tiny_run), "--out", str(out)]) == 2
        (line,) = capsys.readouterr().err.splitlines()
        assert line.startswith(f"fade visualize: error: out: expected a folder, got {out} ({why}"), line


def test_damaged_weights_say_what_to_do_for_a_drawing(tiny_run, tmp_path, capsys):
    """A damaged model.pt advised 'delete it to restart the run from step 0', which visualize cannot do."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "model.pt").write_bytes((run / "model.pt").read_bytes()[:-7])
    assert main(["visualize", str(run), "--out", str(tmp_path / "png")]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"fade visualize: error: {run / 'model.pt'}: expected "), line
    assert line.endswith("(truncated); delete it to draw from checkpoint.pt instead, or train the run again to draw it"), line
    (run / "model.pt").unlink()
    assert main(["visualize", str(run), "--out", str(tmp_path / "png"), "--samples", "1"]) == 0
