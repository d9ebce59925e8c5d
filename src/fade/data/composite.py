"""Two composite tasks built from real Fashion-MNIST items and real photos, deterministic from a seed.

- :class:`CompositeSegmentation` (region-sensitive): 1..k items at several scales and positions on
  a photo crop; per-pixel labels 0 = background, 1 + class for the items (11 classes).
- :class:`CompositeMatting` (detail-sensitive): one item's grey levels are the alpha matte of a
  foreground photo crop composited over a different background photo crop, with a
  Composition-1K-style trimap made by dilating / eroding the alpha.

Sample ``i`` is drawn from its own generator seeded by ``(seed, split, task, i)``, so it does not
depend on the order of access or on DataLoader workers. The ``"train"`` split takes its items from
the Fashion-MNIST training set and its crops from the train region of each photo; ``"test"`` uses
the Fashion-MNIST test set and the disjoint test region (see :mod:`fade.data.photos`).

Images are normalised with the ImageNet mean / std (:data:`IMAGENET_MEAN`, :data:`IMAGENET_STD`),
the usual input of ImageNet-pretrained encoders.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from ._checks import check_float_tensor, check_index, check_int, check_int_range, check_range, check_real, check_size
from .fashion_mnist import CLASSES, IMAGE_SIDE, check_split, load_fashion_mnist
from .photos import PHOTO_NAMES, photo_region, random_crop

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SEGMENTATION_CLASSES",
    "CompositeMatting",
    "CompositeSegmentation",
    "MattingLayout",
    "PlacedItem",
    "SegmentationLayout",
    "denormalize_image",
    "normalize_image",
    "trimap_from_alpha",
]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
SEGMENTATION_CLASSES: tuple[str, ...] = ("background",) + CLASSES
"""Segmentation label names: 0 is background, 1 + c is Fashion-MNIST class c."""

SHADE_FLOOR = 0.4
"""Share of its tint an item keeps where its grey level is 0 (segmentation task)."""
TRIMAP_BACKGROUND, TRIMAP_UNKNOWN, TRIMAP_FOREGROUND = 0, 128, 255
_SPLIT_CODES = {"train": 0, "test": 1}
_TASK_SEGMENTATION, _TASK_MATTING = 0, 1


def _stats(x: Tensor) -> tuple[Tensor, Tensor]:
    """IMAGENET_MEAN / STD shaped to broadcast over (..., 3, H, W), after checking ``x`` is such an image."""
    check_float_tensor("x", x)
    if x.dim() < 3 or x.shape[-3] != 3:
        raise ValueError(f"x: expected an RGB image tensor (..., 3, H, W), got shape {tuple(x.shape)}")
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return mean, std


def normalize_image(x: Tensor) -> Tensor:
    """(x - mean) / std for RGB in [0, 1]; Tensor[..., 3, H, W] -> same shape."""
    mean, std = _stats(x)
    return (x - mean) / std


def denormalize_image(x: Tensor) -> Tensor:
    """Inverse of :func:`normalize_image`; Tensor[..., 3, H, W] -> same shape, RGB in [0, 1]."""
    mean, std = _stats(x)
    return x * std + mean


def trimap_from_alpha(alpha: Tensor, radius: int) -> Tensor:
    """Trimap of an alpha matte, as in Composition-1K / Deep Image Matting.

    Unknown (128) = dilate(alpha > 0) minus erode(alpha >= 1), with a square (2r+1)^2 structuring
    element (max-pooling; pixels outside the image are ignored); foreground (255) = erode(alpha >= 1);
    background (0) = the rest. Every pixel with 0 < alpha < 1 is unknown.

    Args:
        alpha: Tensor[..., H, W] in [0, 1].
        radius: r >= 0.

    Returns:
        Tensor[..., H, W] uint8 with values in {0, 128, 255}.
    """
    check_int("radius", radius, 0)
    check_float_tensor("alpha", alpha)
    if alpha.dim() < 2:
        raise ValueError(f"alpha: expected a tensor (..., H, W), got shape {tuple(alpha.shape)}")
    if alpha.isnan().any():  # NaN is neither > 0 nor < 1: it would pass for sure foreground
        raise ValueError("alpha: expected values in [0, 1], got NaN")
    flat = alpha.reshape(-1, 1, *alpha.shape[-2:])
    kernel = 2 * radius + 1

    def dilate(mask: Tensor) -> Tensor:
        return F.max_pool2d(mask.float(), kernel, stride=1, padding=radius) > 0

    near_item = dilate(flat > 0)
    sure_item = ~dilate(flat < 1)
    trimap = torch.full_like(flat, TRIMAP_BACKGROUND, dtype=torch.uint8)
    trimap[near_item] = TRIMAP_UNKNOWN
    trimap[sure_item] = TRIMAP_FOREGROUND
    return trimap.reshape(alpha.shape)


@dataclass(frozen=True)
class PlacedItem:
    """One Fashion-MNIST item placed on the canvas.

    Attributes:
        index: index into the Fashion-MNIST split. label: its class, 0..9.
        top, left: position of the item's square on the canvas.
        grey: Tensor[side, side] float32 in [0, 1], the item's grey levels resized bilinearly.
    """

    index: int
    label: int
    top: int
    left: int
    grey: Tensor

    def window(self) -> tuple[slice, slice]:
        """The canvas rows and columns the item covers."""
        side = self.grey.shape[-1]
        return slice(self.top, self.top + side), slice(self.left, self.left + side)


@dataclass(frozen=True)
class SegmentationLayout:
    """Everything one segmentation sample is rendered from.

    Attributes:
        background: Tensor[3, H, W] in [0, 1]. items: in painting order (later ones occlude).
        tints: Tensor[k, 3], the RGB tint of each item.
    """

    background: Tensor
    items: tuple[PlacedItem, ...]
    tints: Tensor


@dataclass(frozen=True)
class MattingLayout:
    """Everything one matting sample is rendered from.

    Attributes:
        foreground, background: Tensor[3, H, W] in [0, 1], crops of two different photos.
        item: the item whose grey levels are the alpha. trimap_radius: r of the trimap.
    """

    foreground: Tensor
    background: Tensor
    item: PlacedItem
    trimap_radius: int


class _Composite(Dataset):
    """Shared state of the composite tasks: split, size, items, per-sample generators."""

    task: int

    def __init__(
        self,
        split: str,
        size: tuple[int, int],
        item_scale: tuple[float, float],
        seed: int,
        length: int,
        root: str | os.PathLike | None,
    ) -> None:
        self.split = check_split(split)
        self.size = check_size("size", size)
        self.item_scale = check_range("item_scale", item_scale, 0.0, 1.0)
        if self.item_scale[0] <= 0:
            raise ValueError(f"item_scale: expected a smallest scale > 0, got {item_scale!r}")
        self.seed = check_int("seed", seed, 0)
        self.length = check_int("length", length, 1, sys.maxsize)  # len() must hold it
        self.images, self.labels = load_fashion_mnist(root, split)

    def __len__(self) -> int:
        return self.length

    def generator(self, index: int) -> np.random.Generator:
        """The generator of sample ``index``, seeded by (seed, split, task, index) only."""
        index = check_index(index, self.length)
        return np.random.default_rng([self.seed, _SPLIT_CODES[self.split], self.task, index])

    def _background(self, rng: np.random.Generator, photo: int) -> Tensor:
        """A crop of photo number ``photo`` from this split's region, Tensor[3, H, W] in [0, 1]."""
        return random_crop(rng, photo_region(PHOTO_NAMES[photo], self.split), self.size).clamp_(0.0, 1.0)

    def _place_item(self, rng: np.random.Generator) -> PlacedItem:
        """A random item at a random scale (fraction of min(H, W)) and position fully on the canvas."""
        height, width = self.size
        side = max(1, round(rng.uniform(*self.item_scale) * min(height, width)))
        index = int(rng.integers(len(self.labels)))
        grey = torch.tensor(self.images[index], dtype=torch.float32).div_(255.0)[None, None]
        grey = F.interpolate(grey, size=(side, side), mode="bilinear", align_corners=False, antialias=side < IMAGE_SIDE)
        top = int(rng.integers(0, height - side + 1))
        left = int(rng.integers(0, width - side + 1))
        return PlacedItem(index, int(self.labels[index]), top, left, grey[0, 0].clamp_(0.0, 1.0))


