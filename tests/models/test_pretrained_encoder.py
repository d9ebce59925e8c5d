import pytest
import torch

from fade.io import CorruptFileError
from fade.models import create_model
from fade.models.pretrained_encoder import RECIPES, artifact_paths, load_pretrained_encoder

TINY = {
    "task": "a two-step recipe for tests",
    "size": (32, 32),
    "data_seed": 7,
    "train_length": 4,
    "test_length": 2,
    "steps": 2,
    "batch_size": 2,
    "lr": 1e-3,
    "weight_decay": 0.01,
    "seed": 3,
}


@pytest.fixture
def tiny_recipe(monkeypatch):
    monkeypatch.setitem(RECIPES, "tiny", TINY)


def test_built_once_cached_checksummed_and_reproducible(tiny_recipe, tmp_path):
    torch.manual_seed(11)
    expected_next = torch.rand(3)
    torch.manual_seed(11)
    messages = []
    state, record = load_pretrained_encoder("tiny", tmp_path / "a", log=messages.append)
    assert torch.equal(torch.rand(3), expected_next), "building must not touch the caller's random stream"
    weights, record_path = artifact_paths("tiny", tmp_path / "a")
    assert weights.exists() and record_path.exists() and any("pretraining" in m for m in messages)
    assert record["recipe"]["steps"] == 2 and len(record["weights_sha256"]) == 64
    assert 0.0 <= record["probe_test_miou"] <= 1.0 and "python -m fade.models.pretrain" in record["command"]
    built, said = weights.stat().st_mtime_ns, len(messages)
    again, _ = load_pretrained_encoder("tiny", tmp_path / "a", log=messages.append)
    assert weights.stat().st_mtime_ns == built and len(messages) == said  # no second build
    other, other_record = load_pretrained_encoder("tiny", tmp_path / "b", log=lambda m: None)
    assert other_record["weights_sha256"] == record["weights_sha256"]
    for name, tensor in state.items():
        assert torch.equal(again[name], tensor) and torch.equal(other[name], tensor), name
    untrained = create_model("segformer_tiny", "bilinear", num_classes=2).encoder.state_dict()
    assert any(not torch.equal(untrained[k], v) for k, v in state.items())


def test_another_recipe_gets_another_file_and_damage_is_refused(tiny_recipe, monkeypatch, tmp_path):
    weights, _ = artifact_paths("tiny", tmp_path)
    monkeypatch.setitem(RECIPES, "tiny", {**TINY, "steps": 3})
    assert artifact_paths("tiny", tmp_path)[0] != weights
    monkeypatch.setitem(RECIPES, "tiny", TINY)
    load_pretrained_encoder("tiny", tmp_path, log=lambda m: None)
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match="python -m fade.models.pretrain --name tiny --force"):
        load_pretrained_encoder("tiny", tmp_path)


def test_model_loads_the_encoder_and_meta_loads_nothing(tiny_recipe, monkeypatch, tmp_path):
    monkeypatch.setenv("FADE_CACHE_DIR", str(tmp_path))
    meta = create_model("segformer_tiny_pretrained", "fade", encoder_weights="tiny", num_classes=6, device="meta")
    assert not (tmp_path / "pretrained").exists() and not hasattr(meta, "pretrained_encoder")
    model = create_model("segformer_tiny_pretrained", "fade", encoder_weights="tiny", num_classes=6)
    state, record = load_pretrained_encoder("tiny")
    assert model.pretrained_encoder["weights_sha256"] == record["weights_sha256"]
    for name, tensor in model.encoder.state_dict().items():
        assert torch.equal(tensor, state[name]), name
    with pytest.raises(ValueError, match="encoder_weights: expected one of"):
        create_model("segformer_tiny_pretrained", "fade", encoder_weights="imagenet")
