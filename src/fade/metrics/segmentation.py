"""Segmentation metrics: mIoU and pixel accuracy from a confusion matrix, and Boundary IoU.

Label maps are integer arrays[H, W] or batches [B, H, W]; predictions hold classes
0..num_classes-1, targets hold those or ``ignore_index``. Pixels whose target is ``ignore_index``
are left out of every count.

mIoU: the confusion matrix is accumulated over the whole evaluation set; the IoU of class c is
TP / (TP + FP + FN) from it, and mIoU is the mean over classes with a nonzero denominator, i.e.
classes that appear in the prediction or the ground truth (others are NaN and excluded).

Boundary IoU (Cheng et al. 2021) of binary masks: the boundary of a mask is the set of its pixels
within Chebyshev distance d of a pixel outside it, the image exterior counting as outside (the
mask minus its d-fold erosion by a 3x3 square with zero padding), with
d = max(1, round(0.02 * sqrt(H^2 + W^2))) (Python's round, half to even, as the reference code).
The paper behind FADE does not publish its multi-class protocol; this module uses this one:
for each image and each class c, the masks are restricted to the non-ignored pixels,
P_c = (pred == c) & valid and G_c = (target == c) & valid, and B_p, B_g are their boundaries:
ignored pixels count as outside both masks, exactly as the image exterior does in Boundary IoU
(a region bordering an ignored area has a boundary there, in both maps). |B_p & B_g| and
|B_p | B_g| are summed over the evaluation set, class by class. What is predicted at ignored
pixels therefore changes nothing: a prediction equal to the target on every valid pixel scores 1.
bIoU is the mean, over classes with a nonzero summed union (those present in some prediction or
target), of the summed intersection over the summed union, in the same way as mIoU.

All values are fractions in [0, 1]; multiply by 100 to report percentages.
"""

from __future__ import annotations

import numpy as np

from ._common import (
    ArrayLike,
    as_labels,
    as_values,
    check_int,
    check_ndim,
    check_real,
    check_same_shape,
    check_spatial,
    to_numpy,
)

__all__ = [
    "SegmentationMeter",
    "boundary_counts",
    "boundary_iou",
    "boundary_width",
    "confusion_matrix",
    "iou_from_confusion",
    "mask_boundary",
    "mean_boundary_iou",
    "mean_iou",
    "pixel_accuracy",
]

DILATION_RATIO = 0.02
"""Boundary width as a fraction of the image diagonal (Boundary IoU default)."""
MAX_CLASSES = 10_000
"""Most classes a metric accepts (the confusion matrix holds MAX_CLASSES^2 int64 counts, 800 MB)."""


def _check_classes(num_classes: int, ignore_index: int) -> None:
    """Raise unless num_classes is an integer in 1..MAX_CLASSES and ignore_index an integer not a class."""
    check_int(num_classes, "num_classes", 1, MAX_CLASSES)
    check_int(ignore_index, "ignore_index", -(2**63), 2**63 - 1)
    if 0 <= ignore_index < num_classes:
        raise ValueError(
            f"ignore_index: expected a value outside 0..{num_classes - 1}, got {ignore_index}"
        )


def _label_batch(
    pred: ArrayLike, target: ArrayLike, num_classes: int, ignore_index: int
) -> tuple[np.ndarray, np.ndarray]:
    """Checked label maps as int64 arrays[B, H, W]."""
    _check_classes(num_classes, ignore_index)
    p, t = as_labels(pred, "pred"), as_labels(target, "target")
    check_ndim(p, (2, 3), "pred", "(H, W) or (B, H, W)")
    check_same_shape(p, t, "pred", "target")
    check_spatial(p, "pred")
    bad = (p < 0) | (p >= num_classes)
    if bad.any():
        raise ValueError(f"pred: expected labels in 0..{num_classes - 1}, got {p[bad][0]}")
    bad = ((t < 0) | (t >= num_classes)) & (t != ignore_index)
    if bad.any():
        raise ValueError(
            f"target: expected labels in 0..{num_classes - 1} or ignore_index={ignore_index}, got {t[bad][0]}"
        )
    return p.reshape(-1, *p.shape[-2:]), t.reshape(-1, *t.shape[-2:])


def confusion_matrix(
    pred: ArrayLike, target: ArrayLike, num_classes: int, ignore_index: int = 255
) -> np.ndarray:
    """Pixel counts ``cm[target class, predicted class]`` over the non-ignored pixels.

    Args:
        pred, target: integer label arrays[H, W] or [B, H, W].

    Returns:
        int64 array[num_classes, num_classes].
    """
    p, t = _label_batch(pred, target, num_classes, ignore_index)
    valid = t != ignore_index
    flat = t[valid] * num_classes + p[valid]
    return np.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes)


