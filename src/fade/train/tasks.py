"""What differs between tasks: the batch keys, the loss, and the evaluation.

- segmentation: ``{"image", "label"}``; per-pixel cross-entropy (label 255 ignored) on the logits
  resized bilinearly to the label size, as mmseg does for SegFormer, averaged over the valid pixels
  of the whole batch (on several processes too); :class:`~fade.metrics.SegmentationMeter`.
- matting: ``{"input", "alpha", "trimap", "fg", "bg"}``; the A2U / FADE matting code's loss,
  ``w * L_alpha + (1 - w) * L_comp`` with w = 0.5, both Charbonnier ``sqrt(d^2 + eps^2)`` (eps = 1e-6)
  summed over the unknown region (trimap == 128) and divided by its pixel count + 1, per image, then
  averaged over the batch; ``L_comp`` compares ``p fg + (1 - p) bg`` with the ground-truth composite
  over the 3 colour channels (Deep Image Matting's composition loss, as IndexNet and A2U train).
  Evaluation as the authors': the prediction clamped to [0, 1], the known trimap regions copied in,
  then :class:`~fade.metrics.MattingMeter` (SAD, MSE, Grad, Conn over the unknown region).
- reconstruction: ``{"image"}`` in [0, 1]; L1 (default) or MSE to the input;
  :class:`~fade.metrics.ReconstructionMeter`. The paper does not state its Table 1 loss.

Every task also scores a trivial predictor on the same test set (:meth:`Task.trivial_baseline`),
the floor a trained network must clearly beat before its result means anything:

- segmentation: all-background, every pixel predicted as class 0 (the composite data's background);
- matting: the known-regions-only alpha, 1 in the known foreground, 0 in the known background and
  one constant c in the whole unknown region, c the mean ground-truth alpha over the unknown pixels
  of the training set (the constant with the least squared error there; 0.5 without unknown pixels);
- reconstruction: the input mean, every pixel of an image predicted as that image's mean value.

Metrics are imported lazily (they need numpy), so importing this module needs torch only.
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from .distributed import current_processes, mean_over_processes

__all__ = ["MattingTask", "ReconstructionTask", "SegmentationTask", "Task", "create_task"]

IGNORE_INDEX = 255
UNKNOWN = 128
BACKGROUND = 0
"""The class the all-background baseline predicts."""
_BASELINE_BATCH = 256


class Task(ABC):
    """A training task: which batch keys it reads, its loss, its evaluation.

    Attributes:
        name: the task name. keys: the batch keys it reads.
        metrics: every reported metric, "max" when higher is better, "min" otherwise.
        primary: the headline metrics of the cross-task summary, most important first.
        trivial: what :meth:`trivial_baseline` predicts, in a few words.
    """

    name: ClassVar[str]
    keys: ClassVar[tuple[str, ...]]
    metrics: ClassVar[dict[str, str]]
    primary: ClassVar[tuple[str, ...]]
    trivial: ClassVar[str]

    @abstractmethod
    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        """The scalar training loss of ``model`` on ``batch``."""

    @abstractmethod
    def evaluate(
        self, model: nn.Module, batches: Iterable[dict[str, Tensor]], device: torch.device
    ) -> dict[str, float]:
        """Metrics of ``model`` (already in eval mode) over ``batches``."""

    @abstractmethod
    def trivial_baseline(self, train: Dataset, test: Dataset) -> dict[str, float]:
        """Every metric of the task's trivial predictor (see the module docstring) on ``test``."""


def _batches(dataset: Dataset, keys: tuple[str, ...]) -> Iterable[list[Tensor]]:
    """The tensors of ``keys``, batch by batch, in order (one sample at a time unless the set is held
    in memory: full-size test images differ in size)."""
    from .data import CachedDataset

    batch_size = _BASELINE_BATCH if isinstance(dataset, CachedDataset) else 1
    for batch in DataLoader(dataset, batch_size=batch_size):
        yield [batch[k] for k in keys]


def _to(batch: dict[str, Tensor], keys: tuple[str, ...], device: torch.device) -> list[Tensor]:
    """The tensors of ``keys`` on ``device``."""
    return [batch[k].to(device, non_blocking=True) for k in keys]


def _check_labels(label: Tensor, classes: int) -> None:
    """Raise ValueError unless every label is a class of the model's ``classes`` outputs or IGNORE_INDEX."""
    bad = ((label < 0) | (label >= classes)) & (label != IGNORE_INDEX)
    if bad.any():
        raise ValueError(
            f"label: expected classes 0..{classes - 1} (the model's {classes} outputs) or {IGNORE_INDEX}, "
            f"got {int(label[bad][0])}; the data has classes the model does not predict"
        )


