import hashlib
import io
import json
import math
import os
import pickle

import pytest
import torch

from fade.io import CorruptFileError, FolderLockedError
from fade.train import create_task, train
from fade.train.checkpoint import load_checkpoint

from .conftest import TINY


def _weights(run_dir) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "checkpoint.pt", torch.device("cpu"))["model"]


def _assert_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name, value in a.items():
        assert torch.equal(value, b[name]), name


@pytest.mark.parametrize("task", sorted(TINY))
def test_run_writes_results_with_the_task_metrics(task, tiny_data, tmp_path):
    preset = TINY[task]
    result = train(preset, "fade", tmp_path, data=tiny_data(task))
    written = json.loads((tmp_path / "results.json").read_text())
    canonical = json.dumps(result, sort_keys=True, separators=(",", ":")).encode()
    assert written.pop("sha256") == hashlib.sha256(canonical).hexdigest()
    assert written == result
    assert result["status"] == "complete"
    assert (result["task"], result["upsampler"], result["seed"], result["steps"]) == (task, "fade", 0, preset.steps)
    assert set(result["metrics"]) == set(create_task(task).metrics)
    assert all(math.isfinite(v) for v in result["metrics"].values())
    assert [h["step"] for h in result["history"]] == list(range(1, preset.steps + 1))
    assert result["final_loss"] == result["history"][-1]["loss"]
    assert result["parameters"]["added"] > 0 and result["parameters"]["total"] > result["parameters"]["added"]
    assert result["test_samples"] == preset.test_length and result["machine"]["cores"] >= 1
    assert load_checkpoint(tmp_path / "checkpoint.pt", torch.device("cpu"))["step"] == preset.steps


def test_bilinear_adds_no_parameters(tiny_data, tmp_path):
    result = train(TINY["reconstruction"], "bilinear", tmp_path, data=tiny_data("reconstruction"))
    assert result["parameters"]["added"] == 0


def test_resume_after_stop_is_bit_identical(tiny_data, tmp_path):
    """SegFormer has dropout: identical weights need the restored random state, not only the weights."""
    preset, data = TINY["segmentation"], tiny_data("segmentation")
    full = train(preset, "fade", tmp_path / "full", data=data)
    stopped = train(preset, "fade", tmp_path / "resumed", data=data, stop_after=3)
    assert stopped["status"] == "stopped" and stopped["step"] == 3
    assert not (tmp_path / "resumed" / "results.json").exists()
    assert load_checkpoint(tmp_path / "resumed" / "checkpoint.pt", torch.device("cpu"))["step"] == 3
    resumed = train(preset, "fade", tmp_path / "resumed", data=data)
    _assert_identical(_weights(tmp_path / "full"), _weights(tmp_path / "resumed"))
    assert resumed["metrics"] == full["metrics"]
    assert resumed["history"] == full["history"]
    assert resumed["curve"] == full["curve"]


@pytest.mark.parametrize("stop_after", [4, 5])
def test_the_learning_curve_is_evaluated_at_80_percent_and_survives_a_resume(stop_after, tiny_data, tmp_path):
    preset, data = TINY["segmentation"], tiny_data("segmentation")  # 6 steps: evaluated after step 5 and 6
    full = train(preset, "fade", tmp_path / "full", data=data)
    assert [point["step"] for point in full["curve"]] == [5, 6]
    assert full["curve"][-1]["metrics"] == full["metrics"] and set(full["curve"][0]["metrics"]) == set(full["metrics"])
    train(preset, "fade", tmp_path / "resumed", data=data, stop_after=stop_after)
    assert train(preset, "fade", tmp_path / "resumed", data=data)["curve"] == full["curve"]