def iou_from_confusion(cm: np.ndarray) -> np.ndarray:
    """Per-class IoU TP / (TP + FP + FN); NaN for classes absent from prediction and target.

    Args:
        cm: array[K, K] of counts >= 0 (numpy or torch), rows = target class, columns = predicted class.

    Returns:
        float64 array[K].
    """
    cm = as_values(cm, "cm")
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.size == 0:
        raise ValueError(f"cm: expected a square (K, K) matrix with K >= 1, got shape {cm.shape}")
    if (cm < 0).any():
        raise ValueError(f"cm: expected pixel counts >= 0, got {cm.min():g}")
    tp = np.diag(cm)
    union = cm.sum(axis=0) + cm.sum(axis=1) - tp
    return _ratio(tp, union)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, NaN where the denominator is 0."""
    out = np.full(numerator.shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _mean_present(values: np.ndarray, what: str) -> float:
    """Mean of the non-NaN entries; ValueError when there is none."""
    present = values[~np.isnan(values)]
    if present.size == 0:
        raise ValueError(f"{what}: expected at least one non-ignored pixel, got none")
    return float(present.mean())


def mean_iou(pred: ArrayLike, target: ArrayLike, num_classes: int, ignore_index: int = 255) -> float:
    """mIoU over the classes that appear in the prediction or target (one-shot; see module doc)."""
    cm = confusion_matrix(pred, target, num_classes, ignore_index)
    return _mean_present(iou_from_confusion(cm), "mIoU")


def pixel_accuracy(pred: ArrayLike, target: ArrayLike, num_classes: int, ignore_index: int = 255) -> float:
    """Fraction of non-ignored pixels whose predicted class is the target class."""
    cm = confusion_matrix(pred, target, num_classes, ignore_index)
    if cm.sum() == 0:
        raise ValueError("pixel accuracy: expected at least one non-ignored pixel, got none")
    return float(np.trace(cm) / cm.sum())


def _check_ratio(dilation_ratio: float) -> float:
    """``dilation_ratio`` if it is a finite number in (0, 1]."""
    return check_real(dilation_ratio, "dilation_ratio", 0.0, 1.0)


def boundary_width(height: int, width: int, dilation_ratio: float = DILATION_RATIO) -> int:
    """d = max(1, round(dilation_ratio * sqrt(height^2 + width^2))) for an image of height, width >= 1."""
    check_int(height, "height", 1)
    check_int(width, "width", 1)
    return max(1, round(_check_ratio(dilation_ratio) * float(np.hypot(height, width))))


def _sliding(x: np.ndarray, window: int, axis: int, op: np.ufunc) -> np.ndarray:
    """``op`` (np.minimum or np.maximum) over every full window of length ``window`` along ``axis``.

    Windows of length 2^k are built by doubling, then two overlapping ones cover ``window``.

    Returns:
        array with ``axis`` of length n - window + 1.
    """
    out = np.moveaxis(x, axis, -1)
    span = 1
    while 2 * span <= window:
        out = op(out[..., :-span], out[..., span:])
        span *= 2
    count = out.shape[-1] - (window - span)
    out = op(out[..., :count], out[..., window - span : window - span + count])
    return np.moveaxis(out, -1, axis)


def _label_boundary(labels: np.ndarray, radius: int) -> np.ndarray:
    """Pixels whose (2 radius + 1)-square window holds another label or leaves the image.

    A pixel of class c is on the boundary of the mask ``labels == c`` exactly when this holds, so
    one pass serves every class. For a mask m, ``_label_boundary(m, r) & m`` is m minus its
    r-fold 3x3 erosion with zeros outside.

    Args:
        labels: integer array[H, W] of labels >= 0.

    Returns:
        bool array[H, W].
    """
    outside = -1
    padded = np.pad(labels.astype(np.int64), radius, constant_values=outside)
    window = 2 * radius + 1
    low = _sliding(_sliding(padded, window, 0, np.minimum), window, 1, np.minimum)
    high = _sliding(_sliding(padded, window, 0, np.maximum), window, 1, np.maximum)
    return low != high


def mask_boundary(mask: ArrayLike, dilation_ratio: float = DILATION_RATIO) -> np.ndarray:
    """Inner boundary of a binary mask (Boundary IoU), width from :func:`boundary_width`.

    Args:
        mask: bool array[H, W].

    Returns:
        bool array[H, W].
    """
    m = to_numpy(mask, "mask")
    check_ndim(m, (2,), "mask", "2-D (H, W)")
    if m.dtype != np.bool_:
        raise TypeError(f"mask: expected a bool array, got dtype {m.dtype}")
    check_spatial(m, "mask")
    return _label_boundary(m, boundary_width(*m.shape, dilation_ratio)) & m


def boundary_iou(pred_mask: ArrayLike, gt_mask: ArrayLike, dilation_ratio: float = DILATION_RATIO) -> float:
    """Boundary IoU |B_p & B_g| / |B_p | B_g| of two binary masks; NaN when both are empty.

    Args:
        pred_mask, gt_mask: bool arrays[H, W].
    """
    _check_ratio(dilation_ratio)
    bp, bg = mask_boundary(pred_mask, dilation_ratio), mask_boundary(gt_mask, dilation_ratio)
    check_same_shape(bp, bg, "pred_mask", "gt_mask")
    return float(_ratio(np.array((bp & bg).sum()), np.array((bp | bg).sum())))


def boundary_counts(
    pred: ArrayLike,
    target: ArrayLike,
    num_classes: int,
    ignore_index: int = 255,
    dilation_ratio: float = DILATION_RATIO,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class boundary intersection and union pixel counts, summed over the images.

    Args:
        pred, target: integer label arrays[H, W] or [B, H, W].

    Returns:
        (intersection, union): int64 arrays[num_classes].
    """
    _check_ratio(dilation_ratio)
    p, t = _label_batch(pred, target, num_classes, ignore_index)
    intersection = np.zeros(num_classes, dtype=np.int64)
    union = np.zeros(num_classes, dtype=np.int64)
    radius = boundary_width(*p.shape[-2:], dilation_ratio)
    for pi, ti in zip(p, t):
        valid = ti != ignore_index
        # Ignored pixels get a label of their own in both maps: outside every class, like the exterior.
        on_p = _label_boundary(np.where(valid, pi, num_classes), radius) & valid
        on_t = _label_boundary(np.where(valid, ti, num_classes), radius) & valid
        both = on_p & on_t & (pi == ti)
        count_p = np.bincount(pi[on_p], minlength=num_classes)
        count_t = np.bincount(ti[on_t], minlength=num_classes)
        count_both = np.bincount(pi[both], minlength=num_classes)
        intersection += count_both
        union += count_p + count_t - count_both
    return intersection, union


