"""Trivial baselines of every task on hand-computed data."""

import math

import numpy as np
import pytest
import torch

from fade.metrics import ssim
from fade.train.tasks import create_task


def _segmentation_set():
    # Two 4x4 maps: a class-1 block in the top-left corner; a class-2 block in the bottom-right
    # corner with its corner pixel ignored.
    first = torch.zeros(4, 4, dtype=torch.int64)
    first[:2, :2] = 1
    second = torch.zeros(4, 4, dtype=torch.int64)
    second[2:, 2:] = 2
    second[3, 3] = 255
    return [{"image": torch.zeros(3, 4, 4), "label": label} for label in (first, second)]


def test_all_background_segmentation_by_hand():
    # Confusion (all predicted 0): target 0: 24 pixels, target 1: 4, target 2: 3 (one ignored).
    # IoU_0 = 24 / 31, IoU_1 = IoU_2 = 0; pixel accuracy 24 / 31.
    # Boundaries (d = 1 in 4x4: the 3x3 window): image 1, class 0 predicted everywhere: the 12
    # frame pixels; target class 0 (the 12 pixels outside the block): all on its boundary; both and
    # labelled 0: the 9 frame pixels outside the block -> I = 9, U = 12 + 12 - 9 = 15. Image 2:
    # the ignored corner counts as outside, so the predicted boundary is the 11 valid frame pixels
    # and (2, 2) next to the corner: 12; the target's class 0 again 12 pixels, all boundary; both
    # and labelled 0: 9 -> I = 9, U = 15. Class 1: U = 4, class 2: U = 3, I = 0.
    # bIoU = (18 / 30 + 0 + 0) / 3 = 0.2.
    data = _segmentation_set()
    baseline = create_task("segmentation").trivial_baseline(data, data)
    assert baseline["miou"] == pytest.approx(24 / 31 / 3)
    assert baseline["pixel_accuracy"] == pytest.approx(24 / 31)
    assert baseline["biou"] == pytest.approx(0.2)


def _matting_sample(alpha, trimap):
    alpha = torch.tensor(alpha, dtype=torch.float32)[None]
    trimap = torch.tensor(trimap, dtype=torch.uint8)[None]
    return {"input": torch.zeros(4, *alpha.shape[1:]), "alpha": alpha, "trimap": trimap, "fg": alpha, "bg": alpha}


def test_known_regions_only_matting_by_hand():
    # Training unknown pixels: 0.2, 0.4 (first) and 0.9 (second): c = 1.5 / 3 = 0.5.
    train = [
        _matting_sample([[0.2, 0.4, 1.0], [0.0, 0.0, 1.0]], [[128, 128, 255], [0, 0, 255]]),
        _matting_sample([[0.9, 0.0, 0.0], [1.0, 1.0, 0.0]], [[128, 0, 0], [255, 255, 0]]),
    ]
    task = create_task("matting")
    assert task.unknown_mean(train) == pytest.approx(0.5)
    # Test: one image, unknown pixels with alpha 0.1, 0.3 and 1.0 -> |d| = 0.4, 0.2, 0.5.
    test = [_matting_sample([[0.1, 0.3, 1.0], [0.0, 1.0, 1.0]], [[128, 128, 128], [0, 255, 255]])]
    baseline = task.trivial_baseline(train, test)
    assert baseline["sad"] == pytest.approx(1.1 / 1000)
    assert baseline["mse"] == pytest.approx((0.16 + 0.04 + 0.25) / 3)
    assert baseline["grad"] > 0 and baseline["conn"] > 0
    # Without unknown pixels in training, c = 0.5.
    assert task.unknown_mean([_matting_sample([[0.0]], [[0]])]) == 0.5


def test_input_mean_reconstruction_by_hand():
    # Half 0, half 1: the mean image is 0.5 everywhere, |d| = 0.5 at every pixel: MAE 0.5, MSE 0.25,
    # PSNR 10 log10(4). A constant image is reconstructed exactly (its PSNR is infinite).
    image = torch.zeros(1, 28, 28)
    image[:, :, 14:] = 1.0
    task = create_task("reconstruction")
    one = task.trivial_baseline([], [{"image": image}])
    assert one["mae"] == pytest.approx(0.5)
    assert one["mse"] == pytest.approx(0.25)
    assert one["psnr"] == pytest.approx(10 * math.log10(4))
    assert one["ssim"] == pytest.approx(ssim(np.full((28, 28), 0.5), image[0].numpy()))
    two = task.trivial_baseline([], [{"image": image}, {"image": torch.full((1, 28, 28), 0.25)}])
    assert two["mae"] == pytest.approx(0.25)
    assert two["psnr"] == math.inf


def test_sets_of_images_of_different_sizes_are_scored_one_by_one():
    # Full-size test sets (ADE20K val, Composition-1K test) are not held in memory and differ in size.
    data = _segmentation_set() + [{"image": torch.zeros(3, 2, 5), "label": torch.zeros(2, 5, dtype=torch.int64)}]
    baseline = create_task("segmentation").trivial_baseline([], data)
    assert baseline["pixel_accuracy"] == pytest.approx((24 + 10) / (31 + 10))
