"""Shapes over real backgrounds, rendered with exact coverage: a region-sensitive segmentation task.

:class:`ShapeSegmentation` paints 1..k objects (ellipse, rectangle, triangle, five-pointed star,
cross; random size, aspect, rotation, position) over a jittered crop of a real photo or texture
(:func:`fade.data.backgrounds.random_background`). Each object is rendered by supersampling: its
coverage of a pixel is the share of ``supersample``² sub-pixel centres inside it, the image mixes
object and background by that coverage (anti-aliased edges, as a camera sees them), and a pixel is
labelled with the object that covers at least half of it. Stars and crosses bring sharp corners and
thin parts: fine boundaries for Boundary IoU.

- ``binary=True``: object (1) versus background (0), the analogue of the paper's Weizmann Horse
  toy (Table 2);
- ``binary=False``: 1 + the shape's index in :data:`SHAPES` (6 labels with background). Classes
  are drawn uniformly per object and every shape is sized by its area, so classes are balanced in
  objects and, in expectation, in pixels.

Objects of each kind are filled with their own pattern (:data:`PATTERNS`: flat, stripes, checker,
dots, grid lines; random period, orientation, phase) in two random colours, times a linear shading
(up to 20 %): like the stuff and thing classes of real scenes, a class is told by its appearance
and its shape, never by its colour, and labelling a region needs its whole extent. Sample
``i`` comes from its own generator seeded by ``(seed, split, SHAPES_TASK, i)``; ``"train"`` and
``"test"`` use disjoint regions of every background image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from .backgrounds import random_background
from ._checks import check_int, check_int_range, check_range, check_size
from .composite import normalize_image
from .fashion_mnist import check_split

__all__ = ["SHAPES", "PlacedShape", "ShapeSegmentation", "shape_classes", "shape_coverage"]

SHAPES: tuple[str, ...] = ("ellipse", "rectangle", "triangle", "star", "cross")
"""Object kinds; label 1 + index in the multi-class task."""
SHAPES_TASK = 2
"""Task code in the per-sample seed (the composite tasks use 0 and 1)."""
PATTERNS = {
    "ellipse": lambda u, v: torch.zeros_like(u + v),
    "rectangle": lambda u, v: (torch.sin(u) > 0).float() + 0 * v,
    "triangle": lambda u, v: ((torch.sin(u) > 0) ^ (torch.sin(v) > 0)).float(),
    "star": lambda u, v: ((torch.cos(u) + torch.cos(v)) > 1.0).float(),
    "cross": lambda u, v: ((torch.cos(u) > 0.7) | (torch.cos(v) > 0.7)).float(),
}
"""Fill pattern of each kind in [0, 1] from two phase maps (u, v): flat, stripes, checker, dots, grid."""
_STAR_INNER = 0.45
_CROSS_WIDTH = 0.3
_SPLIT_CODES = {"train": 0, "test": 1}


def shape_classes(binary: bool) -> tuple[str, ...]:
    """Label names of the task: background first."""
    return ("background", "object") if binary else ("background",) + SHAPES


def _polygon_inside(u: np.ndarray, v: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Even-odd rule: whether each point (u, v) lies inside the closed polygon ``corners`` (n, 2)."""
    inside = np.zeros(u.shape, dtype=bool)
    for (u0, v0), (u1, v1) in zip(corners, np.roll(corners, -1, axis=0)):
        crosses = (v0 > v) != (v1 > v)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = u0 + (v - v0) * (u1 - u0) / (v1 - v0)
        inside ^= crosses & (u < at)
    return inside


