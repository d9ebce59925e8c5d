"""ADE20K (MIT Scene Parsing, ``ADEChallengeData2016``) with the SegFormer / mmseg pipelines of the FADE paper.

Layout (as downloaded from the MIT scene parsing benchmark, ``ADEChallengeData2016.zip``)::

    ADEChallengeData2016/
        images/training/*.jpg        (20,210)    annotations/training/*.png    (same stems)
        images/validation/*.jpg      (2,000)     annotations/validation/*.png  (same stems)

Annotations are 8-bit single-channel PNGs: 0 = "other" (not evaluated), 1..150 = the classes.
Labels are shifted as mmseg's ``reduce_zero_label``: 0 -> 255 (ignored), k -> k - 1, so the model
predicts 150 classes 0..149.

Training (:class:`ADE20K` with ``split="train"``), the ``train_pipeline`` of the authors' config
(SegFormer-B1, 512x512, 160k; identical in the FADE and SAPA logs):

1. resize keeping the aspect ratio into (long, short) = ``scale`` x ratio, ratio ~ U[0.5, 2.0)
   (mmseg ``Resize(img_scale=(2048, 512), ratio_range=(0.5, 2.0))``; bilinear image, nearest labels);
2. ``RandomCrop(crop_size, cat_max_ratio=0.75)`` (:func:`~fade.data.transforms.cat_max_ratio_crop`);
3. horizontal flip with p = 0.5, image and labels together;
4. ``PhotoMetricDistortion`` (:func:`~fade.data.transforms.photometric_distortion`);
5. normalisation with mean (123.675, 116.28, 103.53), std (58.395, 57.12, 57.375) on 0-255 RGB;
6. padding at the bottom / right to ``crop_size``: image 0 (after normalisation), labels 255.

Evaluation (``split="val"``), the authors' ``test_pipeline``: SegFormer's ``AlignedResize``: resize
keeping the aspect ratio into ``scale`` = (2048, 512), then each side rounded *up* to a multiple of
32 by a second (bilinear) resize; no flip; normalise. The label map stays at its original size; the
model's logits are resized bilinearly to it (mmseg ``whole`` inference, ``align_corners=False``),
which :class:`fade.train.tasks.SegmentationTask` does. mIoU as mmseg: intersections and unions
summed per class over the whole set, classes with a zero union left out of the mean
(:class:`fade.metrics.SegmentationMeter`).

bIoU: the FADE and SAPA repositories publish no Boundary-IoU code (their configs evaluate mIoU
only: ``evaluation = dict(metric='mIoU')``), so the protocol of their tables is unknown; this
library reports :class:`fade.metrics.SegmentationMeter`'s bIoU (Cheng et al. 2021 boundaries,
d = 2 % of the diagonal, per class, pixels with the ignore label excluded from every count).

Random draws: sample ``(index, epoch)`` is a pure function of (seed, epoch, index) — any number of
DataLoader workers and any resume give the same crops; see :class:`ADE20K`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ._checks import MAX_SIDE, check_int, check_key, check_pair, check_path, check_real, check_size
from .transforms import (
    DataError,
    aligned_size,
    cat_max_ratio_crop,
    normalize_to_tensor,
    pad_to_size,
    photometric_distortion,
    random_ratio_scale,
    read_image,
    rescale_size,
    resize,
)

__all__ = [
    "ADE20K",
    "ADE20K_CLASSES",
    "ADE20K_FOLDER",
    "IGNORE_INDEX",
    "find_ade20k",
    "list_ade20k",
    "reduce_zero_label",
]

ADE20K_FOLDER = "ADEChallengeData2016"
ADE20K_CLASSES = 150
IGNORE_INDEX = 255
_SPLIT_FOLDERS = {"train": "training", "val": "validation"}
_IMAGE_SUFFIX, _LABEL_SUFFIX = ".jpg", ".png"


def _check_split(split: str) -> str:
    if not isinstance(split, str) or split not in _SPLIT_FOLDERS:
        raise ValueError(f"split: expected one of {', '.join(_SPLIT_FOLDERS)}, got {split!r}")
    return split


def find_ade20k(data_dir: str | os.PathLike) -> Path:
    """The ``ADEChallengeData2016`` folder: ``data_dir`` itself or its child of that name.

    Raises:
        DataError: naming the first missing path of the layout.
    """
    data_dir = check_path("data_dir", data_dir)
    if not data_dir.is_dir():
        raise DataError(data_dir, "the ADE20K folder (ADEChallengeData2016 or its parent)", "no such folder")
    root = data_dir / ADE20K_FOLDER if (data_dir / ADE20K_FOLDER).is_dir() else data_dir
    for part in ("images", "annotations"):
        if not (root / part).is_dir():
            raise DataError(root / part, f"a folder of the {ADE20K_FOLDER} layout (images/, annotations/)", "nothing")
    return root


def list_ade20k(root: str | os.PathLike, split: str) -> list[tuple[Path, Path]]:
    """(image, annotation) paths of a split, sorted by name; checks the layout without opening files.

    Raises:
        DataError: naming the first missing folder, image without annotation, annotation without
            image, file of another type, or an empty split.
    """
    root = Path(root)
    folder = _SPLIT_FOLDERS[_check_split(split)]
    images_dir, labels_dir = root / "images" / folder, root / "annotations" / folder
    for directory in (images_dir, labels_dir):
        if not directory.is_dir():
            raise DataError(directory, f"the {split} folder of the {ADE20K_FOLDER} layout", "no such folder")

    def stems(directory: Path, suffix: str) -> dict[str, Path]:
        found = {}
        for path in sorted(directory.iterdir()):
            if path.name.startswith("."):
                continue
            if path.suffix != suffix or not path.is_file():
                raise DataError(path, f"only {suffix} files in {directory}", "another entry")
            found[path.stem] = path
        return found

    images, labels = stems(images_dir, _IMAGE_SUFFIX), stems(labels_dir, _LABEL_SUFFIX)
    missing = sorted(images.keys() - labels.keys())
    if missing:
        annotation = labels_dir / f"{missing[0]}{_LABEL_SUFFIX}"
        raise DataError(annotation, f"the annotation of {images[missing[0]]}", "no such file")
    unexpected = sorted(labels.keys() - images.keys())
    if unexpected:
        image = images_dir / f"{unexpected[0]}{_IMAGE_SUFFIX}"
        raise DataError(
            labels[unexpected[0]], f"only annotations of images (no {image})", "an annotation without image"
        )
    if not images:
        raise DataError(images_dir, f"*{_IMAGE_SUFFIX} images", "an empty folder")
    return [(images[stem], labels[stem]) for stem in sorted(images)]


class ADE20K(Dataset):
    """ADE20K scene parsing with the authors' training or evaluation pipeline (see module doc).

    Each sample is validated when read (a corrupt image, an annotation of another size or with
    values above 150 raises :class:`~fade.data.transforms.DataError` naming the file); the layout
    is checked at construction without opening any file.

    Args:
        root: ``ADEChallengeData2016`` or its parent folder.
        split: ``"train"`` (random pipeline) or ``"val"`` (deterministic evaluation pipeline).
        crop_size: (H, W) of training crops (512, 512).
        scale: (long, short) edge bounds of the resize, (2048, 512).
        ratio_range: training scale ratio range (0.5, 2.0).
        cat_max_ratio: largest share of one class in a training crop (0.75).
        size_divisor: evaluation sides are rounded up to multiples of this (32).
        seed: seeds the training augmentation.

    Sample keys: an integer ``index`` or a pair ``(index, epoch)``; a training sample's random draws
    come from ``numpy.random.default_rng([seed, epoch, index])`` (``index`` alone is epoch 0), so a
    sampler that passes the epoch gets new crops every epoch, reproducibly.

    Shape:
        train: {"image": Tensor[3, crop_H, crop_W] float32 (normalised), "label": Tensor[crop_H, crop_W]
        int64 in 0..149 or 255}. val: {"image": Tensor[3, h, w] (resized, h and w multiples of
        ``size_divisor``), "label": Tensor[H, W] int64 at the original size}.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        crop_size: tuple[int, int] = (512, 512),
        scale: tuple[int, int] = (2048, 512),
        ratio_range: tuple[float, float] = (0.5, 2.0),
        cat_max_ratio: float = 0.75,
        size_divisor: int = 32,
        seed: int = 0,
    ) -> None:
        self.split = _check_split(split)
        check_size("crop_size", crop_size)
        check_size("scale", scale, layout="(long, short)")
        low, high = check_pair("ratio_range", ratio_range, "numbers (low, high)")
        low, high = check_real("ratio_range", low), check_real("ratio_range", high)
        if not 0 < low <= high:
            raise ValueError(f"ratio_range: expected (low, high) with 0 < low <= high, got {ratio_range!r}")
        if not 0 < check_real("cat_max_ratio", cat_max_ratio) <= 1:
            raise ValueError(f"cat_max_ratio: expected a share in (0, 1], got {cat_max_ratio!r}")
        check_int("size_divisor", size_divisor, 1, MAX_SIDE)
        check_int("seed", seed, 0)
        self.root = find_ade20k(root)
        self.files = list_ade20k(self.root, split)
        self.crop_size, self.scale = tuple(crop_size), tuple(scale)
        self.ratio_range, self.cat_max_ratio = tuple(ratio_range), float(cat_max_ratio)
        self.size_divisor, self.seed = size_divisor, seed

    def __len__(self) -> int:
        return len(self.files)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The image (uint8 array[H, W, 3]) and shifted labels (uint8 array[H, W], 0..149 or 255) of file ``index``."""
        image_path, label_path = self.files[index]
        image = read_image(image_path, "RGB")
        raw = read_image(label_path, "labels")
        if raw.shape != image.shape[:2]:
            raise DataError(label_path, f"an annotation of the image's size {image.shape[:2]}", f"size {raw.shape}")
        if raw.max() > ADE20K_CLASSES:
            raise DataError(label_path, f"labels in 0..{ADE20K_CLASSES}", f"the value {int(raw.max())}")
        return image, reduce_zero_label(raw)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Tensor]:
        index, epoch = check_key(key, len(self))
        image, label = self.load(index)
        if self.split == "train":
            return self.train_transform(np.random.default_rng([self.seed, epoch, index]), image, label)
        return self.eval_transform(image, label)

    def train_transform(self, rng: np.random.Generator, image: np.ndarray, label: np.ndarray) -> dict[str, Tensor]:
        """Steps 1-6 of the training pipeline on uint8 ``image`` [H, W, 3] and shifted ``label`` [H, W]."""
        size = rescale_size(*label.shape, random_ratio_scale(rng, self.scale, self.ratio_range))
        image, label = resize(image, size, "bilinear"), resize(label, size, "nearest")
        top, left = cat_max_ratio_crop(rng, label, self.crop_size, self.cat_max_ratio, IGNORE_INDEX)
        window = (slice(top, top + self.crop_size[0]), slice(left, left + self.crop_size[1]))
        image, label = image[window], label[window]
        if rng.random() < 0.5:
            image, label = image[:, ::-1], label[:, ::-1]
        image = photometric_distortion(rng, np.ascontiguousarray(image))
        normalised = pad_to_size(normalize_to_tensor(image).permute(1, 2, 0).numpy(), self.crop_size, 0.0)
        label = pad_to_size(np.ascontiguousarray(label), self.crop_size, IGNORE_INDEX)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(normalised)).permute(2, 0, 1).contiguous(),
            "label": torch.from_numpy(label.astype(np.int64)),
        }

    def eval_transform(self, image: np.ndarray, label: np.ndarray) -> dict[str, Tensor]:
        """The evaluation pipeline: aligned resize of ``image``, ``label`` kept at its size."""
        rescaled = resize(image, rescale_size(*label.shape, self.scale), "bilinear")
        resized = resize(rescaled, aligned_size(*rescaled.shape[:2], self.size_divisor), "bilinear")
        return {"image": normalize_to_tensor(resized), "label": torch.from_numpy(label.astype(np.int64))}


def reduce_zero_label(raw: np.ndarray) -> np.ndarray:
    """mmseg's ``reduce_zero_label``: 0 -> 255, k -> k - 1 (uint8 arithmetic, as mmseg)."""
    label = raw.astype(np.uint8) - np.uint8(1)
    label[raw == 0] = IGNORE_INDEX
    return label
