"""Synthetic matting like Composition-1K: opaque objects with soft bands and hair, exact alpha by supersampling.

:class:`HairMatting` renders one object per sample:

- a body, a random smooth star-shaped blob ``rho <= r(theta) = R (1 + sum_k a_k cos(k theta + phi_k))``,
  opaque inside; along its boundary a band of fractional alpha whose width varies with the angle
  from 0 (a hard, anti-aliased edge) to ``soft_width`` pixels (defocus- or motion-like soft edges);
- hair- or fur-like strands growing out of the boundary: curved (quadratic Bezier) strokes of width
  ``strand_width`` pixels and random opacity, rendered with exact coverage by supersampling;
- alpha = 1 - (1 - body) * prod_i (1 - opacity_i * coverage_i): each pixel's value is the mean over
  ``supersample``² sub-pixel centres, so thin strands and edges carry their true fractional coverage.

``fg`` and ``bg`` are jittered crops of two different real images of
:func:`fade.data.backgrounds.random_background` (20 photos and textures, random crops, flips,
quarter turns, colour jitter), ``image = alpha fg + (1 - alpha) bg``. The trimap is Composition-1K's:
unknown = dilate(alpha > 0) minus erode(alpha == 1) (:func:`fade.data.trimap_from_alpha`), with a
radius of ``trimap_band`` times min(H, W) (at least one pixel), so the band scales with the image.
Lengths (object radius, strand length) are fractions of min(H, W) as well.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from .backgrounds import random_background
from ._checks import check_int, check_range, check_size
from .composite import TRIMAP_FOREGROUND, normalize_image, trimap_from_alpha
from .fashion_mnist import check_split

__all__ = ["HairMatting", "blob_alpha", "strand_coverage", "trimap_radius"]

MATTING_TASK = 3
"""Task code in the per-sample seed (composite tasks 0 and 1, shapes 2)."""
_SPLIT_CODES = {"train": 0, "test": 1}
_HARMONICS = 4
_STRAND_SEGMENTS = 8


def trimap_radius(size: tuple[int, int], fraction: float) -> int:
    """The trimap's dilation / erosion radius for an image of ``size``: round(fraction * min(H, W)), >= 1."""
    return max(1, round(fraction * min(size)))


