import math
from pathlib import Path

import pytest
import torch
from torch import nn

from fade.io import atomic_write
from fade.train import (
    PRESETS,
    MattingTask,
    Schedule,
    SegmentationTask,
    build_optimizer,
    create_data,
    create_task,
    get_preset,
    list_presets,
    register_data,
)
from fade.train.data import CachedDataset, StepBatchSampler, batch_indices
from fade.train.optim import set_learning_rate

from .conftest import TINY


def test_poly_schedule_with_mmcv_linear_warmup():
    s = Schedule("poly", total_steps=100, warmup_steps=10, warmup_ratio=0.1, power=1.0)
    assert s.factor(0) == pytest.approx(1.0 * 0.1)
    assert s.factor(5) == pytest.approx(0.95 * (1 - 0.5 * 0.9))
    assert s.factor(10) == pytest.approx(0.9)
    assert s.factor(100) == 0.0


def test_cosine_and_step_schedules():
    cosine = Schedule("cosine", total_steps=10, min_ratio=0.1)
    assert cosine.factor(0) == pytest.approx(1.0)
    assert cosine.factor(5) == pytest.approx(0.55)
    assert cosine.factor(10) == pytest.approx(0.1)
    step = Schedule("step", total_steps=30, milestones=(20 / 30, 26 / 30), gamma=0.1)
    assert [step.factor(t) for t in (0, 19, 20, 25, 26, 29)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"kind": "linear", "total_steps": 10}, "expected one of constant, poly, cosine, step, got 'linear'"),
        ({"kind": "poly", "total_steps": 0}, "expected total_steps >= 1"),
        ({"kind": "step", "total_steps": 10, "milestones": (1.5,)}, r"expected fractions of the run in \(0, 1\)"),
    ],
)
def test_schedule_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Schedule(**kwargs)


def test_optimizer_groups_by_prefix_multiplier_and_no_decay():
    model = nn.Sequential()
    model.add_module("backbone", nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2)))
    model.add_module("head", nn.Linear(2, 2))
    named = dict(model.named_parameters())
    opt = build_optimizer(model, "adamw", 0.1, 0.01, lr_mult=(("head.", 10.0),), no_decay=("backbone.1",))
    groups = {(g["lr_mult"], g["weight_decay"]): {id(p) for p in g["params"]} for g in opt.param_groups}
    assert groups == {
        (1.0, 0.01): {id(named["backbone.0.weight"]), id(named["backbone.0.bias"])},
        (1.0, 0.0): {id(named["backbone.1.weight"]), id(named["backbone.1.bias"])},
        (10.0, 0.01): {id(named["head.weight"]), id(named["head.bias"])},
    }
    set_learning_rate(opt, 0.1, 0.5)
    assert sorted(g["lr"] for g in opt.param_groups) == pytest.approx([0.05, 0.05, 0.5])
    with pytest.raises(ValueError, match="optimizer: expected one of adam, adamw, got 'sgd'"):
        build_optimizer(model, "sgd", 0.1)


def test_batches_are_epochs_of_permutations_and_resumable():
    batches = [batch_indices(10, 3, seed=4, step=t) for t in range(6)]
    assert all(len(b) == 3 for b in batches)
    for epoch in (batches[:3], batches[3:]):
        flat = [i for b in epoch for i in b]
        assert len(set(flat)) == 9 and set(flat) <= set(range(10))
    assert batches[:3] != batches[3:]
    assert list(StepBatchSampler(10, 3, 4, start=2, stop=6)) == batches[2:]
    assert batch_indices(10, 3, seed=5, step=0) != batches[0]
    with pytest.raises(ValueError, match=r"batch_size: expected 1..10 \(the training set size\), got 11"):
        batch_indices(10, 11, 0, 0)


def test_atomic_write_failure_keeps_the_old_file(tmp_path):
    path = tmp_path / "file.bin"
    atomic_write(path, lambda f: f.write(b"old"))

    def half(f):
        f.write(b"new but only ha")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        atomic_write(path, half)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def test_cached_dataset_holds_the_same_samples(tiny_data):
    train_set, _ = tiny_data("matting")
    source = create_data("composite_matting", "train", (32, 32), 8, alpha_gain=2.0)
    assert isinstance(train_set, CachedDataset) and set(train_set[0]) == set(MattingTask.keys)
    for key in MattingTask.keys:
        assert torch.equal(train_set[5][key], source[5][key])
    with pytest.raises(ValueError, match=r"keys: expected keys of the samples .*got \['nope'\]"):
        CachedDataset(source, ("alpha", "nope"))


def test_segmentation_loss_resizes_logits_and_ignores_255():
    logits = torch.randn(2, 3, 4, 4)
    label = torch.randint(0, 3, (2, 8, 8))
    label[0, :2] = 255
    model = nn.Conv2d(1, 1, 1)
    model.forward = lambda x: logits
    batch = {"image": torch.zeros(2, 3, 8, 8), "label": label}
    up = nn.functional.interpolate(logits, size=(8, 8), mode="bilinear", align_corners=False)
    logp = up.log_softmax(1).permute(0, 2, 3, 1)[label != 255]
    expected = -logp[torch.arange(len(logp)), label[label != 255]].mean()
    assert SegmentationTask().loss(model, batch).item() == pytest.approx(expected.item(), rel=1e-6)


