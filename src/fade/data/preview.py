"""Render grids of composite samples to PNG, to look at the data.

Run ``python -m fade.data.preview --out results/data/`` to write ``segmentation.png`` (image over
coloured labels) and ``matting.png`` (image, alpha, trimap, foreground, background) there.
matplotlib (the ``plot`` extra) is imported only here, when rendering.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from torch import Tensor

from .composite import SEGMENTATION_CLASSES, CompositeMatting, CompositeSegmentation, denormalize_image

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["label_colours", "main", "save_previews"]


def label_colours() -> np.ndarray:
    """RGB colour of each segmentation label, float (11, 3): dark grey background, tab10 classes."""
    from matplotlib import colormaps

    classes = colormaps["tab10"](np.arange(len(SEGMENTATION_CLASSES) - 1))[:, :3]
    return np.concatenate([np.full((1, 3), 0.15), classes])


def _rgb(image: Tensor) -> np.ndarray:
    """Normalised Tensor[3, H, W] -> displayable (H, W, 3) in [0, 1]."""
    return denormalize_image(image).clamp(0.0, 1.0).permute(1, 2, 0).numpy()


def save_previews(
    out_dir: str | os.PathLike,
    split: str = "train",
    count: int = 6,
    seed: int = 0,
    size: tuple[int, int] = (128, 128),
    root: str | os.PathLike | None = None,
) -> list[Path]:
    """Write ``segmentation.png`` and ``matting.png`` of samples 0..count-1 into ``out_dir``.

    Returns:
        The two PNG paths.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count: expected an integer >= 1, got {count!r}")
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.patches import Patch

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    colours = label_colours()

    segmentation = CompositeSegmentation(split, size=size, seed=seed, length=count, root=root)
    fig, axes = plt.subplots(2, count, figsize=(2.2 * count, 4.9), squeeze=False)
    for i in range(count):
        sample = segmentation[i]
        axes[0, i].imshow(_rgb(sample["image"]))
        axes[1, i].imshow(colours[sample["label"].numpy()], interpolation="nearest")
    for ax, title in zip(axes[:, 0], ("image", "labels")):
        ax.set_ylabel(title)
    handles = [Patch(color=c, label=name) for c, name in zip(colours, SEGMENTATION_CLASSES)]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8, frameon=False)
    fig.suptitle(f"CompositeSegmentation({split!r}, size={size}, seed={seed}), samples 0..{count - 1}")
    _finish(fig, axes, out / "segmentation.png", bottom=0.14)

    matting = CompositeMatting(split, size=size, seed=seed, length=count, root=root)
    rows = ("image", "alpha", "trimap", "fg", "bg")
    fig, axes = plt.subplots(len(rows), count, figsize=(2.2 * count, 2.3 * len(rows)), squeeze=False)
    for i in range(count):
        sample = matting[i]
        axes[0, i].imshow(_rgb(sample["image"]))
        axes[1, i].imshow(sample["alpha"][0].numpy(), cmap="gray", vmin=0.0, vmax=1.0)
        axes[2, i].imshow(sample["trimap"][0].numpy(), cmap="gray", vmin=0, vmax=255)
        axes[3, i].imshow(sample["fg"].permute(1, 2, 0).numpy())
        axes[4, i].imshow(sample["bg"].permute(1, 2, 0).numpy())
    for ax, title in zip(axes[:, 0], rows):
        ax.set_ylabel(title)
    fig.suptitle(f"CompositeMatting({split!r}, size={size}, seed={seed}), samples 0..{count - 1}")
    _finish(fig, axes, out / "matting.png", bottom=0.0)
    return [out / "segmentation.png", out / "matting.png"]


def _finish(fig: Figure, axes: np.ndarray, path: Path, bottom: float) -> None:
    """Hide ticks, lay out, save at 100 dpi and close."""
    from matplotlib import pyplot as plt

    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout(rect=(0.0, bottom, 1.0, 1.0))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m fade.data.preview --out DIR [--split S] [--count N] [--seed K]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="directory for segmentation.png and matting.png")
    parser.add_argument("--split", default="train", choices=("train", "test"))
    parser.add_argument("--count", type=int, default=6, help="samples per grid")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, nargs=2, default=(128, 128), metavar=("H", "W"))
    parser.add_argument("--root", default=None, help="Fashion-MNIST directory (default: search)")
    args = parser.parse_args(argv)
    for path in save_previews(args.out, args.split, args.count, args.seed, tuple(args.size), args.root):
        print(path)


if __name__ == "__main__":
    main()
