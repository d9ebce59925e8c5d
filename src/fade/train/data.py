"""Data sources by name, step-indexed batch order, and in-memory caching of rendered sets.

A data source is a factory ``(split, size, length, **options) -> Dataset`` of dict samples with the
keys its task reads (:mod:`fade.train.tasks`). The shipped ones wrap :mod:`fade.data`; ``ade20k``
and ``composition1k`` read the paper's datasets from the folder given as option ``root``
(``fade train --data-dir``), which their users download themselves (README).

The batch order is a pure function of (seed, step): a resumed run draws exactly the batches the
uninterrupted run would have drawn, and every upsampler trained with a seed sees the same batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

import torch
from torch.utils.data import Dataset, Sampler

__all__ = [
    "CachedDataset",
    "EpochKeyed",
    "StepBatchSampler",
    "batch_indices",
    "check_data_options",
    "create_data",
    "list_data",
    "register_data",
]

DataFactory = Callable[..., Dataset]
_DATA: dict[str, tuple[DataFactory, tuple[str, ...] | None]] = {}


def register_data(name: str, options: Sequence[str] | None = None) -> Callable[[DataFactory], DataFactory]:
    """Decorator: register ``factory(split, size, length, **options) -> Dataset`` under ``name``.

    ``options``: the keyword options the factory takes (others are refused by :func:`create_data`);
    None leaves them unchecked.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name: expected a non-empty str, got {type(name).__name__} {name!r}")

    def register(factory: DataFactory) -> DataFactory:
        if name in _DATA:
            raise ValueError(f"data source {name!r} is already registered")
        _DATA[name] = factory, None if options is None else tuple(options)
        return factory

    return register


def list_data() -> list[str]:
    """The registered data source names, sorted."""
    return sorted(_DATA)


def create_data(name: str, split: str, size: tuple[int, int], length: int | None, **options) -> Dataset:
    """Dataset ``split`` of data source ``name`` at (H, W) ``size`` with ``length`` samples (None: all)."""
    if length is not None and (isinstance(length, bool) or not isinstance(length, int)):
        raise TypeError(f"length: expected None or an integer >= 1, got {type(length).__name__} {length!r}")
    if length is not None and length < 1:
        raise ValueError(f"length: expected None or an integer >= 1, got {length!r}")
    check_data_options(name, options)
    return _DATA[name][0](split, size, length, **options)


def check_data_options(name: str, options: Mapping[str, object]) -> None:
    """Raise ValueError unless ``name`` is a registered source that takes every key of ``options``
    (a preset's ``data_options``); the message lists the options it takes."""
    if not isinstance(name, str) or name not in _DATA:
        raise ValueError(
            f"data: expected a registered source ({', '.join(list_data())}), got {name!r}; other datasets: "
            "register a loader with fade.train.register_data"
        )
    accepted = _DATA[name][1]
    unknown = sorted(set(options) - set(accepted)) if accepted is not None else []
    if unknown:
        hint = "; it reads no folder, so drop --data-dir" if "root" in unknown else ""
        raise ValueError(
            f"data_options: the {name!r} data source takes {', '.join(accepted) or 'no options'}, "
            f"got {', '.join(unknown)}{hint}"
        )


@register_data(
    "composite_segmentation", options=("num_items", "item_scale", "mask_threshold", "tint_range", "seed", "root")
)
def _composite_segmentation(split: str, size: tuple[int, int], length: int | None, **options) -> Dataset:
    """:class:`fade.data.CompositeSegmentation`: {"image", "label"}."""
    from ..data import CompositeSegmentation

    return CompositeSegmentation(split, size=size, length=length or 10_000, **options)


@register_data("composite_matting", options=("item_scale", "alpha_gain", "trimap_radius", "seed", "root"))
def _composite_matting(split: str, size: tuple[int, int], length: int | None, **options) -> Dataset:
    """:class:`fade.data.CompositeMatting`: {"input", "alpha", "trimap", "fg", "bg", "image"}."""
    from ..data import CompositeMatting

    return CompositeMatting(split, size=size, length=length or 10_000, **options)


@register_data("shapes", options=("binary", "num_objects", "area", "supersample", "seed"))
def _shapes(split: str, size: tuple[int, int], length: int | None, **options) -> Dataset:
    """:class:`fade.data.shapes.ShapeSegmentation` ({"image", "label"}); option ``binary`` for object vs background."""
    from ..data.shapes import ShapeSegmentation

    return ShapeSegmentation(split, size=size, length=length or 10_000, **options)


@register_data(
    "hair_matting",
    options=("radius", "soft_width", "strands", "strand_length", "strand_width", "trimap_band", "supersample", "seed"),
)
def _hair_matting(split: str, size: tuple[int, int], length: int | None, **options) -> Dataset:
    """:class:`fade.data.matting_synth.HairMatting`: {"input", "alpha", "trimap", "fg", "bg", "image"}."""
    from ..data.matting_synth import HairMatting

    return HairMatting(split, size=size, length=length or 10_000, **options)


class _FashionMNISTImages(Dataset):
    """The first ``length`` Fashion-MNIST images of a split as {"image": Tensor[1, 28, 28] in [0, 1]}."""

    def __init__(self, split: str, length: int | None, **options) -> None:
        from ..data import FashionMNIST

        self.images = FashionMNIST(split=split, normalize=False, **options)
        total = len(self.images)
        if length is not None and not 1 <= length <= total:
            raise ValueError(f"length: expected 1..{total} Fashion-MNIST {split} images, got {length}")
        self.length = total if length is None else length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(f"index: expected 0..{self.length - 1}, got {index}")
        return {"image": self.images[index][0]}


