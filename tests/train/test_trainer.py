import hashlib
import json
import math

import pytest
import torch

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
    assert written.pop("sha256") == hashlib.sha256(json.dumps(result, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
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