def test_evaluating_mid_run_changes_nothing_in_training(tiny_data, tmp_path, monkeypatch):
    """The early evaluation draws from no generator that training uses (SegFormer has dropout)."""
    preset, data = TINY["segmentation"], tiny_data("segmentation")
    with_curve = train(preset, "fade", tmp_path / "curve", data=data)
    monkeypatch.setattr("fade.train.trainer.CURVE_FRACTION", 0.0)
    without = train(preset, "fade", tmp_path / "plain", data=data)
    assert [point["step"] for point in without["curve"]] == [6]
    _assert_identical(_weights(tmp_path / "curve"), _weights(tmp_path / "plain"))
    assert with_curve["metrics"] == without["metrics"]


def test_another_seed_gives_other_weights(tiny_data, tmp_path):
    """The identity test above can fail: a different seed does change the weights."""
    preset, data = TINY["segmentation"], tiny_data("segmentation")
    train(preset, "fade", tmp_path / "a", data=data, seed=0, stop_after=2)
    train(preset, "fade", tmp_path / "b", data=data, seed=1, stop_after=2)
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_crash_while_writing_a_checkpoint_keeps_the_previous_one(tiny_data, tmp_path, monkeypatch):
    preset, data = TINY["matting"], tiny_data("matting")
    train(preset, "a2u", tmp_path / "full", data=data)

    real_save = torch.save
    calls = []

    def failing_save(obj, f, *args, **kwargs):
        calls.append(obj["step"])
        if len(calls) == 2:
            f.write(b"PK\x03\x04 half a checkpoint")
            raise OSError("disk full")
        real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        train(preset, "a2u", tmp_path / "crashed", data=data)
    monkeypatch.undo()
    assert calls == [2, 4]
    assert sorted(p.name for p in (tmp_path / "crashed").iterdir()) == ["checkpoint.pt"]
    assert load_checkpoint(tmp_path / "crashed" / "checkpoint.pt", torch.device("cpu"))["step"] == 2
    resumed = train(preset, "a2u", tmp_path / "crashed", data=data)
    assert resumed["status"] == "complete"
    _assert_identical(_weights(tmp_path / "full"), _weights(tmp_path / "crashed"))


def test_finished_run_is_returned_without_training(tiny_data, tmp_path, monkeypatch):
    preset, data = TINY["reconstruction"], tiny_data("reconstruction")
    first = train(preset, "nearest", tmp_path, data=data)
    monkeypatch.setattr("fade.train.trainer.build_model", lambda *a, **k: pytest.fail("trained again"))
    assert train(preset, "nearest", tmp_path, data=data) == first


def test_loss_decreases_over_twenty_steps(tiny_data, tmp_path):
    """A real learning signal: the autoencoder's L1 loss falls by more than 40 % in 20 steps."""
    preset = TINY["reconstruction"].replace(steps=20, checkpoint_every=20)
    losses = [h["loss"] for h in train(preset, "bilinear", tmp_path, data=tiny_data("reconstruction"))["history"]]
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.6 * first, losses


def test_same_batches_for_every_upsampler(tiny_data, tmp_path, monkeypatch):
    seen: dict[str, list[torch.Tensor]] = {}
    task = create_task("reconstruction")
    original = type(task).loss

    def spy(self, model, batch):
        seen.setdefault(current, []).append(batch["image"].clone())
        return original(self, model, batch)

    monkeypatch.setattr(type(task), "loss", spy)
    for current in ("bilinear", "carafe"):
        train(TINY["reconstruction"], current, tmp_path / current, data=tiny_data("reconstruction"))
    assert len(seen["bilinear"]) == TINY["reconstruction"].steps
    for a, b in zip(seen["bilinear"], seen["carafe"]):
        assert torch.equal(a, b)


def _no_model(monkeypatch):
    """Fail the test if the run gets as far as building its model."""
    monkeypatch.setattr("fade.train.trainer.build_model", lambda *a, **k: pytest.fail("built the model"))


