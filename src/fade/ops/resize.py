"""The one low-to-high pixel mapping that every operator in ``fade`` shares.

An integer scale ``s`` maps a low-resolution map of size ``n`` to a high-resolution map of size
``m`` with ``|m - s*n| < s``. This covers exact multiples (``m = s*n``) and the sizes that floor-mode
(``m = s*n + k``) or ceil-mode (``m = s*n - k``) pooling leaves behind, e.g. a 15x11 encoder feature
over a 7x5 decoder feature at ``s = 2``.

High-resolution pixel ``y`` reads low-resolution pixel ``min(y // s, n - 1)``. For exact multiples
this is ``y // s`` (CARAFE's and F.interpolate's nearest mapping); the extra rows of a floor-mode
map repeat the last low-resolution row, as if pooling had padded by replication. The kernel
generator, the reassembly and the gate of every operator use this mapping, so their pixels line up.

Every size is positive. A scale larger than the high-resolution map is valid only over a 1-pixel
low-resolution map (ceil-mode pooling of a map smaller than one stride); every output pixel then
reads that pixel, as at any scale of at least ``m`` (:func:`effective_scale`).
"""

from __future__ import annotations

import math
import numbers
import operator

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "check_extents",
    "check_map",
    "check_output",
    "check_scale",
    "check_size",
    "check_sizes",
    "compatible_size",
    "effective_scale",
    "fit_to_size",
    "infer_scale",
    "nearest_upsample",
    "source_index",
]


def check_scale(scale: int) -> int:
    """Return ``scale`` as an int if it is a positive integer.

    Raises:
        TypeError: when ``scale`` is not a real number (a bool, a string, a tensor, None, ...).
        ValueError: when it is a number but not a positive integer (0, -2, 1.5, nan).
    """
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
        raise TypeError(f"scale must be a positive integer, got {scale!r} of type {type(scale).__name__}")
    if not isinstance(scale, numbers.Integral) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    return int(scale)


def compatible_size(low: int, high: int, scale: int) -> bool:
    """True when a high-resolution extent ``high`` can come from ``low`` at integer ``scale``."""
    return low >= 1 and abs(high - scale * low) < scale


def check_extents(what: str, kind: str, hw: tuple[int, ...]) -> None:
    """Raise unless ``hw`` is (H, W) with both extents at least 1; ``kind`` names the size."""
    if not isinstance(hw, (tuple, list)):  # torch.Size is a tuple
        raise TypeError(f"{what}: expected a {kind} size (H, W), got {type(hw).__name__} {hw!r}")
    if len(hw) != 2:
        raise ValueError(f"{what}: expected a {kind} size (H, W), got {tuple(hw)}")
    if min(hw) < 1:
        raise ValueError(f"{what}: expected a {kind} size (H, W) of positive extents, got {tuple(hw)}")


def infer_scale(low_hw: tuple[int, int], high_hw: tuple[int, int]) -> int:
    """The integer scale between two spatial sizes that are exact multiples of each other.

    Raises:
        ValueError: when a size has an extent below 1, or the sizes are not one exact integer
            multiple of each other; pass the scale explicitly for the sizes that floor- or
            ceil-mode pooling leaves behind.
    """
    check_extents("cannot infer an integer scale", "low-resolution", low_hw)
    check_extents("cannot infer an integer scale", "high-resolution", high_hw)
    (h, w), (ho, wo) = low_hw, high_hw
    if ho % h == 0 and wo % w == 0 and ho // h == wo // w and ho >= h:
        return ho // h
    raise ValueError(
        f"cannot infer an integer scale from low-resolution size {tuple(low_hw)} to "
        f"high-resolution size {tuple(high_hw)}: expected an exact integer multiple in both "
        "dimensions; pass scale= explicitly for odd sizes"
    )


def check_sizes(low_hw: tuple[int, int], high_hw: tuple[int, int], scale: int, what: str) -> None:
    """Raise ValueError unless ``high_hw`` is a valid high-resolution size for ``low_hw``.

    Both sizes must have positive extents and ``|high - scale * low| < scale`` in each dimension.
    """
    check_scale(scale)
    check_extents(what, "low-resolution", low_hw)
    check_extents(what, "high-resolution", high_hw)
    if not all(compatible_size(n, m, scale) for n, m in zip(low_hw, high_hw)):
        raise ValueError(
            f"{what}: expected a high-resolution size within scale-1 of scale*{tuple(low_hw)} = "
            f"{(scale * low_hw[0], scale * low_hw[1])} at scale {scale}, got {tuple(high_hw)}"
        )


def effective_scale(scale: int, high_hw: tuple[int, ...]) -> int:
    """The smallest scale with the same mapping onto ``high_hw``: ``min(scale, max(high_hw))``.

    Every ``y < m`` has ``y // s == 0`` for all ``s >= m``, so any larger scale reads the same pixels
    (this bounds the sizes derived from the scale, e.g. in the native kernel).
    """
    return min(scale, max((1, *high_hw)))


