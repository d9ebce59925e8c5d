"""What data a run actually read: the source, the files behind it, and SHA-256 digests of the samples.

:func:`data_record` goes into every run's and comparison's results.json under ``"data"``, and
:func:`describe_data` is the line a run logs before it trains. The digest of a split is taken over
the samples the run trains or is tested on, as held in memory (:class:`~fade.train.data.CachedDataset`:
per key in sorted order, its dtype, shape and bytes), so two runs with equal digests saw the same
data, whatever folder or file format (gzipped or not) it came from. Sets that are not held in memory
(the paper presets' loaders) are not read a second time to be hashed: their digest is None.
"""

from __future__ import annotations

import hashlib
import weakref
from pathlib import Path

import torch
from torch.utils.data import Dataset

from .data import CachedDataset
from .presets import Preset

__all__ = ["FASHION_MNIST_SOURCES", "data_record", "dataset_digest", "describe_data"]

FASHION_MNIST_SOURCES = ("fashion_mnist", "composite_segmentation", "composite_matting")
"""Data sources that read the Fashion-MNIST idx files (from their ``root`` option, or the default places)."""

_DIGESTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def dataset_digest(dataset: Dataset) -> str | None:
    """SHA-256 of a :class:`CachedDataset`'s tensors (computed once per dataset); None for other datasets."""
    if not isinstance(dataset, CachedDataset):
        return None
    if dataset not in _DIGESTS:
        digest = hashlib.sha256()
        for key in sorted(dataset.tensors):
            tensor = dataset.tensors[key].contiguous()
            digest.update(f"{key} {tensor.dtype} {tuple(tensor.shape)}\n".encode())
            digest.update(tensor.reshape(-1).view(dtype=torch.uint8).numpy())
        _DIGESTS[dataset] = digest.hexdigest()
    return _DIGESTS[dataset]


def data_record(preset: Preset, train: Dataset, test: Dataset) -> dict:
    """The data of a run: ``{"source", "root", "files", "train_samples", "test_samples", "train_sha256",
    "test_sha256"}``.

    ``root`` is the folder the source was given (None: its default places); ``files`` the idx files
    actually read for sources of :data:`FASHION_MNIST_SOURCES` (None for others).
    """
    root = preset.data_options.get("root")
    files = None
    if preset.data in FASHION_MNIST_SOURCES:
        from ..data.fashion_mnist import find_fashion_mnist

        files = [str(Path(p).resolve()) for split in ("train", "test") for p in find_fashion_mnist(root, split)]
    return {
        "source": preset.data,
        "root": None if root is None else str(root),
        "files": files,
        "train_samples": len(train),
        "test_samples": len(test),
        "train_sha256": dataset_digest(train),
        "test_sha256": dataset_digest(test),
    }


def describe_data(record: dict) -> str:
    """One line naming the data of :func:`data_record`: source, folder(s), sample counts, digests."""
    where = ""
    if record["files"]:
        folders = sorted({str(Path(f).parent) for f in record["files"]})
        where = f" from {', '.join(folders)} ({', '.join(Path(f).name for f in record['files'])})"
    elif record["root"]:
        where = f" from {record['root']}"
    digests = ", ".join(
        f"{split} sha256 {record[f'{split}_sha256'][:12]}" for split in ("train", "test") if record[f"{split}_sha256"]
    )
    counts = f"{record['train_samples']:,} train / {record['test_samples']:,} test samples"
    return f"data: {record['source']}{where}: {counts}" + (f"; {digests}" if digests else "")