def _flip(path, position: int) -> None:
    data = bytearray(path.read_bytes())
    data[position] ^= 0x10
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["empty", "truncated", "random", "header bit", "tensor bit", "old format"])
def test_a_damaged_checkpoint_is_refused_before_training(damage, tiny_data, tmp_path, monkeypatch):
    """A bit flipped in a tensor used to load silently and change the results."""
    preset, data = TINY["reconstruction"], tiny_data("reconstruction")
    train(preset, "bilinear", tmp_path, data=data, stop_after=2)
    path = tmp_path / "checkpoint.pt"
    raw = path.read_bytes()
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "truncated":
        path.write_bytes(raw[: len(raw) - 1000])
    elif damage == "random":
        path.write_bytes(os.urandom(len(raw)))
    elif damage == "header bit":
        _flip(path, 30)
    elif damage == "tensor bit":
        weight = max(load_checkpoint(path, torch.device("cpu"))["model"].values(), key=torch.Tensor.numel)
        _flip(path, raw.index(weight.numpy().tobytes()[:64]) + 3)  # a bit of a weight, inside the payload
        payload = path.read_bytes().split(b"\n", 1)[1]
        flipped = max(torch.load(io.BytesIO(payload), weights_only=True)["model"].values(), key=torch.Tensor.numel)
        assert not torch.equal(flipped, weight)  # torch alone would load the altered weights without a word
    else:
        torch.save(load_checkpoint(path, torch.device("cpu")), path)
    _no_model(monkeypatch)
    with pytest.raises(CorruptFileError, match=rf"^{path}: .*; delete it to restart the run from step 0"):
        train(preset, "bilinear", tmp_path, data=data)


def test_a_damaged_results_file_is_refused_and_deleting_it_evaluates_again(tiny_data, tmp_path, monkeypatch):
    preset, data = TINY["reconstruction"], tiny_data("reconstruction")
    first = train(preset, "bilinear", tmp_path, data=data)
    results = tmp_path / "results.json"
    results.write_text(results.read_text().replace('"seed": 0', '"seed": 1', 1))
    with pytest.raises(CorruptFileError, match=rf"^{results}: content does not match its checksum.*; delete it and"):
        train(preset, "bilinear", tmp_path, data=data)
    results.unlink()
    assert train(preset, "bilinear", tmp_path, data=data)["metrics"] == first["metrics"]  # from the final checkpoint


def test_a_folder_held_by_another_process_is_refused_before_training(
    tiny_data, tmp_path, monkeypatch, held_by_another_process
):
    with held_by_another_process(tmp_path, "fade train (first)") as holder:
        _no_model(monkeypatch)
        with pytest.raises(FolderLockedError, match=rf"{tmp_path} is in use by another run \(pid {holder.pid}, host"):
            train(TINY["reconstruction"], "bilinear", tmp_path, data=tiny_data("reconstruction"))
    assert not (tmp_path / "checkpoint.pt").exists()