class CompositeSegmentation(_Composite):
    """Fashion-MNIST items on real photo crops, with per-pixel labels (region-sensitive task).

    Each item gets a random RGB tint ``t ~ U(tint_range)^3`` and its pixels are
    ``t * (SHADE_FLOOR + (1 - SHADE_FLOOR) * grey)``: the garment's texture stays visible, and items
    span the photos' range of colour and brightness (mean brightness about 0.49 for both), so they
    cannot be told from the background by brightness alone; their shape and texture must be used. An item's mask is ``grey >
    mask_threshold``; later items occlude earlier ones.

    Args:
        split: ``"train"`` or ``"test"``.
        size: (H, W) of the samples; non-square sizes work.
        num_items: (min, max) items per image, inclusive.
        item_scale: (min, max) side of an item as a fraction of min(H, W).
        mask_threshold: grey level in [0, 1) above which an item pixel is labelled.
        tint_range: (min, max) of each tint channel, within [0, 1].
        seed: non-negative integer. length: number of samples.
        root: Fashion-MNIST directory (see :class:`~fade.data.FashionMNIST`).

    Shape:
        item: {"image": Tensor[3, H, W] float32 (normalised), "label": Tensor[H, W] int64 in 0..10}.
    """

    task = _TASK_SEGMENTATION

    def __init__(
        self,
        split: str = "train",
        size: tuple[int, int] = (128, 128),
        num_items: tuple[int, int] = (1, 4),
        item_scale: tuple[float, float] = (0.3, 0.7),
        mask_threshold: float = 0.1,
        tint_range: tuple[float, float] = (0.3, 1.0),
        seed: int = 0,
        length: int = 10_000,
        root: str | os.PathLike | None = None,
    ) -> None:
        super().__init__(split, size, item_scale, seed, length, root)
        self.num_items = check_int_range("num_items", num_items, 1)
        if not 0.0 <= check_real("mask_threshold", mask_threshold) < 1.0:
            raise ValueError(f"mask_threshold: expected a value in [0, 1), got {mask_threshold!r}")
        self.mask_threshold = float(mask_threshold)
        self.tint_range = check_range("tint_range", tint_range, 0.0, 1.0)

    def layout(self, index: int) -> SegmentationLayout:
        """The background, items and tints of sample ``index``."""
        rng = self.generator(index)
        background = self._background(rng, int(rng.integers(len(PHOTO_NAMES))))
        count = int(rng.integers(self.num_items[0], self.num_items[1] + 1))
        items = tuple(self._place_item(rng) for _ in range(count))
        tints = torch.from_numpy(rng.uniform(*self.tint_range, size=(count, 3))).float()
        return SegmentationLayout(background, items, tints)

    def render(self, layout: SegmentationLayout) -> dict[str, Tensor]:
        """Paint the items of ``layout`` over its background; see the class docstring for the output."""
        image = layout.background.clone()
        label = torch.zeros(self.size, dtype=torch.int64)
        for item, tint in zip(layout.items, layout.tints):
            rows, cols = item.window()
            mask = item.grey > self.mask_threshold
            colour = tint.view(3, 1, 1) * (SHADE_FLOOR + (1.0 - SHADE_FLOOR) * item.grey)
            image[:, rows, cols] = torch.where(mask, colour, image[:, rows, cols])
            label[rows, cols] = torch.where(mask, 1 + item.label, label[rows, cols])
        return {"image": normalize_image(image), "label": label}

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return self.render(self.layout(index))


