"""Matting errors with the Composition-1K definitions (Xu et al. 2017, their MATLAB evaluation code).

Conventions:

- alpha mattes are arrays[H, W] of values in [0, 1] (divide 8-bit mattes by 255 first);
- the trimap selects the pixels that are scored, the *unknown* region: an integer trimap
  (values {0, 128, 255}) scores ``trimap == 128``, a float trimap (values {0, 0.5, 1}) scores
  ``trimap == 0.5``, and a bool array is taken as the scored mask itself (all True: whole image);
- Grad and Conn are computed on the whole image, then summed over the unknown region only.

With U the unknown region, n = |U|, p the predicted and g the ground-truth alpha:

- SAD  = sum_U |p - g| / 1000
- MSE  = sum_U (p - g)^2 / n
- Grad = sum_U (|grad p'| - |grad g'|)^2 / 1000, where p' and g' are p and g each min-max
  normalised over the whole image as MATLAB's ``mat2gray`` does (:func:`mat2gray`), and the
  gradients are filtered with first-order Gaussian-derivative kernels (sigma 1.4;
  :func:`gaussian_derivative_kernels`) by 2-D convolution with a replicate border;
- Conn = sum_U |phi(p) - phi(g)| / 1000 with thresholds t_i = i/10, i = 0..10: for i >= 1,
  Omega_i = the largest 4-connected component of (p >= t_i) & (g >= t_i); l(x) = t_{i-1} for the
  first i with x not in Omega_i (l = 1 if there is none); phi(a) = 1 - d * [d >= 0.15] with
  d = a - l.

The division by 1000 is the reporting scale of the Composition-1K tables (SAD 31.10 means a
per-image sum of 31,100). The ``mat2gray`` normalisation of Grad is the published MATLAB script's
(``compute_gradient_loss.m``); it is the identity for mattes spanning [0, 1] but changes Grad on
mattes that do not, e.g. semi-transparent ones. ``normalize=False`` skips it, as several Python
ports of the script do (for numbers comparable with theirs); the published one is the default.
Values are computed in float64 (the reference uses single precision).
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
    check_spatial,
    correlate_valid,
    to_numpy,
)
from .components import largest_component

__all__ = [
    "MattingMeter",
    "connected_level",
    "connectivity_error",
    "gaussian_derivative_kernels",
    "gaussian_gradient",
    "gradient_error",
    "mat2gray",
    "mse_error",
    "sad_error",
    "unknown_region",
]

REPORT_SCALE = 1000.0
"""SAD, Grad and Conn are divided by this, as in the Composition-1K tables."""
UNKNOWN_INT = 128
UNKNOWN_FLOAT = 0.5
_TRIMAP_INT = (0, 128, 255)
_TRIMAP_FLOAT = (0.0, 0.5, 1.0)
_KERNEL_EPSILON = 1e-2
"""Relative height at which the Gaussian-derivative kernel is cut (reference: 1e-2)."""
PHI_CUT = 0.15
"""Conn ignores alpha excesses over the last connected level smaller than this."""


def unknown_region(trimap: ArrayLike) -> np.ndarray:
    """The scored pixels of a trimap.

    Args:
        trimap: array[H, W]; integer with values in {0, 128, 255} (unknown = 128), float with
            values in {0, 0.5, 1} (unknown = 0.5), or bool (True = scored).

    Returns:
        bool array[H, W].
    """
    t = to_numpy(trimap, "trimap")
    check_ndim(t, (2,), "trimap", "2-D (H, W)")
    check_spatial(t, "trimap")
    if t.dtype == np.bool_:
        return t.copy()
    if t.dtype.kind in "iu":
        allowed, unknown = _TRIMAP_INT, UNKNOWN_INT
    elif t.dtype.kind == "f":
        allowed, unknown = _TRIMAP_FLOAT, UNKNOWN_FLOAT
    else:
        raise TypeError(f"trimap: expected an integer, float or bool array, got dtype {t.dtype}")
    bad = ~np.isin(t, allowed)
    if bad.any():
        raise ValueError(
            f"trimap: expected values in {allowed} for dtype {t.dtype}, got {t[bad][0].item()!r} "
            f"at {int(bad.sum())} pixel(s)"
        )
    return t == unknown


def _alpha(x: ArrayLike, name: str) -> np.ndarray:
    """``x`` as a float64 array[H, W] with values in [0, 1]."""
    a = as_values(x, name)
    check_ndim(a, (2,), name, "2-D (H, W)")
    check_spatial(a, name)
    if a.min() < 0.0 or a.max() > 1.0:
        raise ValueError(
            f"{name}: expected alpha values in [0, 1], got values in [{a.min():g}, {a.max():g}] "
            "(divide 8-bit mattes by 255)"
        )
    return a


def _inputs(pred: ArrayLike, gt: ArrayLike, trimap: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Checked (pred, gt, unknown mask), all of one shape [H, W]."""
    p, g, u = _alpha(pred, "pred"), _alpha(gt, "gt"), unknown_region(trimap)
    check_same_shape(p, g, "pred", "gt")
    check_same_shape(p, u, "pred", "trimap")
    return p, g, u