def _inside(kind: str, u: np.ndarray, v: np.ndarray, aspect: float) -> np.ndarray:
    """Whether local points (u, v), in units of the shape's radius, are inside shape ``kind``."""
    if kind == "ellipse":
        return u**2 + (v / aspect) ** 2 <= 1.0
    if kind == "rectangle":
        half = 1.0 / math.hypot(1.0, aspect)
        return (np.abs(u) <= half) & (np.abs(v) <= aspect * half)
    if kind == "triangle":
        angles = np.pi / 2 + 2 * np.pi * np.arange(3) / 3
        return _polygon_inside(u, v, np.stack([np.cos(angles), np.sin(angles)], 1))
    if kind == "star":
        angles = np.pi / 2 + np.pi * np.arange(10) / 5
        radii = np.where(np.arange(10) % 2 == 0, 1.0, _STAR_INNER)
        return _polygon_inside(u, v, np.stack([radii * np.cos(angles), radii * np.sin(angles)], 1))
    if kind == "cross":
        arm, width = 1.0 / math.sqrt(1 + _CROSS_WIDTH**2), _CROSS_WIDTH / math.sqrt(1 + _CROSS_WIDTH**2)
        return ((np.abs(u) <= arm) & (np.abs(v) <= width)) | ((np.abs(u) <= width) & (np.abs(v) <= arm))
    raise ValueError(f"kind: expected one of {', '.join(SHAPES)}, got {kind!r}")


def _unit_area(kind: str, aspect: float) -> float:
    """Area of shape ``kind`` of radius 1 (the factor on radius² of its area)."""
    if kind == "ellipse":
        return math.pi * aspect
    if kind == "rectangle":
        return 4.0 * aspect / (1.0 + aspect**2)
    if kind == "triangle":
        return 3.0 * math.sqrt(3.0) / 4.0
    if kind == "star":
        return 5.0 * _STAR_INNER * math.sin(math.pi / 5)
    arm, width = 1.0 / math.sqrt(1 + _CROSS_WIDTH**2), _CROSS_WIDTH / math.sqrt(1 + _CROSS_WIDTH**2)
    return 8.0 * arm * width - 4.0 * width**2


@dataclass(frozen=True)
class PlacedShape:
    """One object: kind, centre (y, x) in pixels, radius in pixels, aspect in (0, 1], rotation in radians."""

    kind: str
    centre_y: float
    centre_x: float
    radius: float
    aspect: float
    angle: float


def shape_coverage(shape: PlacedShape, size: tuple[int, int], supersample: int) -> Tensor:
    """Share of each pixel covered by ``shape``: the mean over ``supersample``² sub-pixel centres.

    Pixel (i, j) spans [i, i + 1) x [j, j + 1); its sub-pixel centres sit at i + (a + 0.5) / S.

    Returns:
        Tensor[H, W] float32 in [0, 1], multiples of 1 / S².
    """
    height, width = size
    s = supersample
    reach = shape.radius + 1.0
    top, bottom = max(0, math.floor(shape.centre_y - reach)), min(height, math.ceil(shape.centre_y + reach))
    left, right = max(0, math.floor(shape.centre_x - reach)), min(width, math.ceil(shape.centre_x + reach))
    coverage = torch.zeros(size)
    if top >= bottom or left >= right:
        return coverage
    ys = top + (np.arange((bottom - top) * s) + 0.5) / s - shape.centre_y
    xs = left + (np.arange((right - left) * s) + 0.5) / s - shape.centre_x
    y, x = np.meshgrid(ys, xs, indexing="ij")
    cos, sin = math.cos(shape.angle), math.sin(shape.angle)
    u = (cos * x + sin * y) / shape.radius
    v = (-sin * x + cos * y) / shape.radius
    inside = _inside(shape.kind, u, v, shape.aspect).astype(np.float32)
    block = inside.reshape(bottom - top, s, right - left, s).mean(axis=(1, 3))
    coverage[top:bottom, left:right] = torch.from_numpy(block)
    return coverage