def test_matting_loss_is_the_authors_on_a_hand_example():
    """One image, 2 unknown pixels: alpha errors 0.5 and 0.25, fg - bg = (1, 0, 0.5)."""
    pred = torch.tensor([[[[0.5, 0.0], [0.75, 0.3]]]])
    alpha = torch.tensor([[[[0.0, 0.0], [0.5, 0.9]]]])
    trimap = torch.tensor([[[[128, 0], [128, 255]]]], dtype=torch.uint8)
    fg, bg = torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)
    fg[:, 0], fg[:, 2] = 1.0, 0.5
    model = nn.Conv2d(1, 1, 1)
    model.forward = lambda x: pred
    batch = {"input": torch.zeros(1, 4, 2, 2), "alpha": alpha, "trimap": trimap, "fg": fg, "bg": bg}
    alpha_loss = (0.5 + 0.25) / 3
    composition_loss = (0.5 * 1 + 0.5 * 0.5 + 0.25 * 1 + 0.25 * 0.5) / 3
    loss = MattingTask(eps=1e-9).loss(model, batch).item()
    assert loss == pytest.approx(0.5 * alpha_loss + 0.5 * composition_loss, rel=1e-6)


def test_presets_and_their_validation():
    assert list_presets("matting") == ["cpu", "paper", "quick"]
    assert "segmentation/segnet" in list_presets()
    paper = get_preset("segmentation", "paper")
    assert (paper.model, paper.lr, paper.batch_size, paper.steps, paper.size) == (
        "segformer_b1",
        6e-5,
        16,
        160_000,
        (512, 512),
    )
    assert paper.lr_schedule().warmup_steps == 1500
    matting = get_preset("matting", "paper").lr_schedule()
    assert matting.factor(119_999) == 1.0 and matting.factor(120_000) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="preset: expected one of cpu, paper, quick for task 'matting', got 'big'"):
        get_preset("matting", "big")
    with pytest.raises(ValueError, match="batch_size: expected an integer >= 1, got 0"):
        TINY["matting"].replace(batch_size=0)
    with pytest.raises(ValueError, match="task: expected one of segmentation, matting, reconstruction, got 'depth'"):
        TINY["matting"].replace(task="depth")
    with pytest.raises(ValueError, match=r"warmup: expected a fraction of the steps in \[0, 1\), got 2"):
        TINY["matting"].replace(warmup=2)



@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"lr": "x"}, TypeError, "lr: expected a finite number, got str 'x'"),
        ({"lr": 0.0}, ValueError, "lr: expected a finite number > 0, got 0.0"),
        ({"lr": math.inf}, ValueError, "lr: expected a finite number > 0, got inf"),
        ({"weight_decay": math.inf}, ValueError, "weight_decay: expected a finite number >= 0, got inf"),
        ({"weight_decay": -1.0}, ValueError, "weight_decay: expected a finite number >= 0, got -1.0"),
        ({"gamma": math.nan}, ValueError, "gamma: expected a finite number >= 0, got nan"),
        ({"warmup": None}, TypeError, "warmup: expected a finite number, got NoneType None"),
        ({"num_workers": -1}, ValueError, "num_workers: expected an integer >= 0, got -1"),
        ({"size": (8.5, 8)}, ValueError, r"size: expected \(H, W\) of positive integers, got \(8.5, 8\)"),
        ({"size": 8}, ValueError, r"size: expected \(H, W\) of positive integers, got 8"),
        ({"steps": 10**30}, ValueError, r"steps: expected an integer in \[1, 1,000,000,000\], got 1,000,0"),
    ],
)
def test_a_preset_with_a_hostile_number_is_refused(change, error, message):
    """Every number a run reads is checked when the preset is made (inf weight decay, -1 workers ran)."""
    with pytest.raises(error, match=message):
        TINY["matting"].replace(**change)

def test_unregistered_data_names_the_way_out():
    with pytest.raises(ValueError, match="got 'voc2012'; other datasets: register a loader with fade.train.register"):
        create_data("voc2012", "train", (512, 512), None)
    with pytest.raises(ValueError, match=r"data_dir: the ade20k data source reads a folder .*; pass --data-dir"):
        create_data("ade20k", "train", (512, 512), None)
    with pytest.raises(ValueError, match=r"size: Fashion-MNIST images are \(28, 28\), got \(32, 32\)"):
        create_data("fashion_mnist", "train", (32, 32), None)