def _subpixel_grid(top: int, bottom: int, left: int, right: int, s: int) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel centres (y, x) of the pixel rows top..bottom-1 and columns left..right-1, each (h*s, w*s)."""
    ys = top + (np.arange((bottom - top) * s) + 0.5) / s
    xs = left + (np.arange((right - left) * s) + 0.5) / s
    return np.meshgrid(ys, xs, indexing="ij")


def _pixel_mean(values: np.ndarray, s: int) -> np.ndarray:
    """Mean over each s x s block: (h*s, w*s) -> (h, w)."""
    h, w = values.shape[0] // s, values.shape[1] // s
    return values.reshape(h, s, w, s).mean(axis=(1, 3))


def blob_alpha(
    size: tuple[int, int],
    centre: tuple[float, float],
    radius: float,
    harmonics: np.ndarray,
    soft: tuple[float, float, float],
    supersample: int,
) -> np.ndarray:
    """Alpha of a star-shaped blob with a soft band, averaged over ``supersample``² sub-pixels.

    At a sub-pixel at distance rho and angle theta from ``centre``, with boundary
    r(theta) = radius * (1 + sum_k a_k cos(k theta + phi_k)) (``harmonics`` rows (k, a_k, phi_k)) and band
    width w(theta) = w_max * max(0, cos(theta - theta_0))^p (``soft`` = (w_max, theta_0, p)), the value is
    clip((r - rho) / w + 1/2, 0, 1), or the step [rho <= r] where w < 1e-3.

    Returns:
        (H, W) float64 in [0, 1].
    """
    y, x = _subpixel_grid(0, size[0], 0, size[1], supersample)
    dy, dx = y - centre[0], x - centre[1]
    rho, theta = np.hypot(dy, dx), np.arctan2(dy, dx)
    boundary = radius * (1.0 + sum(a * np.cos(k * theta + phi) for k, a, phi in harmonics))
    width_max, theta0, power = soft
    width = width_max * np.maximum(0.0, np.cos(theta - theta0)) ** power
    hard = width < 1e-3
    ramp = np.clip((boundary - rho) / np.where(hard, 1.0, width) + 0.5, 0.0, 1.0)
    return _pixel_mean(np.where(hard, (rho <= boundary).astype(np.float64), ramp), supersample)


def strand_coverage(
    size: tuple[int, int], control: np.ndarray, width: float, supersample: int
) -> tuple[np.ndarray, tuple[int, int]]:
    """Coverage of a quadratic Bezier stroke of ``width`` pixels with control points ``control`` (3, 2) as (y, x).

    The curve is split into straight segments; a sub-pixel is covered when its distance to the
    nearest segment is at most width / 2. Only the stroke's bounding box is rendered.

    Returns:
        (coverage (h, w) float64 in [0, 1], (top, left) of that box in the image); an empty box off the image.
    """
    t = np.linspace(0.0, 1.0, _STRAND_SEGMENTS + 1)[:, None]
    points = (1 - t) ** 2 * control[0] + 2 * (1 - t) * t * control[1] + t**2 * control[2]
    reach = width / 2 + 1.0
    top = max(0, math.floor(points[:, 0].min() - reach))
    bottom = min(size[0], math.ceil(points[:, 0].max() + reach))
    left = max(0, math.floor(points[:, 1].min() - reach))
    right = min(size[1], math.ceil(points[:, 1].max() + reach))
    if top >= bottom or left >= right:
        return np.zeros((0, 0)), (0, 0)
    y, x = _subpixel_grid(top, bottom, left, right, supersample)
    nearest = np.full(y.shape, np.inf)
    for (y0, x0), (y1, x1) in zip(points[:-1], points[1:]):
        dy, dx = y1 - y0, x1 - x0
        along = np.clip(((y - y0) * dy + (x - x0) * dx) / max(dy * dy + dx * dx, 1e-12), 0.0, 1.0)
        nearest = np.minimum(nearest, np.hypot(y - (y0 + along * dy), x - (x0 + along * dx)))
    return _pixel_mean((nearest <= width / 2).astype(np.float64), supersample), (top, left)


class HairMatting(Dataset):
    """Objects with opaque interiors, soft bands and hair over real images (see the module docstring).

    Args:
        split: ``"train"`` or ``"test"``.
        size: (H, W); non-square sizes work.
        radius: (min, max) mean radius of the body, fraction of min(H, W).
        soft_width: (min, max) widest soft band, in pixels.
        strands: (min, max) number of strands.
        strand_length: (min, max) strand length, fraction of min(H, W).
        strand_width: (min, max) strand width, in pixels.
        trimap_band: (min, max) trimap radius, fraction of min(H, W) (:func:`trimap_radius`).
        supersample: sub-pixels per side.
        seed: non-negative integer. length: number of samples.

    Shape:
        item: {"input": Tensor[4, H, W] (normalised RGB + trimap / 255), "image": Tensor[3, H, W] normalised,
        "trimap": Tensor[1, H, W] uint8 in {0, 128, 255}, "alpha": Tensor[1, H, W] in [0, 1],
        "fg", "bg": Tensor[3, H, W] in [0, 1]}.
    """

    def __init__(
        self,
        split: str = "train",
        size: tuple[int, int] = (64, 64),
        radius: tuple[float, float] = (0.18, 0.3),
        soft_width: tuple[float, float] = (0.0, 3.0),
        strands: tuple[int, int] = (10, 40),
        strand_length: tuple[float, float] = (0.05, 0.2),
        strand_width: tuple[float, float] = (0.3, 1.2),
        trimap_band: tuple[float, float] = (0.01, 0.03),
        supersample: int = 5,
        seed: int = 0,
        length: int = 10_000,
    ) -> None:
        self.split = check_split(split)
        self.size = check_size("size", size)
        self.radius = check_range("radius", radius, 0.0, 1.0)
        self.soft_width = check_range("soft_width", soft_width, 0.0, math.inf)
        if not (isinstance(strands, (tuple, list)) and len(strands) == 2 and 0 <= strands[0] <= strands[1]):
            raise ValueError(f"strands: expected integers (min, max) with 0 <= min <= max, got {strands!r}")
        self.strands = (int(strands[0]), int(strands[1]))
        self.strand_length = check_range("strand_length", strand_length, 0.0, 1.0)
        self.strand_width = check_range("strand_width", strand_width, 0.0, math.inf)
        if self.strand_width[0] <= 0 or self.radius[0] <= 0:
            raise ValueError(f"radius, strand_width: expected sizes > 0, got {radius!r}, {strand_width!r}")
        self.trimap_band = check_range("trimap_band", trimap_band, 0.0, 1.0)
        self.supersample = check_int("supersample", supersample, 1)
        self.seed = check_int("seed", seed, 0)
        self.length = check_int("length", length, 1)

    def __len__(self) -> int:
        return self.length

    def generator(self, index: int) -> np.random.Generator:
        """The generator of sample ``index``, seeded by (seed, split, MATTING_TASK, index) only."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < self.length:
            raise IndexError(f"index: expected an integer in [0, {self.length}), got {index!r}")
        return np.random.default_rng([self.seed, _SPLIT_CODES[self.split], MATTING_TASK, int(index)])

    def render_alpha(self, rng: np.random.Generator) -> np.ndarray:
        """The alpha matte of one object, (H, W) float64 in [0, 1]."""
        height, width = self.size
        side = min(height, width)
        radius = rng.uniform(*self.radius) * side
        centre = (height / 2 + rng.uniform(-0.15, 0.15) * height, width / 2 + rng.uniform(-0.15, 0.15) * width)
        k = np.arange(2, 2 + _HARMONICS)
        harmonics = np.stack([k, rng.uniform(0.0, 0.12, _HARMONICS), rng.uniform(0, 2 * np.pi, _HARMONICS)], 1)
        soft = (rng.uniform(*self.soft_width), rng.uniform(-np.pi, np.pi), rng.uniform(1.0, 4.0))
        transparency = 1.0 - blob_alpha(self.size, centre, radius, harmonics, soft, self.supersample)
        hair_direction, hair_spread = rng.uniform(-np.pi, np.pi), rng.uniform(0.5, np.pi)
        for _ in range(int(rng.integers(self.strands[0], self.strands[1] + 1))):
            theta = hair_direction + rng.uniform(-hair_spread, hair_spread)
            edge = radius * (1.0 + sum(a * np.cos(k * theta + phi) for k, a, phi in harmonics)) - 1.0
            direction = theta + rng.uniform(-0.6, 0.6)
            length = rng.uniform(*self.strand_length) * side
            start = np.array([centre[0] + edge * np.sin(theta), centre[1] + edge * np.cos(theta)])
            step = np.array([np.sin(direction), np.cos(direction)]) * length
            bend = np.array([-step[1], step[0]]) * rng.uniform(-0.4, 0.4)
            control = np.stack([start, start + step / 2 + bend, start + step])
            width = rng.uniform(*self.strand_width)
            coverage, (top, left) = strand_coverage(self.size, control, width, self.supersample)
            h, w = coverage.shape
            transparency[top : top + h, left : left + w] *= 1.0 - rng.uniform(0.5, 1.0) * coverage
        return 1.0 - transparency

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        rng = self.generator(index)
        alpha = torch.from_numpy(self.render_alpha(rng)).float()[None].clamp_(0.0, 1.0)
        foreground = random_background(rng, self.split, self.size)
        background = random_background(rng, self.split, self.size)
        composite = alpha * foreground + (1.0 - alpha) * background
        image = normalize_image(composite)
        trimap = trimap_from_alpha(alpha, trimap_radius(self.size, rng.uniform(*self.trimap_band)))
        return {
            "input": torch.cat([image, trimap.float() / TRIMAP_FOREGROUND]),
            "image": image,
            "trimap": trimap,
            "alpha": alpha,
            "fg": foreground,
            "bg": background,
        }
