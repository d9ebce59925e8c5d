"""Reconstruction metrics: hand-computed cases and scikit-image's PSNR and SSIM."""

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from fade.metrics.reconstruction import ReconstructionMeter, mae, mse, psnr, ssim, ssim_window


def _skimage_ssim(pred, target, data_range=1.0):
    channel_axis = 0 if pred.ndim == 3 else None
    return structural_similarity(
        target,
        pred,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=data_range,
        channel_axis=channel_axis,
    )


def _noisy_pair(rng, shape, noise=0.1):
    target = rng.random(shape)
    return np.clip(target + noise * rng.standard_normal(shape), 0, 1), target


def test_hand_computed_errors():
    pred = np.array([[0.0, 0.5], [1.0, 0.25]])
    target = np.array([[0.0, 0.0], [0.5, 0.25]])
    # |d| = 0, 0.5, 0.5, 0 -> MAE 0.25, MSE 0.5 / 4 = 0.125, PSNR = 10 log10(1 / 0.125) = 10 log10 8.
    assert mae(pred, target) == pytest.approx(0.25)
    assert mse(pred, target) == pytest.approx(0.125)
    assert psnr(pred, target) == pytest.approx(10 * math.log10(8))
    assert psnr(pred * 255, target * 255, data_range=255) == pytest.approx(10 * math.log10(8))
    assert psnr(target, target) == math.inf


def test_ssim_of_constant_images():
    # Constant a and b: means a, b, variances and covariance 0, so
    # SSIM = (2ab + C1) / (a^2 + b^2 + C1) * C2 / C2 with C1 = (0.01)^2.
    a, b, c1 = 0.2, 0.6, 1e-4
    value = ssim(np.full((12, 15), a), np.full((12, 15), b))
    assert value == pytest.approx((2 * a * b + c1) / (a**2 + b**2 + c1), rel=1e-12)
    image = np.random.default_rng(0).random((2, 13, 11))
    assert ssim(image, image) == pytest.approx(1.0, rel=1e-12)


def test_ssim_window():
    w = ssim_window()
    assert w.shape == (11,)
    assert w.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(w, w[::-1])
    assert w[0] / w[5] == pytest.approx(math.exp(-25 / (2 * 1.5**2)))


@pytest.mark.parametrize("shape", [(23, 30), (3, 17, 19), (1, 28, 28)])
@pytest.mark.parametrize("noise", [0.02, 0.3])
def test_match_skimage(shape, noise):
    pred, target = _noisy_pair(np.random.default_rng(1), shape, noise)
    assert psnr(pred, target) == pytest.approx(peak_signal_noise_ratio(target, pred, data_range=1), rel=1e-12)
    assert ssim(pred, target) == pytest.approx(_skimage_ssim(pred, target), rel=1e-10)
    assert ssim(pred * 255, target * 255, data_range=255) == pytest.approx(
        _skimage_ssim(pred * 255, target * 255, data_range=255), rel=1e-10
    )


def test_meter_equals_per_image_means():
    rng = np.random.default_rng(2)
    pred, target = _noisy_pair(rng, (5, 2, 14, 12))
    meter = ReconstructionMeter()
    meter.update(pred[:3], target[:3])
    meter.update(torch.from_numpy(pred[3:]).float(), torch.from_numpy(target[3:]).float())
    summary = meter.compute()
    assert summary["images"] == 5
    for key, metric in (("psnr", psnr), ("ssim", ssim), ("mae", mae), ("mse", mse)):
        expected = np.mean([metric(p, t) for p, t in zip(pred, target)])
        assert summary[key] == pytest.approx(expected, rel=1e-6)  # float32 for the last two images
    meter.reset()
    with pytest.raises(ValueError, match=r"expected at least one image before compute\(\), got none"):
        meter.compute()


def test_bad_input():
    a = np.zeros((12, 12))
    with pytest.raises(ValueError, match=r"shape mismatch: pred has shape \(12, 12\), target has shape \(12, 11\)"):
        mse(a, a[:, :11])
    with pytest.raises(ValueError, match=r"pred: expected H and W >= 11 for SSIM, got shape \(12, 10\)"):
        ssim(a[:, :10], a[:, :10])
    for bad in (0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match=r"data_range: expected a finite number in \(0, inf\), got"):
            psnr(a, a, data_range=bad)
        with pytest.raises(ValueError, match=r"data_range: expected a finite number in \(0, inf\), got"):
            ReconstructionMeter(data_range=bad)
    with pytest.raises(TypeError, match=r"data_range: expected a real number, got str '1'"):
        ssim(a, a, data_range="1")
    with pytest.raises(ValueError, match=r"pred: expected a non-empty image, got shape \(0, 0\)"):
        mse(np.zeros((0, 0)), np.zeros((0, 0)))
    with pytest.raises(TypeError, match=r"pred: expected a real-valued array, got dtype <U1"):
        mae(np.full((2, 2), "a"), a[:2, :2])
    with pytest.raises(ValueError, match=r"target: expected finite values, got NaN or infinity"):
        mae(a, a + np.inf)
    with pytest.raises(ValueError, match=r"pred: expected a \(H, W\) or \(C, H, W\) array, got 1-D shape \(4,\)"):
        mae(np.zeros(4), np.zeros(4))
    with pytest.raises(ValueError, match=r"pred: expected a \(B, C, H, W\) array, got 3-D shape \(2, 12, 12\)"):
        ReconstructionMeter().update(np.stack([a, a]), np.stack([a, a]))