def source_index(high: int, low: int, scale: int, device: torch.device | None = None) -> Tensor:
    """Low-resolution index read by each of ``high`` output positions: ``min(y // scale, low - 1)``.

    Returns:
        Tensor[high] of int64.

    Raises:
        ValueError: ``high`` negative, ``low`` below 1 or ``scale`` not a positive integer.
    """
    if high < 0 or low < 1:
        raise ValueError(f"source_index: expected high >= 0 and low >= 1, got high={high}, low={low}")
    check_scale(scale)
    return torch.clamp(torch.arange(high, device=device) // effective_scale(scale, (high,)), max=low - 1)


def check_map(name: str, t: object, dims: str) -> None:
    """Raise unless ``t`` is a dense 4-D tensor: TypeError for another type or a sparse layout,
    ValueError for another rank. ``dims`` names its dimensions for the message, e.g. "(B, C, H, W)".
    """
    if not isinstance(t, Tensor):
        kind = type(t).__qualname__
        if type(t).__module__ != "builtins":
            kind = f"{type(t).__module__}.{kind}"
        raise TypeError(f"{name}: expected a torch.Tensor {dims}, got {kind}")
    if t.layout != torch.strided:
        raise TypeError(f"{name}: expected a dense (strided) tensor, got layout {t.layout}")
    if t.dim() != 4:
        raise ValueError(f"{name}: expected a 4-D tensor {dims}, got {t.dim()}-D shape {tuple(t.shape)}")


def check_output(shape: tuple[int, ...], dtype: torch.dtype) -> None:
    """Raise ValueError when a tensor of ``shape`` and ``dtype`` would need more than 2**63 - 1 bytes."""
    if math.prod(shape) * dtype.itemsize > 2**63 - 1:
        raise ValueError(f"output: shape {tuple(shape)} of {dtype} needs more bytes than a tensor can hold (2**63 - 1)")


def check_size(size: tuple[int, int]) -> tuple[int, int]:
    """``size`` as a tuple of two ints; TypeError / ValueError when it is not (H_out, W_out)."""
    def message() -> str:  # built only when raising: torch.compile cannot repr a symbolic size
        return f"size: expected (H_out, W_out), two integers, got {size!r}"

    try:
        items = tuple(size)
    except TypeError:
        raise TypeError(message()) from None
    if len(items) != 2:
        raise ValueError(message())
    if any(isinstance(n, bool) for n in items):
        raise TypeError(message())
    try:
        size = operator.index(items[0]), operator.index(items[1])
    except TypeError:
        raise TypeError(message()) from None
    check_extents("size", "high-resolution", size)
    return size


def _gather(x: Tensor, size: tuple[int, int], scale: int) -> Tensor:
    """``x`` read at the shared mapping onto ``size`` (arguments already validated)."""
    h, w = x.shape[-2:]
    ho, wo = size
    if (ho, wo) == (h, w):
        return x
    if (ho, wo) == (2 * h, 2 * w) and scale == 2 and x.is_floating_point() and x.numel() > 0:
        # Exact at scale 2 (torch computes the source index as y >> 1); at other scales its float
        # scale factor misses y // s (e.g. s = 41), so those take the index path.
        return F.interpolate(x, scale_factor=2, mode="nearest")
    x = x.index_select(-2, source_index(ho, h, scale, x.device))
    return x.index_select(-1, source_index(wo, w, scale, x.device))


def nearest_upsample(x: Tensor, size: tuple[int, int], scale: int) -> Tensor:
    """Nearest-neighbour upsampling with the shared mapping (any dtype).

    Args:
        x: Tensor[B, C, H, W].
        size: (H_out, W_out), each within ``scale - 1`` of ``scale`` times (H, W).
        scale: positive integer.

    Returns:
        Tensor[B, C, H_out, W_out] (``x`` itself when the size is unchanged).

    Raises:
        TypeError: ``x`` not a dense tensor, ``size`` not two integers, ``scale`` not a number.
        ValueError: ``x`` not 4-D, a non-positive extent, ``scale`` not a positive integer, or
            ``size`` not within ``scale - 1`` of ``scale * (H, W)``.
    """
    check_map("x", x, "(B, C, H, W)")
    check_extents("x", "spatial", tuple(x.shape[-2:]))
    size = check_size(size)
    scale = check_scale(scale)
    check_sizes(tuple(x.shape[-2:]), size, scale, "size vs x")
    check_output((*x.shape[:2], *size), x.dtype)
    return _gather(x, size, scale)


def fit_to_size(x: Tensor, size: tuple[int, int], scale: int) -> Tensor:
    """Crop or extend a map already upsampled ``scale`` times to the floor- or ceil-mode ``size``.

    Rows and columns past ``scale * (H, W)`` repeat the last one, as :func:`nearest_upsample` does.

    Args:
        x: Tensor[B, C, s*H, s*W], e.g. the output of a transposed conv or pixel shuffle.
        size: (H_out, W_out), each within ``scale - 1`` of the size of ``x``.
        scale: the positive integer s by which ``x`` was upsampled.

    Returns:
        Tensor[B, C, H_out, W_out] (``x`` itself when the size is unchanged).
    """
    check_map("x", x, "(B, C, H, W)")
    hx, wx = x.shape[-2:]
    check_extents("x", "spatial", (hx, wx))
    size = check_size(size)
    scale = check_scale(scale)
    if hx % scale or wx % scale:
        raise ValueError(f"x: expected a spatial size that is a multiple of scale {scale}, got {(hx, wx)}")
    check_sizes((hx // scale, wx // scale), size, scale, "size vs x")
    check_output((*x.shape[:2], *size), x.dtype)
    return _gather(x, size, 1)
