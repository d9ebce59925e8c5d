"""Training presets: every setting of a run in one frozen dataclass, by (task, name).

Per task: ``quick`` (seconds per upsampler: the smoke comparison of ``fade compare --quick``),
``cpu`` (minutes per upsampler on 2 CPU cores: the comparison in docs/experiments.md) and ``paper``
(the authors' hyper-parameters at full size, for a GPU and the real dataset, see
docs/experiments.md for the data and weights they need). ``segmentation/segnet`` is the
SegNet of the paper's Table 2 on the composite segmentation data.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

from .optim import OPTIMIZERS, Schedule

__all__ = ["PRESETS", "STEPS_MAX", "TASKS", "Preset", "get_preset", "list_presets"]

TASKS = ("segmentation", "matting", "reconstruction")
"""Task names (:mod:`fade.train.tasks`)."""
STEPS_MAX = 10**9
"""The most training steps a preset may ask for (the paper's longest run is 180,000)."""


@dataclass(frozen=True)
class Preset:
    """Everything that defines a training run except the upsampler, the seed and the device.

    Args:
        task: one of :data:`TASKS`. name: the preset's name. description: one line.
        model: a :func:`fade.models.create_model` name; model_options: its keyword arguments.
        upsampler_options: per upsampler name, the ``upsampler_options`` the model passes to it.
        data: a :func:`fade.train.data.create_data` source; data_options: its keyword arguments.
        size: (H, W) of training and test samples.
        train_length, test_length: samples of each split (None: the whole split).
        cache: render every sample once and hold them in memory (small sets only).
        batch_size, steps: optimisation steps of ``batch_size`` samples.
        optimizer, lr, weight_decay, betas, lr_mult, no_decay: see :func:`fade.train.optim.build_optimizer`.
        schedule, warmup, warmup_ratio, power, milestones, gamma: see
            :class:`fade.train.optim.Schedule`; ``warmup`` and ``milestones`` are fractions of ``steps``.
        task_options: keyword arguments of the task (its loss).
        freeze_bn: keep BatchNorm layers in eval mode while training (the A2U code's ``freeze_bn``).
        eval_batch_size: batch of the evaluation. checkpoint_every, log_every: in steps.
        num_workers: DataLoader worker processes.
        needs: what a run of this preset needs beyond this package (data, pretrained weights).
    """

    task: str
    name: str
    description: str
    model: str
    data: str
    size: tuple[int, int]
    batch_size: int
    steps: int
    lr: float
    model_options: dict = field(default_factory=dict)
    upsampler_options: dict = field(default_factory=dict)
    data_options: dict = field(default_factory=dict)
    train_length: int | None = None
    test_length: int | None = None
    cache: bool = True
    optimizer: str = "adamw"
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    lr_mult: tuple[tuple[str, float], ...] = ()
    no_decay: tuple[str, ...] = ()
    schedule: str = "poly"
    warmup: float = 0.0
    warmup_ratio: float = 1e-6
    power: float = 1.0
    milestones: tuple[float, ...] = ()
    gamma: float = 0.1
    task_options: dict = field(default_factory=dict)
    freeze_bn: bool = False
    eval_batch_size: int = 16
    checkpoint_every: int = 100
    log_every: int = 10
    num_workers: int = 0
    needs: str = "nothing beyond this package and the Fashion-MNIST files"

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task: expected one of {', '.join(TASKS)}, got {self.task!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer: expected one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        for name in ("batch_size", "steps", "eval_batch_size", "checkpoint_every", "log_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
        if self.steps > STEPS_MAX:
            raise ValueError(f"steps: expected an integer in [1, {STEPS_MAX:,}], got {self.steps:,}")
        sides = self.size if isinstance(self.size, (tuple, list)) else ()
        if len(sides) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in sides):
            raise ValueError(f"size: expected (H, W) of positive integers, got {self.size!r}")
        if isinstance(self.num_workers, bool) or not isinstance(self.num_workers, int) or self.num_workers < 0:
            raise ValueError(f"num_workers: expected an integer >= 0, got {self.num_workers!r}")
        for name in ("lr", "weight_decay", "warmup", "warmup_ratio", "power", "gamma"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name}: expected a finite number, got {type(value).__name__} {value!r}")
            if not math.isfinite(value) or value < 0 or (name == "lr" and value == 0):
                raise ValueError(f"{name}: expected a finite number {'> 0' if name == 'lr' else '>= 0'}, got {value!r}")
        if not 0.0 <= self.warmup < 1.0:
            raise ValueError(f"warmup: expected a fraction of the steps in [0, 1), got {self.warmup!r}")
        for name in ("train_length", "test_length"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name}: expected None or an integer >= 1, got {value!r}")
        self.lr_schedule()

    def lr_schedule(self) -> Schedule:
        """The learning-rate schedule of a run of this preset."""
        return Schedule(
            self.schedule,
            self.steps,
            round(self.warmup * self.steps),
            self.warmup_ratio,
            self.power,
            0.0,
            self.milestones,
            self.gamma,
        )

    def replace(self, **changes) -> Preset:
        """A copy with ``changes`` applied (and checked)."""
        return replace(self, **changes)

    def to_dict(self) -> dict:
        """The preset as plain JSON-able data."""
        return asdict(self)


_BACKGROUNDS = "scikit-image (backgrounds)"
_SHAPES = f"{_BACKGROUNDS}; the shared encoder is pretrained once on first use (~2 min, cached)"
_PHOTOS = "scikit-image (foregrounds and backgrounds)"
_SHAPE_CLASSES = 6
_MULTI_CLASS = {"num_objects": (2, 4)}
_BINARY = {"binary": True, "num_objects": (2, 4), "area": (0.1, 0.3)}

# The paper's budget: its upsamplers add about 2 % to SegFormer-B1 (C = 256, d = 64) and at most
# 3 % apart from IndexNet. Here the upsamplers of every CPU network add at most 10 % of its
# parameters (tests/train/test_budget.py): widths follow d = C / 4 where that fits (FADE), SAPA's
# embedding C / 4, and CARAFE, whose content encoder has (s K)^2 = 100 outputs per compressed
# channel, gets what the budget leaves. IndexNet (M2O DIN) costs 16 C^2 per stage at its smallest
# (linear, no context), more than a 3x3 conv: it cannot fit any of these networks (its budget row is
# the documented exception); indexnet_holistic (HIN, linear) does.
FADE_ABLATIONS = ("encoder_kernels", "naive_kernels", "semi_shift", "semi_shift_skip")
"""The kernel-source and fusion variants of the paper's Tables 1 and 4 that share FADE's layers."""


def _budget(carafe: int, fade: int, **options: dict) -> dict[str, dict]:
    """Per-upsampler options of a CPU network: CARAFE (and CARAFE + gate) compressed to ``carafe``
    channels, FADE and its ablation variants to ``fade``, IndexNet at its smallest; ``options`` add others."""
    return {
        "carafe": {"compressed_channels": carafe},
        "carafe_gate": {"compressed_channels": carafe},
        **{name: {"compressed_channels": fade} for name in ("fade", *FADE_ABLATIONS)},
        "indexnet": {"nonlinear": False, "context": False},
        "indexnet_holistic": {"nonlinear": False},
        **options,
    }


_BUDGET_SEGFORMER_TINY = _budget(2, 8, sapa={"embedding_dim": 8})  # head width C = 32, 6 upsamplers
_BUDGET_SEGNET = _budget(8, 16, sapa={"embedding_dim": 16})  # C = 16, 32, 64, 128
_BUDGET_SMALL = _budget(1, 4, sapa={"embedding_dim": 4}, a2u={"down_kernel_size": 4})
"""a2u_matting_tiny (C = 8, 8, 16, 32) and the autoencoder (C = 16, 32)."""
_FINE_TUNE = {"optimizer": "adamw", "weight_decay": 0.01, "lr_mult": (("head.", 10.0),), "warmup": 0.05}
"""The paper's SegFormer recipe at CPU scale: AdamW, the head at 10 x the encoder's learning rate."""

# The fields that presets share, per family; each preset below states only what differs.
_SHAPES_64 = {
    "task": "segmentation",
    "data": "shapes",
    "size": (64, 64),
    "train_length": 4000,
    "test_length": 400,
    "batch_size": 8,
    "checkpoint_every": 500,
    "log_every": 25,
}
"""Segmentation of 64x64 shapes on the CPU."""
_SEGFORMER_TINY = {**_SHAPES_64, "upsampler_options": _BUDGET_SEGFORMER_TINY}
"""SegFormer-tiny's upsampler budget on those shapes."""
_SEGFORMER_PRETRAINED = {
    **_SEGFORMER_TINY,
    "model": "segformer_tiny_pretrained",
    "lr": 1e-3,
    **_FINE_TUNE,
    "needs": _SHAPES,
}
"""The pretrained SegFormer-tiny fine-tuned by the paper's recipe on those shapes."""
_HAIR_MATTING = {
    "task": "matting",
    "model": "a2u_matting_tiny",
    "model_options": {"act_layer": "elu"},
    "upsampler_options": _BUDGET_SMALL,
    "data": "hair_matting",
    "size": (64, 64),
    "batch_size": 8,
    "lr": 3e-3,
    "optimizer": "adam",
    "needs": _PHOTOS,
}
"""A2U-tiny on 64x64 hair matting on the CPU."""
_FASHION_MNIST = {
    "task": "reconstruction",
    "model": "autoencoder",
    "data": "fashion_mnist",
    "size": (28, 28),
    "optimizer": "adam",
}
"""The autoencoder on Fashion-MNIST 28x28."""
_FASHION_MNIST_CPU = {
    **_FASHION_MNIST,
    "upsampler_options": _BUDGET_SMALL,
    "batch_size": 32,
    "lr": 3e-3,
    "eval_batch_size": 100,
}
"""The autoencoder at CPU scale, within the upsampler budget."""


def _preset(shared: dict, **fields) -> Preset:
    """The preset of the ``shared`` fields with ``fields`` added to or replacing them."""
    return Preset(**{**shared, **fields})


_PRESET_LIST = [
    _preset(
        _SEGFORMER_PRETRAINED,
        name="quick",
        description="SegFormer-tiny, pretrained encoder, 6-label shapes 64x64, 1200 steps (smoke comparison)",
        model_options={"num_classes": _SHAPE_CLASSES},
        data_options=_MULTI_CLASS,
        train_length=1000,
        test_length=100,
        steps=1200,
        checkpoint_every=200,
        log_every=20,
    ),
    _preset(
        _SEGFORMER_PRETRAINED,
        name="cpu",
        description="SegFormer-tiny, pretrained encoder, 6-label shapes 64x64, 9000 steps",
        model_options={"num_classes": _SHAPE_CLASSES},
        data_options=_MULTI_CLASS,
        steps=9000,
    ),
    _preset(
        _SEGFORMER_PRETRAINED,
        name="binary",
        description="SegFormer-tiny, pretrained encoder, object vs background shapes 64x64, 2000 steps",
        model_options={"num_classes": 2},
        data_options=_BINARY,
        steps=2000,
    ),
    _preset(
        _SEGFORMER_TINY,
        name="scratch",
        description="SegFormer-tiny from scratch, 6-label shapes 64x64, 2000 steps (what the pretrained encoder buys)",
        model="segformer_tiny",
        model_options={"num_classes": _SHAPE_CLASSES},
        data_options=_MULTI_CLASS,
        steps=2000,
        lr=3e-3,
        optimizer="adamw",
        weight_decay=0.01,
        warmup=0.05,
        needs=_BACKGROUNDS,
    ),
    _preset(
        _SHAPES_64,
        name="segnet",
        description="SegNet (paper Table 2) from scratch, object vs background shapes 64x64, 2000 steps",
        model="segnet",
        model_options={"num_classes": 2},
        upsampler_options=_BUDGET_SEGNET,
        data_options=_BINARY,
        steps=2000,
        lr=1e-3,
        optimizer="adam",
        needs=_BACKGROUNDS,
    ),
    Preset(
        task="segmentation",
        name="paper",
        description="SegFormer-B1 on ADE20K: the authors' mmseg schedule (AdamW 6e-5, head x10, poly, 160k x 16, 512 crops)",
        model="segformer_b1",
        model_options={"num_classes": 150},
        data="ade20k",
        size=(512, 512),
        cache=False,
        batch_size=16,
        steps=160_000,
        lr=6e-5,
        weight_decay=0.01,
        lr_mult=(("head.", 10.0),),
        no_decay=("norm",),
        warmup=1500 / 160_000,
        warmup_ratio=1e-6,
        eval_batch_size=1,
        checkpoint_every=4000,
        log_every=50,
        num_workers=8,
        needs="ADE20K (--data-dir: ADEChallengeData2016 or its parent), ImageNet-pretrained MiT-B1 weights "
        "(--init mit_b1.pth, mmseg or Hugging Face format), numpy and Pillow; a GPU (README: Table 3)",
    ),
    _preset(
        _HAIR_MATTING,
        name="quick",
        description="A2U-tiny on 64x64 hair matting (Composition-1K-like), 400 steps (smoke comparison)",
        train_length=600,
        test_length=64,
        steps=400,
        checkpoint_every=100,
    ),
    _preset(
        _HAIR_MATTING,
        name="cpu",
        description="A2U-tiny on 64x64 hair matting (Composition-1K-like), 1500 steps",
        train_length=2000,
        test_length=200,
        steps=1500,
        checkpoint_every=250,
        log_every=25,
    ),
    Preset(
        task="matting",
        name="paper",
        description="A2U-R34 on Composition-1K: the A2U/FADE code's schedule (Adam 0.01, backbone /100, 30 x 6000 "
        "steps of 16, 512 crops, x0.1 at epochs 20 and 26, frozen BN)",
        model="a2u_matting",
        upsampler_options={"indexnet": {"expansion": 2}},
        data="composition1k",
        size=(512, 512),
        cache=False,
        batch_size=16,
        steps=180_000,
        lr=0.01,
        optimizer="adam",
        lr_mult=tuple((p, 0.01) for p in ("stem.", "stage1.", "stage2_first.", "stage2.", "stage3_first.", "stage3.")),
        schedule="step",
        milestones=(20 / 30, 26 / 30),
        gamma=0.1,
        freeze_bn=True,
        eval_batch_size=1,
        checkpoint_every=6000,
        log_every=50,
        num_workers=8,
        needs="Adobe Image Matting with Composition-1K and MS-COCO train2014 backgrounds (--data-dir: "
        "Combined_Dataset or its parent), ImageNet-pretrained ResNet-34 weights (--init, torchvision or the A2U "
        "code's file), numpy and Pillow; a GPU (README: Table 3)",
    ),
    _preset(
        _FASHION_MNIST_CPU,
        name="quick",
        description="Autoencoder on Fashion-MNIST 28x28 (paper Table 1 toy), 200 steps (smoke comparison)",
        train_length=6000,
        test_length=500,
        steps=200,
        checkpoint_every=100,
    ),
    _preset(
        _FASHION_MNIST_CPU,
        name="cpu",
        description="Autoencoder on Fashion-MNIST 28x28 (paper Table 1 toy), 1000 steps",
        test_length=2000,
        steps=1000,
        checkpoint_every=250,
        log_every=25,
    ),
    _preset(
        _FASHION_MNIST,
        name="paper",
        description="Autoencoder on all of Fashion-MNIST, 20 epochs (the paper does not publish its Table 1 schedule)",
        batch_size=64,
        steps=18_750,
        lr=1e-3,
        schedule="cosine",
        checkpoint_every=1000,
        log_every=100,
        eval_batch_size=500,
    ),
]

PRESETS: dict[tuple[str, str], Preset] = {(p.task, p.name): p for p in _PRESET_LIST}
"""Every preset by (task, name)."""


def list_presets(task: str | None = None) -> list[str]:
    """Names of the presets of ``task`` (every task: "task/name")."""
    if task is None:
        return sorted(f"{t}/{n}" for t, n in PRESETS)
    if task not in TASKS:
        raise ValueError(f"task: expected one of {', '.join(TASKS)}, got {task!r}")
    return sorted(n for t, n in PRESETS if t == task)


def get_preset(task: str, name: str) -> Preset:
    """The preset ``name`` of ``task``."""
    names = list_presets(task)
    if name not in names:
        raise ValueError(f"preset: expected one of {', '.join(names)} for task {task!r}, got {name!r}")
    return PRESETS[(task, name)]