def mean_boundary_iou(
    pred: ArrayLike,
    target: ArrayLike,
    num_classes: int,
    ignore_index: int = 255,
    dilation_ratio: float = DILATION_RATIO,
) -> float:
    """bIoU: mean over classes of summed boundary intersection / summed union (see module doc)."""
    intersection, union = boundary_counts(pred, target, num_classes, ignore_index, dilation_ratio)
    return _mean_present(_ratio(intersection, union), "bIoU")


class SegmentationMeter:
    """Streaming mIoU, pixel accuracy and bIoU over an evaluation set.

    Keeps only a (K, K) confusion matrix and two K-vectors of boundary counts.

    Args:
        num_classes: K. ignore_index: target label left out of every count.
        dilation_ratio: Boundary IoU width as a fraction of the image diagonal.

    Example:
        >>> meter = SegmentationMeter(150)
        >>> meter.update(logits.argmax(1), labels)  # (B, H, W) each
        >>> meter.compute()["miou"]
    """

    def __init__(
        self, num_classes: int, ignore_index: int = 255, dilation_ratio: float = DILATION_RATIO
    ) -> None:
        _check_classes(num_classes, ignore_index)
        _check_ratio(dilation_ratio)
        self.num_classes, self.ignore_index, self.dilation_ratio = num_classes, ignore_index, dilation_ratio
        self.reset()

    def reset(self) -> None:
        """Forget every image seen so far."""
        k = self.num_classes
        self.confusion = np.zeros((k, k), dtype=np.int64)
        self.boundary_intersection = np.zeros(k, dtype=np.int64)
        self.boundary_union = np.zeros(k, dtype=np.int64)

    def update(self, pred: ArrayLike, target: ArrayLike) -> None:
        """Add a batch of label maps, integer arrays[B, H, W] (or one map [H, W])."""
        args = (pred, target, self.num_classes, self.ignore_index)
        self.confusion += confusion_matrix(*args)
        intersection, union = boundary_counts(*args, self.dilation_ratio)
        self.boundary_intersection += intersection
        self.boundary_union += union

    def compute(self) -> dict[str, float | np.ndarray]:
        """The summary so far, as fractions in [0, 1].

        Returns:
            ``{"miou", "pixel_accuracy", "biou"}`` floats and ``{"iou", "boundary_iou"}`` float64
            arrays[K], NaN for classes absent from every prediction and target.
        """
        if self.confusion.sum() == 0:
            raise ValueError(
                "SegmentationMeter: expected at least one non-ignored pixel before compute(), got none"
            )
        iou = iou_from_confusion(self.confusion)
        biou = _ratio(self.boundary_intersection, self.boundary_union)
        return {
            "miou": _mean_present(iou, "mIoU"),
            "pixel_accuracy": float(np.trace(self.confusion) / self.confusion.sum()),
            "biou": _mean_present(biou, "bIoU"),
            "iou": iou,
            "boundary_iou": biou,
        }
