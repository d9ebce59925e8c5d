"""The content-blind baselines: nearest, bilinear, deconvolution and pixel shuffle.

Each computes the exact ``s`` times map and then fits it to en's size with the shared mapping of
:mod:`fade.ops.resize` (high-resolution row ``y`` reads row ``min(y, s*H - 1)`` of the exact map):
floor-mode extra rows repeat the last row, ceil-mode maps are cropped. For exact multiples the fit is
the identity. ``en`` only gives the output size.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..ops.resize import check_scale, check_sizes, fit_to_size, nearest_upsample, source_index
from ._checks import check_ints, check_tensors, conv2d, conv_transpose2d, factory_kwargs
from .base import Upsampler
from .registry import options_of, register_upsampler

__all__ = [
    "BilinearUpsample",
    "DeconvUpsample",
    "NearestUpsample",
    "PixelShuffleUpsample",
    "bilinear_upsample",
    "deconv_geometry",
]


def bilinear_upsample(x: Tensor, size: tuple[int, int], scale: int) -> Tensor:
    """Bilinear upsampling at integer ``scale`` with half-pixel centres, evaluated on ``size``.

    Output pixel ``Y`` samples input row ``(Y + 0.5) / scale - 0.5`` (clamped to the border), as
    ``F.interpolate(..., align_corners=False)``; rows past ``scale * H`` repeat the last row, which
    is exactly what that formula gives there.

    Args:
        x: Tensor[B, C, H, W].
        size: (H_out, W_out) within ``scale - 1`` of ``scale`` times (H, W).
        scale: positive integer.

    Returns:
        Tensor[B, C, H_out, W_out].
    """
    check_tensors(4, x=x)
    check_scale(scale)
    check_sizes(tuple(x.shape[-2:]), size, scale, "size vs x")
    # A one-pixel dimension is constant at any scale: it is interpolated at scale 1 and repeated, so
    # a huge scale never builds the s-times map.
    (h, w), (ho, wo) = x.shape[-2:], size
    up = F.interpolate(x, scale_factor=(scale if h > 1 else 1, scale if w > 1 else 1), mode="bilinear", align_corners=False)
    if up.shape[-2] != ho:
        up = up.index_select(-2, source_index(ho, up.shape[-2], 1, x.device))
    if up.shape[-1] != wo:
        up = up.index_select(-1, source_index(wo, up.shape[-1], 1, x.device))
    return up


def deconv_geometry(scale: int) -> tuple[int, int]:
    """(kernel, padding) of a transposed conv with stride ``scale`` whose output is exactly s*H.

    ``kernel = 2s - (s mod 2)``, ``padding = (kernel - s) / 2``: 4x4 with padding 1 at s = 2 (the
    deconvolution baseline of the IndexNet and A2U papers), 5x5/1 at s = 3, 8x8/2 at s = 4.
    """
    kernel = 2 * check_scale(scale) - scale % 2
    return kernel, (kernel - scale) // 2


class NearestUpsample(Upsampler):
    """Nearest-neighbour upsampling of ``de`` to en's size (the shared mapping); no parameters.

    Shape:
        en: (B, C_en, H_en, W_en); de: (B, C_de, H, W) -> (B, C_de, H_en, W_en).
    """

    def forward(self, en: Tensor, de: Tensor) -> Tensor:
        self.check_inputs(en, de)
        return nearest_upsample(de, tuple(en.shape[-2:]), self.scale)


class BilinearUpsample(Upsampler):
    """Bilinear upsampling of ``de`` to en's size (:func:`bilinear_upsample`); no parameters."""

    def forward(self, en: Tensor, de: Tensor) -> Tensor:
        self.check_inputs(en, de)
        return bilinear_upsample(de, tuple(en.shape[-2:]), self.scale)


class DeconvUpsample(Upsampler):
    """Learned transposed convolution C_de -> C_de, stride s (geometry: :func:`deconv_geometry`).

    1,048,832 parameters at C = 256, s = 2.
    """

    def __init__(self, en_channels: int, de_channels: int, scale: int = 2, device=None, dtype=None) -> None:
        super().__init__(en_channels, de_channels, scale)
        kernel, padding = deconv_geometry(scale)
        self.deconv = conv_transpose2d(
            de_channels, de_channels, kernel, stride=scale, padding=padding, **factory_kwargs(device, dtype)
        )

    def forward(self, en: Tensor, de: Tensor) -> Tensor:
        self.check_inputs(en, de)
        return fit_to_size(self.deconv(de), tuple(en.shape[-2:]), self.scale)


class PixelShuffleUpsample(Upsampler):
    """Sub-pixel convolution: 3x3 conv C_de -> C_de * s^2, then pixel shuffle by s.

    2,360,320 parameters at C = 256, s = 2.
    """

    def __init__(
        self,
        en_channels: int,
        de_channels: int,
        scale: int = 2,
        kernel_size: int = 3,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(en_channels, de_channels, scale)
        check_ints(odd=True, kernel_size=kernel_size)
        self.conv = conv2d(
            de_channels,
            de_channels * scale**2,
            kernel_size,
            padding=kernel_size // 2,
            **factory_kwargs(device, dtype),
        )

    def forward(self, en: Tensor, de: Tensor) -> Tensor:
        self.check_inputs(en, de)
        return fit_to_size(F.pixel_shuffle(self.conv(de), self.scale), tuple(en.shape[-2:]), self.scale)


@register_upsampler("nearest")
def _nearest(en_channels: int, de_channels: int, scale: int) -> NearestUpsample:
    return NearestUpsample(en_channels, de_channels, scale)


@register_upsampler("bilinear")
def _bilinear(en_channels: int, de_channels: int, scale: int) -> BilinearUpsample:
    return BilinearUpsample(en_channels, de_channels, scale)


@register_upsampler("deconv")
def _deconv(en_channels: int, de_channels: int, scale: int) -> DeconvUpsample:
    return DeconvUpsample(en_channels, de_channels, scale)


@register_upsampler("pixelshuffle", options_of(PixelShuffleUpsample))
def _pixelshuffle(en_channels: int, de_channels: int, scale: int, **options) -> PixelShuffleUpsample:
    return PixelShuffleUpsample(en_channels, de_channels, scale, **options)
