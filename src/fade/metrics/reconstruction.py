"""Reconstruction metrics on images with values in [0, data_range] (default [0, 1]).

Images are arrays[H, W] or [C, H, W]; every metric is computed per image over all its values:

- MAE = mean |p - t|; MSE = mean (p - t)^2;
- PSNR = 10 log10(data_range^2 / MSE) in dB (infinite for identical images);
- SSIM (Wang et al. 2004): local statistics under an 11x11 Gaussian window (sigma 1.5, weights
  summing to 1) over the positions where the window fits inside the image ('valid'), with the
  population (not sample) covariance, C1 = (0.01 L)^2, C2 = (0.03 L)^2 for L = data_range;
  SSIM is the mean of the SSIM map over those positions and over channels. This equals
  ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=L)``, which crops the same border before averaging.

SSIM is a fraction (the FADE paper reports it x 100). Inputs are not clipped.
"""

from __future__ import annotations

import math

import numpy as np

from ._common import (
    ArrayLike,
    ImageMeans,
    as_values,
    check_ndim,
    check_real,
    check_same_shape,
    correlate_valid,
    to_numpy,
)

__all__ = ["ReconstructionMeter", "mae", "mse", "psnr", "ssim", "ssim_window"]

SSIM_SIGMA = 1.5
SSIM_WINDOW = 11
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _pair(pred: ArrayLike, target: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Checked float64 images of one shape, [H, W] or [C, H, W]."""
    p, t = as_values(pred, "pred"), as_values(target, "target")
    check_ndim(p, (2, 3), "pred", "(H, W) or (C, H, W)")
    check_same_shape(p, t, "pred", "target")
    if p.size == 0:
        raise ValueError(f"pred: expected a non-empty image, got shape {p.shape}")
    return p, t


def _check_range(data_range: float) -> None:
    """Raise unless ``data_range`` is a positive finite number."""
    check_real(data_range, "data_range", 0.0)


def mae(pred: ArrayLike, target: ArrayLike) -> float:
    """Mean absolute error of one image, [H, W] or [C, H, W]."""
    p, t = _pair(pred, target)
    return float(np.abs(p - t).mean())


def mse(pred: ArrayLike, target: ArrayLike) -> float:
    """Mean squared error of one image, [H, W] or [C, H, W]."""
    p, t = _pair(pred, target)
    return float(((p - t) ** 2).mean())


def psnr(pred: ArrayLike, target: ArrayLike, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio 10 log10(data_range^2 / MSE) in dB; inf when MSE is 0."""
    _check_range(data_range)
    error = mse(pred, target)
    return math.inf if error == 0.0 else 10.0 * math.log10(data_range**2 / error)


def ssim_window(window: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """1-D Gaussian weights exp(-x^2 / (2 sigma^2)) on x = -(window//2)..window//2, summing to 1.

    Returns:
        float64 array[window].
    """
    x = np.arange(window, dtype=np.float64) - window // 2
    weights = np.exp(-(x**2) / (2.0 * sigma**2))
    return weights / weights.sum()


def ssim(pred: ArrayLike, target: ArrayLike, data_range: float = 1.0) -> float:
    """Mean structural similarity of one image, [H, W] or [C, H, W] with H, W >= 11.

    See the module docstring for the exact definition.
    """
    _check_range(data_range)
    p, t = _pair(pred, target)
    if min(p.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"pred: expected H and W >= {SSIM_WINDOW} for SSIM, got shape {p.shape}")
    weights = ssim_window()

    def local_mean(x: np.ndarray) -> np.ndarray:
        return correlate_valid(correlate_valid(x, weights, axis=-2), weights, axis=-1)

    mu_p, mu_t = local_mean(p), local_mean(t)
    var_p = local_mean(p * p) - mu_p**2
    var_t = local_mean(t * t) - mu_t**2
    cov = local_mean(p * t) - mu_p * mu_t
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    numerator = (2.0 * mu_p * mu_t + c1) * (2.0 * cov + c2)
    denominator = (mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2)
    return float((numerator / denominator).mean())


class ReconstructionMeter(ImageMeans):
    """Streaming PSNR, SSIM, MAE and MSE, each computed per image and averaged over images.

    Args:
        data_range: L, the value range of the images (1 for images in [0, 1]).

    Example:
        >>> meter = ReconstructionMeter()
        >>> meter.update(output, images)  # (B, C, H, W) each
        >>> meter.compute()  # {"psnr": ..., "ssim": ..., "mae": ..., "mse": ..., "images": B}
    """

    score_names = ("psnr", "ssim", "mae", "mse")

    def __init__(self, data_range: float = 1.0) -> None:
        _check_range(data_range)
        self.data_range = data_range
        self.reset()

    def update(self, pred: ArrayLike, target: ArrayLike) -> None:
        """Score a batch of images, arrays[B, C, H, W]."""
        p, t = to_numpy(pred, "pred"), to_numpy(target, "target")
        check_ndim(p, (4,), "pred", "(B, C, H, W)")
        check_same_shape(p, t, "pred", "target")
        scores = [
            {
                "psnr": psnr(pi, ti, self.data_range),
                "ssim": ssim(pi, ti, self.data_range),
                "mae": mae(pi, ti),
                "mse": mse(pi, ti),
            }
            for pi, ti in zip(p, t)
        ]
        self.add_images(scores)