class SegmentationTask(Task):
    """Semantic segmentation: cross-entropy; mIoU, bIoU, pixel accuracy (fractions in [0, 1])."""

    name = "segmentation"
    keys = ("image", "label")
    metrics: ClassVar[dict[str, str]] = {"miou": "max", "biou": "max", "pixel_accuracy": "max"}
    primary = ("miou", "biou")
    trivial = "all-background (every pixel class 0)"

    @staticmethod
    def logits(model: nn.Module, image: Tensor, size: tuple[int, int]) -> Tensor:
        """The model's logits resized bilinearly to ``size`` when they differ from it."""
        logits = model(image)
        if logits.shape[-2:] != size:
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        image, label = _to(batch, self.keys, next(model.parameters()).device)
        logits = self.logits(model, image, label.shape[-2:])
        _check_labels(label, logits.shape[1])
        processes = current_processes()
        if processes.world_size == 1:
            return F.cross_entropy(logits, label, ignore_index=IGNORE_INDEX)
        # This rank's sum over the ranks' mean count of valid pixels: the ranks' mean loss (what DDP's
        # gradient averaging follows) is then the mean over every valid pixel of the global batch.
        total = F.cross_entropy(logits, label, ignore_index=IGNORE_INDEX, reduction="sum")
        valid = mean_over_processes((label != IGNORE_INDEX).sum().to(total.dtype), processes)
        return total / valid.clamp_min(1.0)

    def evaluate(
        self, model: nn.Module, batches: Iterable[dict[str, Tensor]], device: torch.device
    ) -> dict[str, float]:
        from ..metrics import SegmentationMeter

        meter = None
        for batch in batches:
            image, label = _to(batch, self.keys, device)
            logits = self.logits(model, image, label.shape[-2:])
            if meter is None:
                meter = SegmentationMeter(logits.shape[1], ignore_index=IGNORE_INDEX)
            meter.update(logits.argmax(1).cpu(), label.cpu())
        if meter is None:
            raise ValueError("evaluate: expected at least one batch, got none")
        summary = meter.compute()
        return {k: float(summary[k]) for k in self.metrics}

    def trivial_baseline(self, train: Dataset, test: Dataset) -> dict[str, float]:
        from ..metrics import SegmentationMeter

        classes = BACKGROUND + 1
        for (label,) in _batches(test, ("label",)):
            valid = label[label != IGNORE_INDEX]
            classes = max(classes, int(valid.max()) + 1 if valid.numel() else 0)
        meter = SegmentationMeter(classes, ignore_index=IGNORE_INDEX)
        for (label,) in _batches(test, ("label",)):
            meter.update(torch.full_like(label, BACKGROUND), label)
        summary = meter.compute()
        return {k: float(summary[k]) for k in self.metrics}


