"""Max-unpooling (SegNet): the decoder puts each value where the encoder's max-pooling found the max."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ops.resize import check_output, check_scale, check_size, check_sizes, nearest_upsample
from ._checks import check_context, check_pool_input, check_tensors
from .base import Upsampler
from .pairs import PairedUpsampler, pooled_size, register_pair
from .registry import register_upsampler

__all__ = ["MaxPoolIndices", "MaxUnpool", "max_pool_indices", "max_unpool"]


def max_pool_indices(x: Tensor, low_hw: tuple[int, int], scale: int) -> tuple[Tensor, Tensor]:
    """Max-pool ``x`` over the s x s windows of a ``low_hw`` grid; also return where each max was.

    Floor-mode sizes (H >= s*h) ignore the rows past s*h, like ``nn.MaxPool2d``; ceil-mode sizes
    (H < s*h) pool the last, partial windows over the pixels that exist.

    Args:
        x: Tensor[B, C, H, W] with |H - s*h| < s and |W - s*w| < s.
        low_hw: (h, w), the pooled size.
        scale: positive integer s.

    Returns:
        (Tensor[B, C, h, w] maxima, Tensor[B, C, h, w] int64 flat indices into x's H*W plane,
        the convention of ``F.max_pool2d(..., return_indices=True)``).
    """
    check_tensors(4, x=x)
    check_scale(scale)
    check_sizes(low_hw, tuple(x.shape[-2:]), scale, "x spatial size vs the pooled size")
    (height, width), (h, w) = x.shape[-2:], low_hw
    # A window taller than x (only when h == 1) pools all of x's rows: the same as a window of
    # height H, without padding to s rows (likewise columns).
    sh, sw = min(scale, height), min(scale, width)
    cropped = x[..., : sh * h, : sw * w]
    pad_h, pad_w = sh * h - cropped.shape[-2], sw * w - cropped.shape[-1]
    fitted = F.pad(cropped, (0, pad_w, 0, pad_h), value=float("-inf")) if pad_h or pad_w else cropped
    values, flat = F.max_pool2d(fitted, (sh, sw), (sh, sw), return_indices=True)
    return values, flat // (sw * w) * width + flat % (sw * w)


def max_unpool(de: Tensor, indices: Tensor, size: tuple[int, int]) -> Tensor:
    """Scatter each value of ``de`` to its flat index in a zero map of ``size``.

    Args:
        de: Tensor[B, C, h, w].
        indices: Tensor[B, C, h, w] of int64 flat indices into the (H, W) plane.
        size: (H, W).

    Returns:
        Tensor[B, C, H, W], zero except at the indices.
    """
    check_tensors(4, de=de)
    size = check_size(size)
    check_output((*de.shape[:2], *size), de.dtype)
    check_context("indices", indices, de, "int64 max indices")
    if indices.shape != de.shape:
        raise ValueError(f"indices: expected shape {tuple(de.shape)} (that of de), got {tuple(indices.shape)}")
    if indices.dtype != torch.int64:
        raise TypeError(f"indices: expected dtype torch.int64, got {indices.dtype}")
    if indices.numel() and not indices.is_meta and not torch.compiler.is_compiling():
        low, high = (int(v) for v in indices.aminmax())
        if low < 0 or high >= size[0] * size[1]:
            raise ValueError(
                f"indices: expected flat indices into the {tuple(size)} plane, in [0, {size[0] * size[1]}), "
                f"got values in [{low}, {high}]"
            )
    b, c = de.shape[:2]
    out = de.new_zeros((b, c, size[0] * size[1]))
    return out.scatter(2, indices.flatten(2), de.flatten(2)).view(b, c, *size)


class MaxPoolIndices(nn.Module):
    """Down half of max-unpooling: ``forward(x) -> (max-pooled x, max indices)`` (floor mode)."""

    def __init__(self, scale: int = 2) -> None:
        super().__init__()
        self.scale = check_scale(scale)

    def context(self, x: Tensor, low_hw: tuple[int, int]) -> Tensor:
        """The max indices of x's windows for the pooled size ``low_hw``: Tensor[B, C, h, w]."""
        return max_pool_indices(x, low_hw, self.scale)[1]

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        check_pool_input(x, self.scale, self)
        return max_pool_indices(x, pooled_size(x, self.scale), self.scale)

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


class MaxUnpool(Upsampler):
    """Up half of max-unpooling: ``forward(en, de, indices)`` -> de placed at the max positions.

    Needs C_en == C_de (one index per channel); no parameters. Max-pooling takes a NaN in ``en`` as
    its window's maximum, so where the maximum lies is undefined there: that window's output is NaN.

    Shape:
        en: (B, C, H_en, W_en); de: (B, C, H, W); indices: (B, C, H, W) -> (B, C, H_en, W_en).
    """

    def __init__(self, en_channels: int, de_channels: int, scale: int = 2) -> None:
        super().__init__(en_channels, de_channels, scale)
        if en_channels != de_channels:
            raise ValueError(
                f"max-unpooling keeps one index per channel: expected de_channels == en_channels, "
                f"got en_channels={en_channels}, de_channels={de_channels}"
            )

    def forward(self, en: Tensor, de: Tensor, context: Tensor | None) -> Tensor:
        self.check_inputs(en, de)
        check_context("context", context, de, "the max indices returned by the paired MaxPoolIndices")
        size = tuple(en.shape[-2:])
        out = max_unpool(de, context, size)
        window_nan = en.flatten(2).gather(2, context.flatten(2)).isnan().view_as(de)
        return out.masked_fill(nearest_upsample(window_nan, size, self.scale), float("nan"))


@register_pair("unpool")
def _unpool_pair(en_channels: int, de_channels: int, scale: int) -> tuple[MaxPoolIndices, MaxUnpool]:
    return MaxPoolIndices(scale), MaxUnpool(en_channels, de_channels, scale)


@register_upsampler("unpool")
def _unpool(en_channels: int, de_channels: int, scale: int) -> PairedUpsampler:
    """Max-unpooling alone: the indices are the argmax over en's s x s windows."""
    return PairedUpsampler(*_unpool_pair(en_channels, de_channels, scale))