def sad_error(pred: ArrayLike, gt: ArrayLike, trimap: ArrayLike) -> float:
    """Sum of absolute differences over the unknown region, / 1000.

    Args:
        pred, gt: alpha arrays[H, W] in [0, 1]. trimap: see :func:`unknown_region`.
    """
    p, g, u = _inputs(pred, gt, trimap)
    return float(np.abs(p - g)[u].sum() / REPORT_SCALE)


def mse_error(pred: ArrayLike, gt: ArrayLike, trimap: ArrayLike) -> float:
    """Mean squared difference over the unknown region (no / 1000).

    Raises:
        ValueError: when the trimap has no unknown pixel.
    """
    p, g, u = _inputs(pred, gt, trimap)
    count = int(u.sum())
    if count == 0:
        raise ValueError("trimap: expected at least one unknown pixel for MSE, got none")
    return float(((p - g)[u] ** 2).sum() / count)


# The smallest sigma whose derivative kernel is not zero in float64: exp(-1 / (2 sigma^2)) > 0.
MIN_SIGMA = 0.026


def gaussian_derivative_kernels(sigma: float = 1.4) -> tuple[np.ndarray, np.ndarray]:
    """The two 1-D factors of the Composition-1K Gaussian-derivative kernel.

    Half-size r = ceil(sigma * sqrt(-2 ln(sqrt(2 pi) * sigma * 0.01))); on x = -r..r the factors
    are the Gaussian G(x) = exp(-x^2 / (2 sigma^2)) / (sigma sqrt(2 pi)) and its derivative
    -x G(x) / sigma^2, each scaled to unit L2 norm, so that their outer product (the 2-D kernel
    ``h[i, j] = G(i) G'(j)``) has unit L2 norm, as the reference normalises it.

    Returns:
        (gauss, derivative): float64 arrays[2r + 1].
    """
    sigma = check_real(sigma, "sigma", 0.0)
    if sigma < MIN_SIGMA:
        raise ValueError(f"sigma: expected at least {MIN_SIGMA} (G'(1) underflows to zero below), got {sigma!r}")
    cut = math.sqrt(2.0 * math.pi) * sigma * _KERNEL_EPSILON
    if cut >= 1.0:
        largest = 1.0 / (math.sqrt(2.0 * math.pi) * _KERNEL_EPSILON)
        raise ValueError(f"sigma: expected sigma < {largest:.4g}, got {sigma!r}")
    half = math.ceil(sigma * math.sqrt(-2.0 * math.log(cut)))
    x = np.arange(-half, half + 1, dtype=np.float64)
    # G and G' up to constant factors (the unit norm removes them), G' scaled to peak 1 so that the
    # squares in its norm do not underflow for a small sigma.
    gauss = np.exp(-(x**2) / (2.0 * sigma**2))
    derivative = -x * gauss
    derivative /= np.abs(derivative).max()
    return gauss / np.linalg.norm(gauss), derivative / np.linalg.norm(derivative)


