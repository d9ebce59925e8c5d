"""Segmentation metrics: a hand-computed confusion matrix, hand-counted boundaries, scipy erosion."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from fade.metrics.segmentation import (
    SegmentationMeter,
    boundary_counts,
    boundary_iou,
    boundary_width,
    confusion_matrix,
    iou_from_confusion,
    mask_boundary,
    mean_boundary_iou,
    mean_iou,
    pixel_accuracy,
)

TARGET = np.array(
    [
        [0, 0, 1, 1],
        [0, 0, 1, 1],
        [2, 2, 255, 255],
        [2, 2, 2, 255],
    ]
)
PRED = np.array(
    [
        [0, 1, 1, 1],
        [0, 0, 1, 2],
        [2, 0, 0, 1],
        [2, 2, 1, 0],
    ]
)
# Rows = target, columns = prediction, over the 13 non-ignored pixels:
# target 0 -> predicted 0, 1, 0, 0; target 1 -> 1, 1, 1, 2; target 2 -> 2, 0, 2, 2, 1.
CM = np.array([[3, 1, 0], [0, 3, 1], [1, 1, 3]])
# IoU_c = cm[c, c] / (row_c + col_c - cm[c, c]): 3 / (4 + 4 - 3), 3 / (4 + 5 - 3), 3 / (5 + 4 - 3).
IOU = np.array([3 / 5, 1 / 2, 1 / 2])


def _square(shape, top, left, side):
    mask = np.zeros(shape, dtype=bool)
    mask[top : top + side, left : left + side] = True
    return mask


def _reference_boundary(mask, d):
    """Mask minus its d-fold 3x3 erosion with zeros outside the image, by scipy."""
    eroded = ndimage.binary_erosion(mask, structure=np.ones((3, 3)), iterations=d, border_value=0)
    return mask & ~eroded


def test_hand_computed_confusion_matrix():
    np.testing.assert_array_equal(confusion_matrix(PRED, TARGET, 3), CM)
    np.testing.assert_allclose(iou_from_confusion(CM), IOU)
    assert mean_iou(PRED, TARGET, 3) == pytest.approx(1.6 / 3)
    assert pixel_accuracy(PRED, TARGET, 3) == pytest.approx(9 / 13)


def test_ignored_pixels_do_not_count():
    pred = PRED.copy()
    pred[TARGET == 255] = 2  # whatever is predicted under ignored pixels
    np.testing.assert_array_equal(confusion_matrix(pred, TARGET, 3), CM)
    # A different ignore label.
    target = np.where(TARGET == 255, -1, TARGET)
    np.testing.assert_array_equal(confusion_matrix(PRED, target, 3, ignore_index=-1), CM)


def test_classes_absent_from_both_are_excluded():
    iou = iou_from_confusion(confusion_matrix(PRED, TARGET, 5))
    np.testing.assert_allclose(iou[:3], IOU)
    assert np.isnan(iou[3:]).all()
    assert mean_iou(PRED, TARGET, 5) == pytest.approx(1.6 / 3)
    # A class that is only predicted is present: IoU 0, and it enters the mean.
    pred = PRED.copy()
    pred[0, 1] = 3  # was a wrong 1 on a target 0: IoU_1 becomes 3 / 5
    assert mean_iou(pred, TARGET, 5) == pytest.approx((3 / 5 + 3 / 5 + 1 / 2 + 0) / 4)


def test_boundary_width():
    assert boundary_width(20, 20) == 1  # 0.02 * 28.28 = 0.57 -> 1
    assert boundary_width(3, 4) == 1  # 0.02 * 5 = 0.1 rounds to 0, raised to 1
    assert boundary_width(100, 100) == 3  # 0.02 * 141.42 = 2.83
    assert boundary_width(512, 512) == 14  # 0.02 * 724.08 = 14.48
    assert boundary_width(512, 683) == 17  # 0.02 * 853.6 = 17.07
    assert boundary_width(512, 512, dilation_ratio=0.01) == 7  # 7.24


def test_square_boundary_pixel_counts():
    # d = 1 in a 20x20 image: a 6x6 square keeps a 4x4 core, so 36 - 16 = 20 boundary pixels.
    square = _square((20, 20), 5, 5, 6)
    boundary = mask_boundary(square)
    assert boundary.sum() == 20
    np.testing.assert_array_equal(boundary, square & ~_square((20, 20), 6, 6, 4))
    # The image edge counts as outside: the same square in a corner has the same boundary size.
    assert mask_boundary(_square((20, 20), 0, 0, 6)).sum() == 20
    # d = 2 in a 60x60 image (0.02 * 84.85 = 1.70): a 10x10 square keeps a 6x6 core -> 64.
    assert mask_boundary(_square((60, 60), 20, 30, 10)).sum() == 64
    # A square thinner than 2d + 1 is all boundary.
    assert mask_boundary(_square((60, 60), 0, 0, 4)).sum() == 16


@pytest.mark.parametrize("shape", [(37, 41), (120, 90), (7, 5)])
def test_mask_boundary_matches_scipy_erosion(shape):
    rng = np.random.default_rng(11)
    mask = ndimage.gaussian_filter(rng.random(shape), 2) > 0.5
    expected = _reference_boundary(mask, boundary_width(*shape))
    np.testing.assert_array_equal(mask_boundary(mask), expected)
    np.testing.assert_array_equal(mask_boundary(torch.from_numpy(mask)), expected)


def test_boundary_iou_of_shifted_squares():
    # Boundaries of two side-n squares (here n = 6) shifted by one row are rings of 4n - 4 pixels
    # meeting in 2 + 2 + 2(n - 3) = 2n - 2 pixels: IoU = (2n - 2) / (8n - 8 - (2n - 2)) = 1/3.
    gt = _square((20, 20), 5, 5, 6)
    pred = _square((20, 20), 6, 5, 6)
    assert boundary_iou(pred, gt) == pytest.approx(1 / 3)
    assert boundary_iou(gt, gt) == 1.0
    assert np.isnan(boundary_iou(np.zeros((4, 4), bool), np.zeros((4, 4), bool)))


def test_multiclass_boundary_iou_by_hand():
    # Class 1 = the squares above: 1/3. Class 0 = the rest: its boundary is the image's outer
    # ring (76 pixels) plus the ring just outside the square (8x8 - 6x6 = 28), for both maps;
    # the outer rings coincide, the 8x8 rings shifted by one meet in 2*8 - 2 = 14 pixels:
    # IoU_0 = (76 + 14) / (2 * 104 - 90) = 90 / 118.
    gt = _square((20, 20), 5, 5, 6).astype(np.int64)
    pred = _square((20, 20), 6, 5, 6).astype(np.int64)
    intersection, union = boundary_counts(pred, gt, 2)
    np.testing.assert_array_equal(intersection, [90, 10])
    np.testing.assert_array_equal(union, [118, 30])
    assert mean_boundary_iou(pred, gt, 2) == pytest.approx((90 / 118 + 1 / 3) / 2)


def _reference_boundary_counts(pred, target, num_classes, ignore_index):
    """The documented protocol written out with scipy erosion, image by image, class by class."""
    intersection, union = np.zeros(num_classes, np.int64), np.zeros(num_classes, np.int64)
    for p, t in zip(pred, target):
        d = boundary_width(*p.shape)
        valid = t != ignore_index
        for c in range(num_classes):
            bp, bg = _reference_boundary((p == c) & valid, d), _reference_boundary((t == c) & valid, d)
            intersection[c] += (bp & bg & valid).sum()
            union[c] += ((bp | bg) & valid).sum()
    return intersection, union


def _random_labels(rng, batch, shape, num_classes, ignore_index=255):
    """Blobby label maps with some ignored pixels, and a perturbed prediction."""
    fields = ndimage.gaussian_filter(rng.random((batch, num_classes, *shape)), (0, 0, 3, 3))
    target = fields.argmax(1)
    target[rng.random(target.shape) < 0.05] = ignore_index
    pred = np.roll(fields.argmax(1), 1, axis=-1)
    pred[rng.random(pred.shape) < 0.1] = rng.integers(0, num_classes)
    return pred, target


@pytest.mark.parametrize("shape, ignore_index", [((33, 47), 255), ((80, 110), -1), ((5, 4), 9)])
def test_boundary_counts_match_reference_protocol(shape, ignore_index):
    # (80, 110): d = round(0.02 * 136.0) = 3.
    pred, target = _random_labels(np.random.default_rng(12), 3, shape, 5, ignore_index)
    expected = _reference_boundary_counts(pred, target, 5, ignore_index)
    for got, want in zip(boundary_counts(pred, target, 5, ignore_index), expected):
        np.testing.assert_array_equal(got, want)


def test_meter_equals_one_shot_on_concatenated_data():
    pred, target = _random_labels(np.random.default_rng(13), 5, (26, 31), 6)
    meter = SegmentationMeter(6)
    meter.update(pred[:2], target[:2])
    meter.update(torch.from_numpy(pred[2]), torch.from_numpy(target[2]))
    meter.update(torch.from_numpy(pred[3:]), torch.from_numpy(target[3:]))
    summary = meter.compute()
    assert summary["miou"] == pytest.approx(mean_iou(pred, target, 6), rel=1e-12)
    assert summary["pixel_accuracy"] == pytest.approx(pixel_accuracy(pred, target, 6), rel=1e-12)
    assert summary["biou"] == pytest.approx(mean_boundary_iou(pred, target, 6), rel=1e-12)
    np.testing.assert_allclose(summary["iou"], iou_from_confusion(confusion_matrix(pred, target, 6)))
    intersection, union = boundary_counts(pred, target, 6)
    np.testing.assert_allclose(summary["boundary_iou"], intersection / union)
    meter.reset()
    with pytest.raises(ValueError, match=r"expected at least one non-ignored pixel before compute\(\), got none"):
        meter.compute()


def test_meter_on_the_hand_computed_case():
    meter = SegmentationMeter(3)
    meter.update(PRED[None], TARGET[None])
    summary = meter.compute()
    np.testing.assert_array_equal(meter.confusion, CM)
    np.testing.assert_allclose(summary["iou"], IOU)
    assert summary["miou"] == pytest.approx(1.6 / 3)
    assert summary["pixel_accuracy"] == pytest.approx(9 / 13)


def test_bad_input():
    with pytest.raises(ValueError, match=r"pred: expected labels in 0..2, got 3"):
        mean_iou(np.full((2, 2), 3), np.zeros((2, 2), np.int64), 3)
    with pytest.raises(ValueError, match=r"target: expected labels in 0..2 or ignore_index=255, got 7"):
        mean_iou(np.zeros((2, 2), np.int64), np.full((2, 2), 7), 3)
    with pytest.raises(ValueError, match=r"target: expected labels in 0..2 or ignore_index=255, got -1"):
        SegmentationMeter(3).update(np.zeros((2, 2), np.int64), np.full((2, 2), -1))
    with pytest.raises(ValueError, match=r"shape mismatch: pred has shape \(2, 3\), target has shape \(3, 2\)"):
        confusion_matrix(np.zeros((2, 3), np.int64), np.zeros((3, 2), np.int64), 3)
    with pytest.raises(TypeError, match=r"pred: expected an integer label map, got dtype float32"):
        confusion_matrix(np.zeros((2, 2), np.float32), np.zeros((2, 2), np.int64), 3)
    with pytest.raises(ValueError, match=r"pred: expected a \(H, W\) or \(B, H, W\) array, got 4-D"):
        confusion_matrix(np.zeros((1, 1, 2, 2), np.int64), np.zeros((1, 1, 2, 2), np.int64), 3)
    with pytest.raises(ValueError, match=r"ignore_index: expected a value outside 0..2, got 1"):
        SegmentationMeter(3, ignore_index=1)
    with pytest.raises(ValueError, match=r"num_classes: expected an integer in 1..10000, got 0"):
        SegmentationMeter(0)
    with pytest.raises(ValueError, match=r"mIoU: expected at least one non-ignored pixel, got none"):
        mean_iou(np.zeros((2, 2), np.int64), np.full((2, 2), 255), 3)
    with pytest.raises(TypeError, match=r"mask: expected a bool array, got dtype int64"):
        mask_boundary(np.zeros((4, 4), np.int64))
    with pytest.raises(ValueError, match=r"cm: expected a square \(K, K\) matrix with K >= 1, got shape \(2, 3\)"):
        iou_from_confusion(np.zeros((2, 3)))


def test_boundary_iou_ignores_what_is_predicted_at_ignored_pixels():
    # 4x6, d = 1. Target: class 0 in columns 0-2, class 1 in columns 3-4, column 5 ignored.
    # Ignored pixels count as outside every class, as the image exterior does: class 0's boundary
    # is its 12 pixels minus the interior (rows 1-2, column 1): 10; class 1 (2 columns wide) is
    # all boundary: 8. A prediction equal to the target on the valid pixels scores 1 whatever it
    # predicts in column 5.
    target = np.array([[0, 0, 0, 1, 1, 255]] * 4)
    for fill in (0, 1, 2):
        pred = np.where(target == 255, fill, target)
        intersection, union = boundary_counts(pred, target, 3)
        np.testing.assert_array_equal(intersection, [10, 8, 0])
        np.testing.assert_array_equal(union, [10, 8, 0])
        assert mean_boundary_iou(pred, target, 3) == 1.0
    # The same on blobby maps with scattered ignored pixels and random predictions under them.
    rng = np.random.default_rng(14)
    _, target = _random_labels(rng, 3, (40, 50), 5)
    pred = np.where(target == 255, rng.integers(0, 5, target.shape), target)
    assert mean_boundary_iou(pred, target, 5) == 1.0
    meter = SegmentationMeter(5)
    meter.update(pred, target)
    assert meter.compute()["biou"] == 1.0


def test_validation_of_every_argument():
    empty = np.zeros((0, 0), np.int64)
    for metric in (mean_iou, pixel_accuracy, mean_boundary_iou, confusion_matrix, boundary_counts):
        with pytest.raises(ValueError, match=r"pred: expected H and W >= 1, got shape \(0, 0\)"):
            metric(empty, empty, 3)
    with pytest.raises(ValueError, match=r"pred: expected H and W >= 1, got shape \(2, 4, 0\)"):
        SegmentationMeter(3).update(np.zeros((2, 4, 0), np.int64), np.zeros((2, 4, 0), np.int64))
    with pytest.raises(ValueError, match=r"mask: expected H and W >= 1, got shape \(0, 3\)"):
        mask_boundary(np.zeros((0, 3), bool))
    labels = np.zeros((4, 4), np.int64)
    for ratio in (-1, 0, 0.0, 1.5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"dilation_ratio: expected a finite number in \(0, 1\], got"):
            mean_boundary_iou(labels, labels, 3, dilation_ratio=ratio)
        with pytest.raises(ValueError, match=r"dilation_ratio: expected a finite number in \(0, 1\], got"):
            boundary_iou(labels == 0, labels == 0, dilation_ratio=ratio)
        with pytest.raises(ValueError, match=r"dilation_ratio: expected a finite number in \(0, 1\], got"):
            SegmentationMeter(3, dilation_ratio=ratio)
    with pytest.raises(TypeError, match=r"dilation_ratio: expected a real number, got str '0.02'"):
        boundary_width(4, 4, "0.02")
    with pytest.raises(ValueError, match=r"height: expected an integer >= 1, got 0"):
        boundary_width(0, 4)
    with pytest.raises(TypeError, match=r"num_classes: expected an integer, got float 3.0"):
        mean_iou(labels, labels, 3.0)
    with pytest.raises(TypeError, match=r"num_classes: expected an integer, got bool True"):
        SegmentationMeter(True)
    with pytest.raises(ValueError, match=r"num_classes: expected an integer in 1..10000, got 10001"):
        SegmentationMeter(10_001)
    with pytest.raises(TypeError, match=r"ignore_index: expected an integer, got float 255.0"):
        mean_iou(labels, labels, 3, ignore_index=255.0)
    with pytest.raises(TypeError, match=r"target: expected a numpy array or a torch tensor, got list"):
        mean_iou(labels, labels.tolist(), 3)
    with pytest.raises(ValueError, match=r"cm: expected pixel counts >= 0, got -1"):
        iou_from_confusion(-np.eye(2))
    with pytest.raises(ValueError, match=r"cm: expected finite values, got NaN or infinity"):
        iou_from_confusion(np.full((2, 2), np.nan))
    with pytest.raises(ValueError, match=r"cm: expected a square \(K, K\) matrix with K >= 1, got shape \(0, 0\)"):
        iou_from_confusion(np.zeros((0, 0)))
    with pytest.raises(ValueError, match=r"pred: expected labels that fit int64, got 9223372036854775808"):
        mean_iou(np.full((2, 2), 2**63, np.uint64), labels, 3)
    # An empty batch adds nothing.
    meter = SegmentationMeter(3)
    meter.update(np.zeros((0, 4, 4), np.int64), np.zeros((0, 4, 4), np.int64))
    assert meter.confusion.sum() == 0 and meter.boundary_union.sum() == 0
