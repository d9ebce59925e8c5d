"""Real photos and textures shipped inside the scikit-image wheel, used as backgrounds.

All of :data:`PHOTO_NAMES` load offline (no download). Grey images are repeated to 3 channels.
Train and test use disjoint regions of every photo: the left ``1 - TEST_FRACTION`` of its columns
for ``"train"``, the rightmost ``TEST_FRACTION`` for ``"test"``; no test pixel is ever seen in training.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .fashion_mnist import check_split

__all__ = ["MIN_CROP_FRACTION", "PHOTO_NAMES", "TEST_FRACTION", "load_photo", "photo_region", "random_crop"]

PHOTO_NAMES: tuple[str, ...] = (
    "astronaut", "camera", "coffee", "chelsea", "rocket", "hubble_deep_field",
    "immunohistochemistry", "brick", "grass", "gravel", "coins", "moon",
)
TEST_FRACTION = 0.25
"""Share of each photo's columns (on the right) reserved for the test split."""
MIN_CROP_FRACTION = 0.5
"""Smallest crop side, as a fraction of the largest crop of the output's aspect that fits."""


@cache
def load_photo(name: str) -> Tensor:
    """One photo as Tensor[3, h, w] float32 in [0, 1]; cached per process.

    Raises:
        ValueError: when ``name`` is not in :data:`PHOTO_NAMES`.
    """
    if name not in PHOTO_NAMES:
        raise ValueError(f"photo: expected one of {PHOTO_NAMES}, got {name!r}")
    return read_skimage_image(name)


def read_skimage_image(name: str) -> Tensor:
    """Image ``name`` of ``skimage.data`` as Tensor[3, h, w] float32 in [0, 1]: grey images repeated
    to 3 channels, an alpha channel dropped."""
    import skimage.data

    array = np.asarray(getattr(skimage.data, name)())
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(array[..., :3])).permute(2, 0, 1).float().div_(255.0)


def split_columns(image: Tensor, split: str) -> Tensor:
    """The columns of ``image`` (Tensor[C, h, w]) that ``split`` may use: the left ``1 - TEST_FRACTION``
    for ``"train"``, the rest for ``"test"``; Tensor[C, h, w_split] (a view)."""
    boundary = round(image.shape[-1] * (1.0 - TEST_FRACTION))
    return image[..., :boundary] if check_split(split) == "train" else image[..., boundary:]


def photo_region(name: str, split: str) -> Tensor:
    """The columns of photo ``name`` that ``split`` may use, Tensor[3, h, w_split] (a view)."""
    return split_columns(load_photo(name), split)


def random_crop(rng: np.random.Generator, region: Tensor, size: tuple[int, int]) -> Tensor:
    """A random crop of ``region`` with the aspect of ``size``, resized to ``size``, maybe mirrored.

    The crop height is uniform in [MIN_CROP_FRACTION, 1] times the largest that fits; the position
    is uniform; the crop is resized bilinearly (antialiased) and mirrored left-right with p = 1/2.

    Args:
        rng: numpy generator that draws the crop.
        region: Tensor[3, h, w].
        size: output (H, W).

    Returns:
        Tensor[3, H, W] float32.
    """
    out_h, out_w = size
    h, w = region.shape[-2:]
    max_h = min(h, int(w * out_h / out_w))
    crop_h = max(1, round(rng.uniform(MIN_CROP_FRACTION, 1.0) * max_h))
    crop_w = min(w, max(1, round(crop_h * out_w / out_h)))
    top = int(rng.integers(0, h - crop_h + 1))
    left = int(rng.integers(0, w - crop_w + 1))
    crop = region[None, :, top : top + crop_h, left : left + crop_w]
    crop = F.interpolate(crop, size=size, mode="bilinear", align_corners=False, antialias=True)[0]
    return crop.flip(-1) if rng.random() < 0.5 else crop