def gaussian_gradient(image: ArrayLike, sigma: float = 1.4) -> tuple[np.ndarray, np.ndarray]:
    """Gradient of an image by 2-D convolution with Gaussian-derivative kernels, replicate border.

    ``gx`` is the convolution with ``h[i, j] = G(i) G'(j)`` (derivative along columns), ``gy``
    with its transpose; both are computed separably.

    Args:
        image: array[H, W].

    Returns:
        (gx, gy): float64 arrays[H, W].
    """
    img = as_values(image, "image")
    check_ndim(img, (2,), "image", "2-D (H, W)")
    check_spatial(img, "image")
    gauss, derivative = gaussian_derivative_kernels(sigma)
    half = gauss.shape[0] // 2
    padded = np.pad(img, half, mode="edge")
    # Convolution flips the kernel: the Gaussian is symmetric, its derivative antisymmetric.
    flipped = derivative[::-1]
    smooth_rows = correlate_valid(padded, gauss, axis=0)
    smooth_cols = correlate_valid(padded, gauss, axis=1)
    gx = correlate_valid(smooth_rows, flipped, axis=1)
    gy = correlate_valid(smooth_cols, flipped, axis=0)
    return gx, gy


def mat2gray(image: ArrayLike) -> np.ndarray:
    """``(image - min) / (max - min)`` over the whole image, as MATLAB's ``mat2gray``; zeros if constant.

    (For a constant image only the gradient matters here, and it is zero whatever the value.)

    Args:
        image: real array[H, W] (numpy or torch), finite.

    Returns:
        float64 array[H, W] with values in [0, 1].
    """
    image = as_values(image, "image")
    check_ndim(image, (2,), "image", "2-D (H, W)")
    check_spatial(image, "image")
    low, high = image.min(), image.max()
    if high == low:
        return np.zeros_like(image)
    return (image - low) / (high - low)


def gradient_error(
    pred: ArrayLike, gt: ArrayLike, trimap: ArrayLike, sigma: float = 1.4, normalize: bool = True
) -> float:
    """Sum over the unknown region of (|grad p'| - |grad g'|)^2, / 1000 (see the module docstring).

    Args:
        pred, gt: alpha arrays[H, W] in [0, 1]. trimap: see :func:`unknown_region`.
        sigma: standard deviation of the Gaussian-derivative filters.
        normalize: min-max normalise both mattes first (:func:`mat2gray`), as the published script
            does; False compares the gradients of the mattes as given.
    """
    _check_flag(normalize, "normalize")
    p, g, u = _inputs(pred, gt, trimap)
    if normalize:
        p, g = mat2gray(p), mat2gray(g)
    magnitude_p = np.hypot(*gaussian_gradient(p, sigma))
    magnitude_g = np.hypot(*gaussian_gradient(g, sigma))
    return float(((magnitude_p - magnitude_g)[u] ** 2).sum() / REPORT_SCALE)


