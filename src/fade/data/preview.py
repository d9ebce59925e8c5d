"""Render grids of the samples a preset trains on to PNG, to look at the data.

``python -m fade.data.preview --out results/data/`` writes one ``TASK-NAME.png`` per preset (default:
the CPU presets of every task with a rendered data source): the first training samples exactly as
:func:`fade.train.trainer.build_data` renders them for that preset (same source, options, size and
seed). Segmentation grids show the image over its coloured labels; matting grids the image, alpha,
trimap, foreground and background. matplotlib (the ``plot`` extra) is imported only here, when rendering.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from torch import Tensor

from .composite import SEGMENTATION_CLASSES, denormalize_image

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..train.presets import Preset

__all__ = ["DEFAULT_PRESETS", "label_colours", "main", "preset_samples", "save_previews"]

DEFAULT_PRESETS: tuple[str, ...] = (
    "segmentation/cpu",
    "segmentation/binary",
    "matting/cpu",
)
"""The presets previewed by default (quick presets render the same sources with the same options)."""


def label_colours(count: int = len(SEGMENTATION_CLASSES)) -> np.ndarray:
    """RGB colour of each of ``count`` <= 11 labels, float (count, 3): dark grey background, then tab10."""
    from matplotlib import colormaps

    if not 1 <= count <= 11:
        raise ValueError(f"count: expected 1..11 labels, got {count!r}")
    classes = colormaps["tab10"](np.arange(count - 1))[:, :3]
    return np.concatenate([np.full((1, 3), 0.15), classes])


def _rgb(image: Tensor) -> np.ndarray:
    """Normalised Tensor[3, H, W] -> displayable (H, W, 3) in [0, 1]."""
    return denormalize_image(image).clamp(0.0, 1.0).permute(1, 2, 0).numpy()


def _preset(key: str) -> Preset:
    from ..train.presets import get_preset

    task, _, name = key.partition("/")
    return get_preset(task, name)


def preset_samples(preset: Preset, split: str, count: int) -> tuple[list[dict[str, Tensor]], object]:
    """Samples 0..count-1 of ``split`` as the preset's runs see them, and the dataset they come from."""
    from ..train.data import create_data

    length = preset.train_length if split == "train" else preset.test_length
    dataset = create_data(preset.data, split, preset.size, length, **preset.data_options)
    return [dataset[i] for i in range(min(count, len(dataset)))], dataset


def save_previews(
    out_dir: str | os.PathLike, presets: tuple[str, ...] = DEFAULT_PRESETS, split: str = "train", count: int = 6
) -> list[Path]:
    """Write ``TASK-NAME.png`` of samples 0..count-1 of every preset (``"task/name"``) into ``out_dir``.

    Returns:
        The PNG paths, in the order of ``presets``.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count: expected an integer >= 1, got {count!r}")
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.patches import Patch

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for key in presets:
        preset = _preset(key)
        samples, dataset = preset_samples(preset, split, count)
        options = ", ".join(f"{k}={v}" for k, v in preset.data_options.items())
        title = (
            f"{key}: {preset.data}({options}) {preset.size[0]}x{preset.size[1]}, {split} samples "
            f"0..{len(samples) - 1}, as trained"
        )
        if preset.task == "segmentation":
            names = getattr(dataset, "classes", SEGMENTATION_CLASSES)
            colours = label_colours(len(names))
            fig, axes = plt.subplots(2, len(samples), figsize=(2.2 * len(samples), 4.9), squeeze=False)
            for i, sample in enumerate(samples):
                axes[0, i].imshow(_rgb(sample["image"]))
                axes[1, i].imshow(colours[sample["label"].numpy()], interpolation="nearest")
            rows, bottom = ("image", "labels"), 0.14
            handles = [Patch(color=c, label=n) for c, n in zip(colours, names)]
            fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8, frameon=False)
        else:
            rows, bottom = ("image", "alpha", "trimap", "fg", "bg"), 0.0
            figsize = (2.2 * len(samples), 2.3 * len(rows))
            fig, axes = plt.subplots(len(rows), len(samples), figsize=figsize, squeeze=False)
            for i, sample in enumerate(samples):
                axes[0, i].imshow(_rgb(sample["image"]))
                axes[1, i].imshow(sample["alpha"][0].numpy(), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
                axes[2, i].imshow(sample["trimap"][0].numpy(), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
                axes[3, i].imshow(sample["fg"].permute(1, 2, 0).numpy())
                axes[4, i].imshow(sample["bg"].permute(1, 2, 0).numpy())
        for ax, name in zip(axes[:, 0], rows):
            ax.set_ylabel(name)
        fig.suptitle(title, fontsize=9)
        paths.append(out / f"{key.replace('/', '-')}.png")
        _finish(fig, axes, paths[-1], bottom)
    return paths


def _finish(fig: Figure, axes: np.ndarray, path: Path, bottom: float) -> None:
    """Hide ticks, lay out, save at 100 dpi (atomically) and close."""
    from matplotlib import pyplot as plt

    from ..io import atomic_write

    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout(rect=(0.0, bottom, 1.0, 1.0))
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m fade.data.preview --out DIR [--preset TASK/NAME ...] [--split S] [--count N]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="directory for the PNGs")
    parser.add_argument(
        "--preset", action="append", help=f"task/name, repeatable (default: {', '.join(DEFAULT_PRESETS)})"
    )
    parser.add_argument("--split", default="train", choices=("train", "test"))
    parser.add_argument("--count", type=int, default=6, help="samples per grid")
    args = parser.parse_args(argv)
    try:
        paths = save_previews(args.out, tuple(args.preset or DEFAULT_PRESETS), args.split, args.count)
    except ValueError as error:
        parser.error(str(error))
    for path in paths:
        print(path)


if __name__ == "__main__":
    main()