class CompositeMatting(_Composite):
    """An item's grey levels as the alpha of a photo foreground over another photo (detail-sensitive task).

    ``alpha`` = min(1, alpha_gain * the item's grey level / 255) after bilinear upscaling: soft,
    detailed edges and, at the default gain 1, semi-transparent interiors, so that almost no pixel is
    sure foreground and the unknown region covers the whole item (as for glass or nets in
    Composition-1K); a gain of 2 makes every grey level >= 128 opaque and gives the trimap a
    foreground core. ``fg`` = a crop of one photo, ``bg`` = a crop of a different one;
    ``image = alpha * fg + (1 - alpha) * bg``. The trimap comes from :func:`trimap_from_alpha` with a
    radius drawn uniformly from ``trimap_radius``.

    The model input ``"input"`` has 4 channels, the normalised RGB image and ``trimap / 255``, as the
    A2U / IndexNet matting networks take it; ``"image"`` is the 3-channel RGB part alone.

    Args:
        split: ``"train"`` or ``"test"``.
        size: (H, W); non-square sizes work.
        item_scale: (min, max) side of the item as a fraction of min(H, W).
        alpha_gain: factor >= 1 on the grey levels before clipping to 1.
        trimap_radius: (min, max) radius r, inclusive, of the (2r+1)^2 dilation / erosion.
        seed: non-negative integer. length: number of samples.
        root: Fashion-MNIST directory (see :class:`~fade.data.FashionMNIST`).

    Shape:
        item: {"input": Tensor[4, H, W], "image": Tensor[3, H, W] float32 (normalised),
        "trimap": Tensor[1, H, W] uint8 in {0, 128, 255}, "alpha": Tensor[1, H, W] in [0, 1],
        "fg": Tensor[3, H, W] and "bg": Tensor[3, H, W] in [0, 1]}.
    """

    task = _TASK_MATTING

    def __init__(
        self,
        split: str = "train",
        size: tuple[int, int] = (128, 128),
        item_scale: tuple[float, float] = (0.5, 0.9),
        alpha_gain: float = 1.0,
        trimap_radius: tuple[int, int] = (1, 6),
        seed: int = 0,
        length: int = 10_000,
        root: str | os.PathLike | None = None,
    ) -> None:
        super().__init__(split, size, item_scale, seed, length, root)
        self.trimap_radius = check_int_range("trimap_radius", trimap_radius, 0)
        if not check_real("alpha_gain", alpha_gain) >= 1.0:
            raise ValueError(f"alpha_gain: expected a factor >= 1, got {alpha_gain!r}")
        self.alpha_gain = float(alpha_gain)

    def layout(self, index: int) -> MattingLayout:
        """The foreground, background, item and trimap radius of sample ``index``."""
        rng = self.generator(index)
        fg_photo, bg_photo = (int(p) for p in rng.choice(len(PHOTO_NAMES), size=2, replace=False))
        foreground = self._background(rng, fg_photo)
        background = self._background(rng, bg_photo)
        item = self._place_item(rng)
        radius = int(rng.integers(self.trimap_radius[0], self.trimap_radius[1] + 1))
        return MattingLayout(foreground, background, item, radius)

    def render(self, layout: MattingLayout) -> dict[str, Tensor]:
        """Composite ``layout``; see the class docstring for the output."""
        alpha = torch.zeros(1, *self.size)
        rows, cols = layout.item.window()
        alpha[0, rows, cols] = (self.alpha_gain * layout.item.grey).clamp_(max=1.0)
        composite = alpha * layout.foreground + (1.0 - alpha) * layout.background
        image = normalize_image(composite)
        trimap = trimap_from_alpha(alpha, layout.trimap_radius)
        net_input = torch.cat([image, trimap.float() / TRIMAP_FOREGROUND])
        return {
            "input": net_input,
            "image": image,
            "trimap": trimap,
            "alpha": alpha,
            "fg": layout.foreground,
            "bg": layout.background,
        }

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return self.render(self.layout(index))