class MattingTask(Task):
    """Image matting: the authors' alpha + composition loss; SAD, MSE, Grad, Conn (lower is better).

    Args:
        alpha_weight: w, the weight of the alpha loss (the composition loss gets 1 - w).
        eps: the Charbonnier epsilon.
    """

    name = "matting"
    keys = ("input", "alpha", "trimap", "fg", "bg")
    metrics: ClassVar[dict[str, str]] = {"sad": "min", "mse": "min", "grad": "min", "conn": "min"}
    primary = ("sad", "grad")
    trivial = "known regions only (1 in known foreground, 0 in known background, the training mean in unknown)"

    def __init__(self, alpha_weight: float = 0.5, eps: float = 1e-6) -> None:
        for name, value in (("alpha_weight", alpha_weight), ("eps", eps)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name}: expected a number, got {type(value).__name__} {value!r}")
        if not 0.0 <= alpha_weight <= 1.0 or not 0 < eps < math.inf:
            raise ValueError(f"alpha_weight, eps: expected a weight in [0, 1] and eps > 0, got {alpha_weight}, {eps}")
        self.alpha_weight, self.eps = alpha_weight, eps

    def _charbonnier(self, diff: Tensor, unknown: Tensor) -> Tensor:
        """Per image: sum over unknown pixels (and channels) of sqrt(d^2 + eps^2) / (unknown pixels + 1)."""
        error = torch.sqrt(diff.square() + self.eps**2) * unknown
        return error.sum(dim=(1, 2, 3)) / (unknown.sum(dim=(1, 2, 3)) + 1.0)

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        x, alpha, trimap, fg, bg = _to(batch, self.keys, next(model.parameters()).device)
        pred = model(x)
        unknown = (trimap == UNKNOWN).to(pred.dtype)
        alpha_loss = self._charbonnier(pred - alpha, unknown)
        composite_error = (pred - alpha) * (fg - bg)
        composition_loss = self._charbonnier(composite_error, unknown)
        return (self.alpha_weight * alpha_loss + (1.0 - self.alpha_weight) * composition_loss).mean()

    def evaluate(
        self, model: nn.Module, batches: Iterable[dict[str, Tensor]], device: torch.device
    ) -> dict[str, float]:
        from ..metrics import MattingMeter

        meter = MattingMeter()
        for batch in batches:
            x, alpha, trimap = _to(batch, self.keys[:3], device)
            pred = model(x).clamp(0.0, 1.0)
            pred = torch.where(trimap == UNKNOWN, pred, trimap.to(pred.dtype) / 255.0)
            meter.update(pred.cpu(), alpha.cpu(), trimap.cpu())
        summary = meter.compute()
        return {k: float(summary[k]) for k in self.metrics}

    @staticmethod
    def unknown_mean(train: Dataset) -> float:
        """c: the mean ground-truth alpha over the unknown pixels of ``train`` (0.5 when there is none)."""
        total, count = 0.0, 0
        for alpha, trimap in _batches(train, ("alpha", "trimap")):
            unknown = trimap == UNKNOWN
            total += float(alpha[unknown].double().sum())
            count += int(unknown.sum())
        return total / count if count else 0.5

    def trivial_baseline(self, train: Dataset, test: Dataset) -> dict[str, float]:
        from ..metrics import MattingMeter

        constant = self.unknown_mean(train)
        meter = MattingMeter()
        for alpha, trimap in _batches(test, ("alpha", "trimap")):
            pred = torch.where(trimap == UNKNOWN, constant, trimap.to(alpha.dtype) / 255.0)
            meter.update(pred, alpha, trimap)
        summary = meter.compute()
        return {k: float(summary[k]) for k in self.metrics}


class ReconstructionTask(Task):
    """Image reconstruction: L1 or MSE to the input; PSNR, SSIM (higher), MAE, MSE (lower).

    Args:
        loss: ``"l1"`` or ``"mse"``.
    """

    name = "reconstruction"
    keys = ("image",)
    metrics: ClassVar[dict[str, str]] = {"psnr": "max", "ssim": "max", "mae": "min", "mse": "min"}
    primary = ("psnr", "ssim")
    trivial = "input mean (every pixel the image's mean value)"
    _LOSSES: ClassVar[dict[str, Callable[[Tensor, Tensor], Tensor]]] = {"l1": F.l1_loss, "mse": F.mse_loss}

    def __init__(self, loss: str = "l1") -> None:
        if loss not in self._LOSSES:
            raise ValueError(f"loss: expected one of {', '.join(self._LOSSES)}, got {loss!r}")
        self.loss_name = loss

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        (image,) = _to(batch, self.keys, next(model.parameters()).device)
        return self._LOSSES[self.loss_name](model(image), image)

    def evaluate(
        self, model: nn.Module, batches: Iterable[dict[str, Tensor]], device: torch.device
    ) -> dict[str, float]:
        from ..metrics import ReconstructionMeter

        meter = ReconstructionMeter()
        for batch in batches:
            (image,) = _to(batch, self.keys, device)
            meter.update(model(image).clamp(0.0, 1.0).cpu(), image.cpu())
        summary = meter.compute()
        return {k: float(summary[k]) for k in self.metrics}

    def trivial_baseline(self, train: Dataset, test: Dataset) -> dict[str, float]:
        from ..metrics import ReconstructionMeter

        meter = ReconstructionMeter()
        for (image,) in _batches(test, self.keys):
            meter.update(image.mean(dim=(1, 2, 3), keepdim=True).expand_as(image), image)
        summary = meter.compute()
        return {k: float(summary[k]) for k in self.metrics}


_TASKS: dict[str, type[Task]] = {t.name: t for t in (SegmentationTask, MattingTask, ReconstructionTask)}


def create_task(name: str, **options) -> Task:
    """The task ``name`` (segmentation, matting, reconstruction) with its loss ``options``."""
    if name not in _TASKS:
        raise ValueError(f"task: expected one of {', '.join(_TASKS)}, got {name!r}")
    accepted = list(inspect.signature(_TASKS[name]).parameters)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        takes = f"takes {', '.join(accepted)}" if accepted else "takes none"
        raise TypeError(f"task_options: the {name!r} task {takes}, got {', '.join(unknown)}")
    return _TASKS[name](**options)
