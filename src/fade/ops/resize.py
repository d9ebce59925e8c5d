"""The one low-to-high pixel mapping that every operator in ``fade`` shares.

An integer scale ``s`` maps a low-resolution map of size ``n`` to a high-resolution map of size
``m`` with ``|m - s*n| < s``. This covers exact multiples (``m = s*n``) and the sizes that floor-mode
(``m = s*n + k``) or ceil-mode (``m = s*n - k``) pooling leaves behind, e.g. a 15x11 encoder feature
over a 7x5 decoder feature at ``s = 2``.

High-resolution pixel ``y`` reads low-resolution pixel ``min(y // s, n - 1)``. For exact multiples
this is ``y // s`` (CARAFE's and F.interpolate's nearest mapping); the extra rows of a floor-mode
map repeat the last low-resolution row, as if pooling had padded by replication. The kernel
generator, the reassembly and the gate of every operator use this mapping, so their pixels line up.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["check_scale", "compatible_size", "infer_scale", "nearest_upsample", "source_index"]


def check_scale(scale: int) -> int:
    """Return ``scale`` if it is a positive integer, else raise ValueError."""
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    return scale


def compatible_size(low: int, high: int, scale: int) -> bool:
    """True when a high-resolution extent ``high`` can come from ``low`` at integer ``scale``."""
    return low >= 1 and abs(high - scale * low) < scale


def infer_scale(low_hw: tuple[int, int], high_hw: tuple[int, int]) -> int:
    """The integer scale between two spatial sizes that are exact multiples of each other.

    Raises:
        ValueError: when the sizes are not one exact integer multiple of each other; pass the
            scale explicitly for the sizes that floor- or ceil-mode pooling leaves behind.
    """
    (h, w), (ho, wo) = low_hw, high_hw
    if h >= 1 and w >= 1 and ho % h == 0 and wo % w == 0 and ho // h == wo // w and ho >= h:
        return ho // h
    raise ValueError(
        f"cannot infer an integer scale from low-resolution size {tuple(low_hw)} to "
        f"high-resolution size {tuple(high_hw)}: expected an exact integer multiple in both "
        "dimensions; pass scale= explicitly for odd sizes"
    )


def check_sizes(low_hw: tuple[int, int], high_hw: tuple[int, int], scale: int, what: str) -> None:
    """Raise ValueError unless ``high_hw`` is a valid high-resolution size for ``low_hw``."""
    if not all(compatible_size(n, m, scale) for n, m in zip(low_hw, high_hw)):
        raise ValueError(
            f"{what}: expected a high-resolution size within scale-1 of scale*{tuple(low_hw)} = "
            f"{(scale * low_hw[0], scale * low_hw[1])} at scale {scale}, got {tuple(high_hw)}"
        )


def source_index(high: int, low: int, scale: int, device: torch.device | None = None) -> Tensor:
    """Low-resolution index read by each of ``high`` output positions: ``min(y // scale, low - 1)``.

    Returns:
        Tensor[high] of int64.
    """
    return torch.clamp(torch.arange(high, device=device) // scale, max=low - 1)


def nearest_upsample(x: Tensor, size: tuple[int, int], scale: int) -> Tensor:
    """Nearest-neighbour upsampling with the shared mapping.

    Args:
        x: Tensor[B, C, H, W].
        size: (H_out, W_out), each within ``scale - 1`` of ``scale`` times (H, W).
        scale: positive integer.

    Returns:
        Tensor[B, C, H_out, W_out].
    """
    h, w = x.shape[-2:]
    ho, wo = size
    if (ho, wo) == (scale * h, scale * w):
        return x if scale == 1 else F.interpolate(x, scale_factor=scale, mode="nearest")
    x = x.index_select(-2, source_index(ho, h, scale, x.device))
    return x.index_select(-1, source_index(wo, w, scale, x.device))
