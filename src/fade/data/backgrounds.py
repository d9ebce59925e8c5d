"""Every photo and texture that ships inside the scikit-image wheel, as augmented background crops.

:data:`BACKGROUND_NAMES` are the 20 colour and grey images of ``skimage.data`` that load offline
(photos, micrographs, textures, scanned text; no download). :func:`random_background` draws a crop
of one of them with random position and scale, flips, a random quarter turn and colour jitter
(brightness, contrast, saturation, a random channel mixing that tints grey images), so no two
backgrounds repeat. Train and test use disjoint regions of every image: the left
``1 - TEST_FRACTION`` of its columns for ``"train"``, the rest for ``"test"`` (as :mod:`.photos`).
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .photos import read_skimage_image, split_columns

__all__ = ["BACKGROUND_NAMES", "background_region", "load_background", "random_background"]

BACKGROUND_NAMES: tuple[str, ...] = (
    "astronaut", "brick", "camera", "cat", "cell", "chelsea", "clock", "coffee", "coins", "colorwheel",
    "grass", "gravel", "hubble_deep_field", "immunohistochemistry", "logo", "moon", "page", "retina",
    "rocket", "text",
)
MIN_CROP = 0.2
"""Smallest crop side, as a fraction of the largest square that fits the region."""


@cache
def load_background(name: str) -> Tensor:
    """Image ``name`` of :data:`BACKGROUND_NAMES` as Tensor[3, h, w] float32 in [0, 1]; cached per process."""
    if name not in BACKGROUND_NAMES:
        raise ValueError(f"background: expected one of {', '.join(BACKGROUND_NAMES)}, got {name!r}")
    return read_skimage_image(name)


def background_region(name: str, split: str) -> Tensor:
    """The columns of image ``name`` that ``split`` may use, Tensor[3, h, w_split] (a view)."""
    return split_columns(load_background(name), split)


def random_background(rng: np.random.Generator, split: str, size: tuple[int, int]) -> Tensor:
    """A jittered crop of a random image of the pool, Tensor[3, H, W] float32 in [0, 1].

    A square crop of side uniform in [MIN_CROP, 1] times the largest that fits ``split``'s region,
    resized (bilinear, antialiased) to ``size``; then a quarter turn with p = 1/2 (square ``size``
    only), mirrors left-right and up-down with p = 1/2 each, a random 3x3 colour mixing
    ``0.6 I + 0.4 M`` (M: rows of non-negative weights summing to 1), saturation in [0.3, 1.3],
    contrast in [0.6, 1.4] about the mean and brightness in [-0.15, 0.15], clipped to [0, 1].
    """
    region = background_region(BACKGROUND_NAMES[int(rng.integers(len(BACKGROUND_NAMES)))], split)
    h, w = region.shape[-2:]
    side = max(2, round(rng.uniform(MIN_CROP, 1.0) * min(h, w)))
    top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = region[None, :, top : top + side, left : left + side]
    out = F.interpolate(crop, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)[0]
    if size[0] == size[1] and rng.random() < 0.5:
        out = out.rot90(1, (-2, -1))
    if rng.random() < 0.5:
        out = out.flip(-1)
    if rng.random() < 0.5:
        out = out.flip(-2)
    mixing = rng.dirichlet(np.ones(3), size=3)
    mixing = torch.from_numpy(0.6 * np.eye(3) + 0.4 * mixing).float()
    out = torch.einsum("ij,jhw->ihw", mixing, out)
    grey = out.mean(0, keepdim=True)
    out = grey + float(rng.uniform(0.3, 1.3)) * (out - grey)
    out = out.mean() + float(rng.uniform(0.6, 1.4)) * (out - out.mean()) + float(rng.uniform(-0.15, 0.15))
    return out.clamp_(0.0, 1.0).contiguous()
