"""Fashion-MNIST (Xiao et al. 2017) from its original idx files.

Where the files are looked for, in order:

1. ``root`` when given (and only there): the four files directly in ``root``, gzipped or not, or
   torchvision's layout ``root/FashionMNIST/raw/``, or a ``dpkg-deb -x`` tree
   ``root/usr/share/datasets/fashion-mnist/``;
2. otherwise ``$FADE_DATA_DIR`` (same layouts), then ``/usr/share/datasets/fashion-mnist`` where the
   Debian package ``dataset-fashion-mnist`` installs them.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ._checks import check_flag, check_index, check_path
from .idx import read_idx

__all__ = [
    "CLASSES",
    "ENV_VAR",
    "FASHION_MNIST_MEAN",
    "FASHION_MNIST_STD",
    "SYSTEM_DIR",
    "FashionMNIST",
    "check_split",
    "find_fashion_mnist",
    "load_fashion_mnist",
]

Split = Literal["train", "test"]

CLASSES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
"""Class names, indexed by label."""

FASHION_MNIST_MEAN = 0.2860
"""Mean of the training pixels scaled to [0, 1]."""
FASHION_MNIST_STD = 0.3530
"""Standard deviation of the training pixels scaled to [0, 1]."""

ENV_VAR = "FADE_DATA_DIR"
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where ``apt-get install dataset-fashion-mnist`` puts the files."""

IMAGE_SIDE = 28
_STEMS: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_LAYOUTS = (Path("."), Path("FashionMNIST") / "raw", Path("usr/share/datasets/fashion-mnist"))


def check_split(split: str) -> Split:
    """Return ``split`` if it is ``"train"`` or ``"test"``, else raise ValueError."""
    if not isinstance(split, str) or split not in _STEMS:
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    return split  # type: ignore[return-value]


def _candidate_dirs(root: str | os.PathLike | None) -> list[Path]:
    """Directories searched, in order, for ``root`` (or the default places when None)."""
    if root is not None:
        bases = [check_path("root", root)]
    else:
        env = os.environ.get(ENV_VAR)
        bases = ([Path(env)] if env else []) + [SYSTEM_DIR]
    return [base / layout for base in bases for layout in _LAYOUTS]


def _find_in(directory: Path, stem: str) -> Path | None:
    """``directory/stem`` raw or gzipped, raw first; None when neither exists."""
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def find_fashion_mnist(root: str | os.PathLike | None = None, split: str = "train") -> tuple[Path, Path]:
    """Locate the (images, labels) idx files of ``split``.

    Raises:
        FileNotFoundError: naming every directory searched and how to install the dataset.
    """
    split = check_split(split)
    stems = _STEMS[split]
    searched = _candidate_dirs(root)
    for directory in searched:
        found = [_find_in(directory, stem) for stem in stems]
        if all(f is not None for f in found):
            return found[0], found[1]  # type: ignore[return-value]
    where = "\n  ".join(str(d) for d in searched)
    raise FileNotFoundError(
        f"Fashion-MNIST {split} files not found: expected {stems[0]}[.gz] and {stems[1]}[.gz] in one of\n"
        f"  {where}\n"
        "Install them with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu, as root), or without "
        "root: `apt-get download dataset-fashion-mnist && dpkg-deb -x dataset-fashion-mnist_*.deb DIR` "
        f"and then pass root=DIR or set {ENV_VAR}=DIR. A torchvision download (DIR/FashionMNIST/raw/) "
        "works too."
    )


@lru_cache(maxsize=4)
def _load(images_path: Path, labels_path: Path, stamp: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Read and check one split; cached per process, keyed by the files' sizes and mtimes (``stamp``)."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise ValueError(
            f"{images_path}: expected uint8 images of shape (N, {IMAGE_SIDE}, {IMAGE_SIDE}), "
            f"got {images.dtype} {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(
            f"{labels_path}: expected uint8 labels of shape ({len(images)},) to match {images_path}, "
            f"got {labels.dtype} {labels.shape}"
        )
    if len(labels) and labels.max() >= len(CLASSES):
        raise ValueError(f"{labels_path}: expected labels in 0..{len(CLASSES) - 1}, got {int(labels.max())}")
    return images, labels


def load_fashion_mnist(root: str | os.PathLike | None = None, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """The raw arrays of ``split``: uint8 images (N, 28, 28) and uint8 labels (N,), read-only."""
    paths = [p.resolve() for p in find_fashion_mnist(root, split)]
    stamp = tuple(v for p in paths for v in (p.stat().st_size, p.stat().st_mtime_ns))
    return _load(paths[0], paths[1], stamp)


class FashionMNIST(Dataset):
    """Fashion-MNIST as a torch Dataset of (image, label).

    Args:
        root: directory holding the idx files (see the module docstring); None searches
            ``$FADE_DATA_DIR`` then ``/usr/share/datasets/fashion-mnist``.
        split: ``"train"`` (60,000 items) or ``"test"`` (10,000 items).
        normalize: subtract :data:`FASHION_MNIST_MEAN` and divide by :data:`FASHION_MNIST_STD`;
            False gives pixels in [0, 1] (what reconstruction metrics expect).

    Shape:
        item: (Tensor[1, 28, 28] float32, int label in 0..9).
    """

    def __init__(self, root: str | os.PathLike | None = None, split: str = "train", normalize: bool = True) -> None:
        self.split = check_split(split)
        self.normalize = check_flag("normalize", normalize)
        self.images, self.labels = load_fashion_mnist(root, split)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        index = check_index(index, len(self.labels))
        image = torch.tensor(self.images[index], dtype=torch.float32).div_(255.0).unsqueeze(0)
        if self.normalize:
            image = (image - FASHION_MNIST_MEAN) / FASHION_MNIST_STD
        return image, int(self.labels[index])
