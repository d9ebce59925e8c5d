"""Tiny datasets written in the real layouts of ADE20K and Adobe Image Matting, for tests and dry runs.

The paper's datasets cannot be shipped or downloaded here; these writers produce a few small images
in exactly the folder layouts, file formats and value ranges the loaders read, so the pipelines (and
the paper presets, at a small size) run end to end. The content is synthetic but learnable: ADE20K
images are coloured by their label rectangles, matting foregrounds have soft-edged discs as alphas.
Files are written atomically (:func:`fade.io.write_file`).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from ..io import write_file

__all__ = ["write_ade20k", "write_adobe_matting", "write_image"]


def write_image(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write uint8 ``array`` ([H, W] grey or [H, W, 3] RGB) as an image; JPEG for .jpg, else PNG."""
    from PIL import Image

    path = Path(path)
    buffer = io.BytesIO()
    jpeg = path.suffix.lower() in (".jpg", ".jpeg")
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8)).save(
        buffer, format="JPEG" if jpeg else "PNG", **({"quality": 95} if jpeg else {})
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file(path, buffer.getvalue())
    return path


def _label_map(rng: np.random.Generator, height: int, width: int, classes: int) -> np.ndarray:
    """Raw ADE20K-style labels (0 = other, 1..classes): a background class and a few rectangles."""
    label = np.full((height, width), rng.integers(1, classes + 1), dtype=np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        top, left = int(rng.integers(0, height - 2)), int(rng.integers(0, width - 2))
        bottom, right = int(rng.integers(top + 2, height + 1)), int(rng.integers(left + 2, width + 1))
        label[top:bottom, left:right] = rng.integers(0, classes + 1)
    return label


def write_ade20k(
    directory: str | os.PathLike,
    sizes: dict[str, list[tuple[int, int]]] | None = None,
    classes: int = 150,
    seed: int = 0,
) -> Path:
    """Write ``directory/ADEChallengeData2016`` with images/ and annotations/ for both splits.

    Args:
        directory: parent folder. sizes: (H, W) of each image per split folder (``"training"``,
            ``"validation"``); default 3 training and 2 validation images of awkward sizes.
        classes: raw labels are drawn from 0..classes (0 = other). seed: content seed.

    Returns:
        The ``ADEChallengeData2016`` folder.
    """
    sizes = sizes or {"training": [(40, 56), (52, 36), (33, 47)], "validation": [(44, 60), (37, 29)]}
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, size=(256, 3))
    root = Path(directory) / "ADEChallengeData2016"
    for folder, shapes in sizes.items():
        for number, (height, width) in enumerate(shapes, start=1):
            stem = f"ADE_{'train' if folder == 'training' else 'val'}_{number:08d}"
            label = _label_map(rng, height, width, classes)
            image = np.clip(palette[label] + rng.integers(-20, 21, size=(height, width, 3)), 0, 255)
            write_image(root / "images" / folder / f"{stem}.jpg", image)
            write_image(root / "annotations" / folder / f"{stem}.png", label)
    return root


def _disc_alpha(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A soft-edged disc: alpha 255 inside, a linear ramp over a few pixels, 0 outside; uint8."""
    y, x = np.mgrid[0:height, 0:width]
    cy, cx = rng.uniform(0.35, 0.65) * height, rng.uniform(0.35, 0.65) * width
    radius = rng.uniform(0.2, 0.35) * min(height, width)
    ramp = rng.uniform(2.0, 5.0)
    alpha = np.clip((radius - np.hypot(y - cy, x - cx)) / ramp + 0.5, 0.0, 1.0)
    return np.round(alpha * 255).astype(np.uint8)


def write_adobe_matting(
    directory: str | os.PathLike,
    train_sizes: tuple[tuple[int, int], ...] = ((48, 64), (60, 44), (40, 40)),
    backgrounds: int = 5,
    test_sizes: tuple[tuple[int, int], ...] = ((36, 52), (45, 33)),
    composites_per_foreground: int = 2,
    seed: int = 0,
) -> Path:
    """Write ``directory/Combined_Dataset`` in the A2U layout (see :mod:`fade.data.adobe_matting`).

    Training_set: fg/ and alpha/ (same names), training_fg_names.txt, and training_bg_names.txt
    naming ``backgrounds`` images of train2014/ twice each (the real list repeats names). Test_set:
    ``composites_per_foreground`` composites per test foreground in merged/ named ``NAME_k.png``
    (as Adobe's compose script names them), trimaps/ with the same names, alpha/NAME.png.

    Returns:
        The ``Combined_Dataset`` folder.
    """
    from .adobe_matting import TRIMAP_UNKNOWN
    from .transforms import ellipse_kernel, erode

    rng = np.random.default_rng(seed)
    root = Path(directory) / "Combined_Dataset"
    train = root / "Training_set"
    fg_names = []
    for number, (height, width) in enumerate(train_sizes):
        name = f"fg_{number:03d}.jpg"
        write_image(train / "fg" / name, rng.integers(0, 256, size=(height, width, 3)))
        write_image(train / "alpha" / name, _disc_alpha(rng, height, width))
        fg_names.append(name)
    bg_names = [f"COCO_train2014_{number:012d}.jpg" for number in range(backgrounds)]
    for name in bg_names:
        height, width = int(rng.integers(30, 80)), int(rng.integers(30, 80))
        write_image(train / "train2014" / name, rng.integers(0, 256, size=(height, width, 3)))
    write_file(train / "training_fg_names.txt", "\n".join(fg_names) + "\n")
    write_file(train / "training_bg_names.txt", "\n".join(bg_names + bg_names) + "\n")

    test = root / "Test_set"
    kernel = ellipse_kernel(3)
    for number, (height, width) in enumerate(test_sizes):
        stem = f"test_{number:03d}"
        alpha = _disc_alpha(rng, height, width)
        write_image(test / "alpha" / f"{stem}.png", alpha)
        trimap = np.full((height, width), TRIMAP_UNKNOWN, dtype=np.uint8)
        trimap[erode(alpha == 255, kernel)] = 255
        trimap[erode(alpha == 0, kernel)] = 0
        fg = rng.integers(0, 256, size=(height, width, 3))
        for k in range(composites_per_foreground):
            bg = rng.integers(0, 256, size=(height, width, 3))
            a = alpha[..., None] / 255.0
            write_image(test / "merged" / f"{stem}_{k}.png", np.round(a * fg + (1 - a) * bg))
            write_image(test / "trimaps" / f"{stem}_{k}.png", trimap)
    return root