@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: create_data("shapes", "train", (64, 64), 0), ValueError, "length: expected None or an integer >= 1"),
        (lambda: create_data("fashion_mnist", "train", (28, 28), 2.5), TypeError, "length: expected None or an"),
        (lambda: create_data(["shapes"], "train", (64, 64), 4), ValueError, r"data: expected a registered source"),
        (lambda: register_data(None), TypeError, "name: expected a non-empty str, got NoneType None"),
        (lambda: MattingTask(alpha_weight="x"), TypeError, "alpha_weight: expected a number, got str 'x'"),
        (lambda: MattingTask(eps=math.inf), ValueError, r"alpha_weight, eps: expected a weight in \[0, 1\] and eps"),
    ],
)
def test_data_sources_check_their_length_and_names(call, error, message):
    """length 0 silently meant the default 10,000 samples and 2.5 passed; a None name registered."""
    with pytest.raises(error, match=message):
        call()

def test_schedule_factor_is_finite_everywhere():
    for kind in ("constant", "poly", "cosine", "step"):
        s = Schedule(kind, total_steps=7, warmup_steps=3, milestones=(0.5,))
        assert all(math.isfinite(s.factor(t)) and s.factor(t) >= 0 for t in range(9))


def test_every_preset_is_documented():
    docs = (Path(__file__).parents[2] / "docs" / "experiments.md").read_text()
    missing = [f"{task}/{name}" for task, name in PRESETS if f"`{task}/{name}`" not in docs]
    assert not missing


def test_a_run_is_identified_by_its_own_upsampler_options_only():
    from fade.train.trainer import run_config

    preset = TINY["segmentation"].replace(upsampler_options={"fade": {"compressed_channels": 8}})
    more = preset.replace(upsampler_options={"fade": {"compressed_channels": 8}, "carafe": {"compressed_channels": 2}})
    assert run_config(preset, "fade", 0) == run_config(more, "fade", 0)
    assert run_config(more, "fade", 0)["preset"]["upsampler_options"] == {"fade": {"compressed_channels": 8}}
    assert run_config(more, "bilinear", 0)["preset"]["upsampler_options"] == {}
    wider = preset.replace(upsampler_options={"fade": {"compressed_channels": 16}})
    assert run_config(preset, "fade", 0) != run_config(wider, "fade", 0)


def test_each_shipped_source_declares_the_options_its_dataset_takes():
    """The options create_data accepts are the dataset's keyword arguments less those the source sets itself."""
    import inspect

    from fade.data import CompositeMatting, CompositeSegmentation, FashionMNIST
    from fade.data.ade20k import ADE20K
    from fade.data.adobe_matting import AdobeMattingTrain
    from fade.data.matting_synth import HairMatting
    from fade.data.shapes import ShapeSegmentation
    from fade.train.data import _DATA

    def keywords(cls, *fixed):
        return {p for p in inspect.signature(cls).parameters if p not in {"split", "size", "length", *fixed}}

    expected = {
        "composite_segmentation": keywords(CompositeSegmentation),
        "composite_matting": keywords(CompositeMatting),
        "shapes": keywords(ShapeSegmentation),
        "hair_matting": keywords(HairMatting),
        "fashion_mnist": keywords(FashionMNIST, "normalize"),
        "ade20k": keywords(ADE20K, "crop_size", "scale"),
        "composition1k": keywords(AdobeMattingTrain, "crop_size"),
    }
    assert {name: set(_DATA[name][1]) for name in expected} == expected


@pytest.mark.parametrize(
    ("source", "options", "message"),
    [
        ("shapes", {"root": "/data"}, r"the 'shapes' data source takes binary, .*, got root; it reads no folder, so drop"),
        ("hair_matting", {"num_objects": (2, 4)}, r"the 'hair_matting' data source takes radius, .*, got num_objects$"),
        ("fashion_mnist", {"binary": True, "root": None}, r"the 'fashion_mnist' data source takes root, got binary$"),
    ],
)
def test_a_data_option_the_source_does_not_take_is_a_value_error_naming_both(source, options, message):
    """Was a TypeError from deep inside the dataset (a traceback under fade train --data-dir or --data)."""
    with pytest.raises(ValueError, match=f"^data_options: {message}"):
        create_data(source, "train", (64, 64), 4, **options)


def test_a_source_registered_without_options_takes_any(monkeypatch):
    from fade.train import data

    monkeypatch.setattr(data, "_DATA", dict(data._DATA))  # the registration ends with the test

    @register_data("test_any_options")
    def _any(split, size, length, **options):
        return [options]

    assert create_data("test_any_options", "train", (8, 8), 1, colour="red") == [{"colour": "red"}]


def test_a_task_option_the_task_does_not_take_names_the_ones_it_takes():
    with pytest.raises(TypeError, match=r"^task_options: the 'matting' task takes alpha_weight, eps, got foo, zoo$"):
        create_task("matting", zoo=1, foo=2)
    with pytest.raises(TypeError, match=r"^task_options: the 'segmentation' task takes none, got loss$"):
        create_task("segmentation", loss="l1")
    assert create_task("reconstruction", loss="mse").loss_name == "mse"