def _check_flag(value: object, name: str) -> None:
    """TypeError unless ``value`` is a bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {type(value).__name__} {value!r}")


# The most thresholds Conn takes (each labels the image's components once): step >= 1 / MAX_THRESHOLDS.
MAX_THRESHOLDS = 1000


def _threshold_count(step: float) -> int:
    """n with n * step == 1, for thresholds k / n, k = 0..n (n at most ``MAX_THRESHOLDS``)."""
    step = check_real(step, "step", 0.0, 1.0)
    if step < 1.0 / MAX_THRESHOLDS:
        raise ValueError(f"step: expected a step of at least 1/{MAX_THRESHOLDS} (one labelling each), got {step!r}")
    count = round(1.0 / step)
    if not math.isclose(count * step, 1.0):
        raise ValueError(f"step: expected 1/step to be a positive integer, got step={step!r}")
    return count


def connected_level(pred: np.ndarray, gt: np.ndarray, step: float = 0.1) -> np.ndarray:
    """The Conn level l: the last threshold at which each pixel was in the largest component.

    Args:
        pred, gt: float64 alpha arrays[H, W] in [0, 1].

    Returns:
        float64 array[H, W] of thresholds in {0, step, ..., 1}.
    """
    count = _threshold_count(step)
    thresholds = np.arange(count + 1) / count
    level = np.full(pred.shape, -1.0)
    for previous, threshold in zip(thresholds[:-1], thresholds[1:]):
        omega = largest_component((pred >= threshold) & (gt >= threshold))
        level[(level < 0.0) & ~omega] = previous
    level[level < 0.0] = 1.0
    return level


def _phi(alpha: np.ndarray, level: np.ndarray) -> np.ndarray:
    """phi = 1 - d * [d >= 0.15], d = alpha - level."""
    d = alpha - level
    return 1.0 - d * (d >= PHI_CUT)


def connectivity_error(pred: ArrayLike, gt: ArrayLike, trimap: ArrayLike, step: float = 0.1) -> float:
    """Sum over the unknown region of |phi(p) - phi(g)|, / 1000 (see the module docstring).

    Args:
        pred, gt: alpha arrays[H, W] in [0, 1]. trimap: see :func:`unknown_region`.
        step: threshold step; 1/step must be an integer of at most ``MAX_THRESHOLDS`` (1000).
    """
    p, g, u = _inputs(pred, gt, trimap)
    level = connected_level(p, g, step)
    return float(np.abs(_phi(p, level) - _phi(g, level))[u].sum() / REPORT_SCALE)


class MattingMeter(ImageMeans):
    """Streaming Composition-1K summary: per-image SAD, MSE, Grad and Conn, averaged over images.

    Args:
        sigma: Gaussian-derivative sigma of Grad. step: threshold step of Conn.
        normalize: Grad on :func:`mat2gray`-normalised mattes (the published script; default).

    Example:
        >>> meter = MattingMeter()
        >>> meter.update(pred, gt, trimap)  # (B, H, W) or (B, 1, H, W) each
        >>> meter.compute()  # {"sad": ..., "mse": ..., "grad": ..., "conn": ..., "images": B}
    """

    score_names = ("sad", "mse", "grad", "conn")

    def __init__(self, sigma: float = 1.4, step: float = 0.1, normalize: bool = True) -> None:
        gaussian_derivative_kernels(sigma)
        _threshold_count(step)
        _check_flag(normalize, "normalize")
        self.sigma, self.step, self.normalize = sigma, step, normalize
        self.reset()

    def update(self, pred: ArrayLike, gt: ArrayLike, trimap: ArrayLike) -> None:
        """Score a batch of images.

        Args:
            pred, gt: alpha arrays[B, H, W] or [B, 1, H, W] in [0, 1].
            trimap: array of the same shape (see :func:`unknown_region` for its values).
        """
        batch = [to_numpy(x, name) for x, name in ((pred, "pred"), (gt, "gt"), (trimap, "trimap"))]
        for a, name in zip(batch, ("pred", "gt", "trimap")):
            check_ndim(a, (3, 4), name, "(B, H, W) or (B, 1, H, W)")
            if a.ndim == 4 and a.shape[1] != 1:
                raise ValueError(f"{name}: expected one channel in (B, 1, H, W), got shape {a.shape}")
        p, g, t = (a.reshape(a.shape[0], *a.shape[-2:]) for a in batch)
        check_same_shape(p, g, "pred", "gt")
        check_same_shape(p, t, "pred", "trimap")
        scores = [
            {
                "sad": sad_error(pi, gi, ti),
                "mse": mse_error(pi, gi, ti),
                "grad": gradient_error(pi, gi, ti, self.sigma, self.normalize),
                "conn": connectivity_error(pi, gi, ti, self.step),
            }
            for pi, gi, ti in zip(p, g, t)
        ]
        self.add_images(scores)