@pytest.mark.parametrize("where", ["a file", "below a file", "unwritable"])
def test_an_output_folder_that_cannot_be_written_is_refused_before_training(where, tiny_data, tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    out = {"a file": tmp_path / "file", "below a file": tmp_path / "file" / "run", "unwritable": "/sys/fade-run"}[where]
    _no_model(monkeypatch)
    message = rf"out_dir: expected a (writable )?folder, got {out}"
    with pytest.raises((NotADirectoryError, PermissionError), match=message):
        train(TINY["reconstruction"], "bilinear", out, data=tiny_data("reconstruction"))


@pytest.mark.parametrize(
    "options, error, message",
    [
        ({"seed": -1}, ValueError, r"seed: expected an integer in \[0, 4294967295\], got -1"),
        ({"seed": 2**32}, ValueError, r"seed: expected an integer in \[0, 4294967295\], got 4294967296"),
        ({"seed": 1.0}, TypeError, "seed: expected an integer, got float 1.0"),
        ({"seed": True}, TypeError, "seed: expected an integer, got bool True"),
        ({"threads": 0}, ValueError, r"threads: expected an integer in \[1, 1024\], got 0"),
        ({"threads": 10**7}, ValueError, r"threads: expected an integer in \[1, 1024\], got 10000000"),
        ({"stop_after": 0}, ValueError, "stop_after: expected an integer >= 1, got 0"),
    ],
)
def test_bad_run_arguments_are_refused_before_the_folder_is_touched(options, error, message, tmp_path):
    with pytest.raises(error, match=message):
        train(TINY["reconstruction"], "bilinear", tmp_path / "run", **options)
    assert not (tmp_path / "run").exists()


def test_a_checkpoint_that_verifies_but_holds_no_training_state_is_refused(tmp_path):
    """The checksum proves the bytes are as written, not that fade wrote a checkpoint: a pickle with code
    or a bare tensor behind a valid header is refused too, and nothing in it is run."""
    from fade.io import write_checked_bytes

    buffer = io.BytesIO()
    torch.save(torch.ones(2), buffer)
    write_checked_bytes(tmp_path / "tensor.pt", buffer.getvalue())
    with pytest.raises(CorruptFileError, match=r"tensor\.pt: expected a checkpoint dict, got Tensor"):
        load_checkpoint(tmp_path / "tensor.pt", torch.device("cpu"))
    write_checked_bytes(tmp_path / "code.pt", pickle.dumps(os.system, protocol=2))  # unpickled freely: runs commands
    with pytest.raises(CorruptFileError, match=r"code\.pt: expected a torch checkpoint inside, got one torch cannot"):
        load_checkpoint(tmp_path / "code.pt", torch.device("cpu"))


def test_a_preset_or_folder_of_the_wrong_type_is_a_type_error(tmp_path):
    """Not an AttributeError or pathlib's TypeError from deep inside the run."""
    from fade.train.compare import compare

    preset = TINY["reconstruction"]
    with pytest.raises(TypeError, match=r"preset: expected a fade.train.Preset \(get_preset\(task, name\)\), got None"):
        train(None, "nearest", tmp_path)
    with pytest.raises(TypeError, match=r"out_dir: expected a folder path \(str or os.PathLike\), got NoneType"):
        train(preset, "nearest", None)
    with pytest.raises(TypeError, match="preset: expected a fade.train.Preset"):
        compare({"task": "reconstruction"}, ["nearest"], [0], tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("upsampler", ["fade", "carafe", "a2u"])
def test_bf16_autocast_trains_the_kernel_upsamplers(upsampler, tiny_data, tmp_path):
    """--amp bf16 with an upsampler that reassembles: its conv predicts bf16 kernels for a float32
    feature (carafe failed with a dtype mismatch under autocast); two steps give finite losses."""
    preset = TINY["reconstruction"].replace(steps=2)
    result = train(preset, upsampler, tmp_path, data=tiny_data("reconstruction"), amp="bf16", threads=1)
    assert result["status"] == "complete" and result["config"]["amp"] == "bf16"
    assert result["history"] and all(math.isfinite(h["loss"]) for h in result["history"])


def test_results_name_the_pretrained_encoder_the_run_started_from(tiny_data, tmp_path, monkeypatch):
    """A run from the shared pretrained encoder records its name and weights hash (None without one)."""
    from dataclasses import replace

    from fade.models.pretrained_encoder import RECIPES, load_pretrained_encoder

    from ..models.test_pretrained_encoder import TINY as TINY_RECIPE

    monkeypatch.setitem(RECIPES, "tiny", TINY_RECIPE)
    monkeypatch.setenv("FADE_CACHE_DIR", str(tmp_path / "cache"))
    preset = TINY["segmentation"]
    pretrained = replace(
        preset,
        model="segformer_tiny_pretrained",
        model_options={**preset.model_options, "encoder_weights": "tiny"},
        steps=2,
    )
    result = train(pretrained, "bilinear", tmp_path / "run", data=tiny_data("segmentation"))
    _, record = load_pretrained_encoder("tiny")
    assert result["pretrained_encoder"] == {"name": "tiny", "weights_sha256": record["weights_sha256"]}
    plain = train(replace(preset, steps=2), "bilinear", tmp_path / "plain", data=tiny_data("segmentation"))
    assert plain["pretrained_encoder"] is None