@register_data("fashion_mnist", options=("root",))
def _fashion_mnist(split: str, size: tuple[int, int], length: int | None, **options) -> Dataset:
    """Fashion-MNIST images for reconstruction; ``size`` must be (28, 28)."""
    if tuple(size) != (28, 28):
        raise ValueError(f"size: Fashion-MNIST images are (28, 28), got {tuple(size)}")
    return _FashionMNISTImages(split, length, **options)


class EpochKeyed(Dataset):
    """The first ``length`` samples of ``dataset``, whose samples take ``(index, epoch)`` keys
    (fresh random augmentation every epoch); :class:`StepBatchSampler` passes the epoch when the
    training set has ``epoch_keys``."""

    epoch_keys = True

    def __init__(self, dataset: Dataset, length: int | None) -> None:
        total = len(dataset)
        if length is not None and not 1 <= length <= total:
            raise ValueError(f"length: expected 1..{total} samples of {type(dataset).__name__}, got {length}")
        self.dataset, self.length = dataset, total if length is None else length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, key: int | tuple[int, int]):
        index = key[0] if isinstance(key, tuple) else key
        if not 0 <= index < self.length:
            raise IndexError(f"index: expected 0..{self.length - 1}, got {index}")
        return self.dataset[key]


def _root(root: str | None, source: str, layout: str) -> str:
    if root is None:
        raise ValueError(f"data_dir: the {source} data source reads a folder ({layout}); pass --data-dir")
    return root


@register_data("ade20k", options=("root", "ratio_range", "cat_max_ratio", "size_divisor", "seed"))
def _ade20k(split: str, size: tuple[int, int], length: int | None, root: str | None = None, **options) -> Dataset:
    """:class:`fade.data.ade20k.ADE20K`: ``size`` training crops; images resized within (4 S, S),
    S = max(size), as the paper's 512 crops go with its 2048 x 512 scale; "test" is ADE20K's val."""
    from ..data.ade20k import ADE20K

    side = max(size)
    root = _root(root, "ade20k", "ADEChallengeData2016 or its parent")
    split = "train" if split == "train" else "val"
    dataset = ADE20K(root, split, crop_size=tuple(size), scale=(4 * side, side), **options)
    return EpochKeyed(dataset, length)


@register_data("composition1k", options=("root", "seed"))
def _composition1k(
    split: str, size: tuple[int, int], length: int | None, root: str | None = None, **options
) -> Dataset:
    """:class:`fade.data.adobe_matting.AdobeMattingTrain` (``size`` crops) for "train", the full-size
    Composition-1K test set for "test"."""
    from ..data.adobe_matting import AdobeMattingTrain, Composition1K

    root = _root(root, "composition1k", "Combined_Dataset or its parent")
    if split == "train":
        return EpochKeyed(AdobeMattingTrain(root, crop_size=tuple(size), **options), length)
    return EpochKeyed(Composition1K(root), length)


class CachedDataset(Dataset):
    """Every sample of ``dataset`` rendered once and held as stacked tensors.

    Rendering the composite tasks costs milliseconds per sample; a comparison trains many models on
    the same samples, so it renders them once. Samples are dicts of tensors of equal shapes; only
    ``keys`` are kept (None: all).
    """

    def __init__(self, dataset: Dataset, keys: tuple[str, ...] | None = None) -> None:
        samples = [dataset[i] for i in range(len(dataset))]
        if not samples:
            raise ValueError("dataset: expected at least one sample, got none")
        missing = set(keys or ()) - set(samples[0])
        if missing:
            raise ValueError(f"keys: expected keys of the samples ({', '.join(samples[0])}), got {sorted(missing)}")
        self.tensors = {key: torch.stack([s[key] for s in samples]) for key in keys or samples[0]}
        self.length = len(samples)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {key: value[index] for key, value in self.tensors.items()}


def batch_indices(length: int, batch_size: int, seed: int, step: int) -> list[int]:
    """Sample indices of training step ``step``: epochs of a seeded permutation, last partial batch dropped.

    Epoch e's permutation comes from a generator seeded with (seed, e), so any step's batch is
    known without replaying the steps before it.
    """
    if not 1 <= batch_size <= length:
        raise ValueError(f"batch_size: expected 1..{length} (the training set size), got {batch_size}")
    per_epoch = length // batch_size
    epoch, position = divmod(step, per_epoch)
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(length, generator=generator)
    return order[position * batch_size : (position + 1) * batch_size].tolist()


class StepBatchSampler(Sampler[list[int]]):
    """The batches of steps ``start .. stop - 1`` (see :func:`batch_indices`), for a DataLoader;
    with ``with_epoch`` each index comes as an ``(index, epoch)`` key."""

    def __init__(
        self, length: int, batch_size: int, seed: int, start: int, stop: int, with_epoch: bool = False
    ) -> None:
        batch_indices(length, batch_size, seed, 0)
        self.length, self.batch_size, self.seed, self.start, self.stop = length, batch_size, seed, start, stop
        self.with_epoch = with_epoch

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.stop):
            indices = batch_indices(self.length, self.batch_size, self.seed, step)
            if self.with_epoch:
                epoch = step // (self.length // self.batch_size)
                indices = [(index, epoch) for index in indices]
            yield indices