class ShapeSegmentation(Dataset):
    """Shapes over real backgrounds with exact per-pixel labels (see the module docstring).

    Args:
        split: ``"train"`` or ``"test"``.
        size: (H, W) of the samples; non-square sizes work.
        binary: object-vs-background labels instead of one label per shape.
        num_objects: (min, max) objects per image, inclusive.
        area: (min, max) area of an object as a fraction of H * W.
        supersample: S, sub-pixels per side for the coverage.
        seed: non-negative integer. length: number of samples.

    Shape:
        item: {"image": Tensor[3, H, W] float32 (ImageNet-normalised), "label": Tensor[H, W] int64}.
    """

    def __init__(
        self,
        split: str = "train",
        size: tuple[int, int] = (64, 64),
        binary: bool = False,
        num_objects: tuple[int, int] = (1, 3),
        area: tuple[float, float] = (0.03, 0.12),
        supersample: int = 4,
        seed: int = 0,
        length: int = 10_000,
    ) -> None:
        self.split = check_split(split)
        self.size = check_size("size", size)
        if not isinstance(binary, bool):
            raise TypeError(f"binary: expected a bool, got {type(binary).__name__} {binary!r}")
        self.binary = binary
        self.num_objects = check_int_range("num_objects", num_objects, 1)
        self.area = check_range("area", area, 0.0, 1.0)
        if self.area[0] <= 0:
            raise ValueError(f"area: expected a smallest area > 0, got {area!r}")
        self.supersample = check_int("supersample", supersample, 1)
        self.seed = check_int("seed", seed, 0)
        self.length = check_int("length", length, 1)
        self.classes = shape_classes(binary)

    def __len__(self) -> int:
        return self.length

    def generator(self, index: int) -> np.random.Generator:
        """The generator of sample ``index``, seeded by (seed, split, SHAPES_TASK, index) only."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < self.length:
            raise IndexError(f"index: expected an integer in [0, {self.length}), got {index!r}")
        return np.random.default_rng([self.seed, _SPLIT_CODES[self.split], SHAPES_TASK, int(index)])

    def _place(self, rng: np.random.Generator) -> PlacedShape:
        """A random object whose area is a uniform fraction of the canvas and whose centre is on it."""
        height, width = self.size
        kind = SHAPES[int(rng.integers(len(SHAPES)))]
        aspect = float(rng.uniform(0.5, 1.0))
        radius = math.sqrt(rng.uniform(*self.area) * height * width / _unit_area(kind, aspect))
        margin_y, margin_x = min(radius * 0.6, height / 2), min(radius * 0.6, width / 2)
        centre_y = float(rng.uniform(margin_y, height - margin_y))
        centre_x = float(rng.uniform(margin_x, width - margin_x))
        return PlacedShape(kind, centre_y, centre_x, radius, aspect, float(rng.uniform(0.0, 2 * math.pi)))

    def _fill(self, rng: np.random.Generator, kind: str) -> Tensor:
        """An object's paint, Tensor[3, H, W]: two random colours mixed by the pattern of its kind
        (:data:`PATTERNS`; random period 3-6 px, orientation and phase), times a linear shading."""
        height, width = self.size
        first, second = (torch.from_numpy(rng.uniform(0.05, 0.95, size=3)).float().view(3, 1, 1) for _ in range(2))
        angle, period = rng.uniform(0, np.pi), rng.uniform(3.0, 6.0)
        phase = rng.uniform(0, 2 * np.pi, size=2)
        ys = torch.arange(height, dtype=torch.float32).view(height, 1)
        xs = torch.arange(width, dtype=torch.float32).view(1, width)
        u = (math.cos(angle) * xs + math.sin(angle) * ys) * 2 * math.pi / period + phase[0]
        v = (-math.sin(angle) * xs + math.cos(angle) * ys) * 2 * math.pi / period + phase[1]
        pattern = PATTERNS[kind](u, v)
        direction = rng.normal(size=2)
        shading = 1.0 + 0.2 * (float(direction[0]) * (ys / height - 0.5) + float(direction[1]) * (xs / width - 0.5))
        return ((first + (second - first) * pattern) * shading).clamp_(0.0, 1.0)

    def layout(self, index: int) -> tuple[Tensor, list[tuple[PlacedShape, Tensor]]]:
        """The background (Tensor[3, H, W]) and the objects with their paint, in painting order."""
        rng = self.generator(index)
        background = random_background(rng, self.split, self.size)
        count = int(rng.integers(self.num_objects[0], self.num_objects[1] + 1))
        return background, [(shape, self._fill(rng, shape.kind)) for shape in (self._place(rng) for _ in range(count))]

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        image, objects = self.layout(index)
        label = torch.zeros(self.size, dtype=torch.int64)
        for shape, paint in objects:
            coverage = shape_coverage(shape, self.size, self.supersample)
            image = coverage * paint + (1.0 - coverage) * image
            value = 1 if self.binary else 1 + SHAPES.index(shape.kind)
            label[coverage >= 0.5] = value
        return {"image": normalize_image(image), "label": label}
