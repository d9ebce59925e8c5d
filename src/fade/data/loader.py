"""Batching through torch's DataLoader, reproducibly."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from ._checks import check_flag, check_int

__all__ = ["make_loader"]


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool = False,
    num_workers: int = 0,
    seed: int = 0,
    drop_last: bool = False,
) -> DataLoader:
    """A DataLoader whose order depends only on ``seed``.

    The shuffling order is drawn from a ``torch.Generator`` seeded with ``seed``; the composite
    datasets draw each sample from its own index, so batches are identical for any ``num_workers``.

    Args:
        dataset: a map-style dataset. batch_size: >= 1. shuffle: reshuffle every epoch.
        num_workers: worker processes (0 loads in the main process). seed: shuffling seed.
        drop_last: drop the last incomplete batch.

    Returns:
        torch.utils.data.DataLoader.
    """
    if not isinstance(dataset, Dataset):
        raise TypeError(f"dataset: expected a torch.utils.data.Dataset, got {type(dataset).__name__}")
    check_int("batch_size", batch_size, 1)
    check_int("num_workers", num_workers, 0)
    check_int("seed", seed, 0, 2**63 - 1)
    check_flag("shuffle", shuffle)
    check_flag("drop_last", drop_last)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(seed),
        drop_last=drop_last,
    )
