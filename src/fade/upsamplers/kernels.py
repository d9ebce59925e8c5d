"""Kernel generators: from (en, de) to reassembly-kernel logits of shape (B, K*K, H_en, W_en).

Each generator is one way of predicting the per-pixel upsampling kernels studied in the FADE paper
(Table 4): from both features by semi-shift convolution (FADE), from both with the lighter
FADE-Lite layers, from the encoder only, from the decoder only (CARAFE), and from the naive
interpolate-and-concatenate of the two. They return logits; the caller normalises them. The
semi-shift generators also give the normalised kernels directly (``softmax_kernels``): their sum of
two halves and the softmax in one pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ops.conv import same_conv2d
from ..ops.pointwise import pointwise_conv
from ..ops.resize import check_scale, nearest_upsample, source_index
from ..ops.softmax import semi_shift_softmax
from ._checks import check_en_de, check_ints, conv2d, factory_kwargs

__all__ = [
    "DecoderKernels",
    "EncoderKernels",
    "NaiveKernels",
    "SemiShiftKernels",
    "SemiShiftLiteKernels",
    "pointwise",
    "same_conv",
]


def _conv(cin: int, cout: int, k: int, bias: bool = True, groups: int = 1, **factory) -> nn.Conv2d:
    return conv2d(cin, cout, k, padding=k // 2, bias=bias, groups=groups, **factory)


def pointwise(conv: nn.Conv2d, x: Tensor, channels_last: bool = False) -> Tensor:
    """``conv(x)`` for a 1x1 conv (stride 1, no padding, one group), by :func:`fade.ops.pointwise_conv`.

    The same values as the conv, from either layout of ``x`` without copying it. On CPU that is the
    faster forward (oneDNN's 1x1 conv is 2-3x slower at batch 8; the native kernel takes few output
    channels without packing ``x``, as a general matrix product does). Under autograd its
    backward writes the input's gradient directly, in the layout of ``x`` (so adding it to another
    gradient of ``x`` needs no transposition), where the conv's backward on CPU also builds an
    input-sized buffer.

    Args:
        conv: the 1x1 conv. x: Tensor[B, C_in, H, W], any memory layout.
        channels_last: return the result in the channels-last layout (what a following 3x3 conv
            runs fastest on) instead of the contiguous one.

    Returns:
        Tensor[B, C_out, H, W].
    """
    return pointwise_conv(x, conv.weight.view(conv.out_channels, conv.in_channels), conv.bias, channels_last)


def same_conv(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """``conv(x)`` for a content encoder (stride 1, odd kernel, padding K // 2), by
    :func:`fade.ops.same_conv2d` when it has one group (whose weight gradient on the CPU is matrix
    products over a padded copy of ``x``, several times faster than oneDNN's on AVX2 CPUs), else
    the conv itself (FADE-Lite's depthwise encoder).

    Args:
        conv: the conv. x: Tensor[B, C_in, H, W], any memory layout.

    Returns:
        Tensor[B, C_out, H, W], channels-last for a channels-last ``x``.
    """
    return conv(x) if conv.groups != 1 else same_conv2d(x, conv.weight, conv.bias)


def xavier_init_(module: nn.Module) -> None:
    """The reference initialisation: xavier-uniform weights, zero biases, for every conv in module."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class SemiShiftKernels(nn.Module):
    """FADE's kernel generator: semi-shift convolution over the encoder and decoder features.

    ``logits = conv(compress_en(en)) + nearest_up(conv(compress_de(de)))``: ONE content-encoder
    conv is shared by both paths (so its bias is added twice, as in the reference). This
    low-to-high form equals the paper's high-to-low form (Fig. 5b); the tests check both.

    Args:
        en_channels: C_en. de_channels: C_de.
        kernel_size: K, the reassembly kernel size (odd).
        compressed_channels: d, the channels after the 1x1 compressors (paper: 64).
        encoder_kernel_size: h, the content-encoder window (paper: 3, odd).

    Shape:
        en: (B, C_en, H_en, W_en); de: (B, C_de, H, W) -> (B, K*K, H_en, W_en).
    """

    def __init__(
        self,
        en_channels: int,
        de_channels: int,
        kernel_size: int = 5,
        compressed_channels: int = 64,
        encoder_kernel_size: int = 3,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        check_ints(en_channels=en_channels, de_channels=de_channels, compressed_channels=compressed_channels)
        check_ints(odd=True, kernel_size=kernel_size, encoder_kernel_size=encoder_kernel_size)
        f = factory_kwargs(device, dtype)
        self.en_channels, self.de_channels = en_channels, de_channels
        self.compress_en = _conv(en_channels, compressed_channels, 1, bias=True, **f)
        self.compress_de = _conv(de_channels, compressed_channels, 1, bias=False, **f)
        self.content_encoder = _conv(compressed_channels, kernel_size**2, encoder_kernel_size, **f)
        xavier_init_(self)

    def forward(self, en: Tensor, de: Tensor, scale: int) -> Tensor:
        high, low = self._halves(en, de, scale)
        return high + nearest_upsample(low, en.shape[-2:], scale)

    def softmax_kernels(self, en: Tensor, de: Tensor, scale: int) -> Tensor:
        """``self(en, de, scale).softmax(dim=1)``, contiguous, with the sum and the softmax in one
        pass (:func:`fade.ops.semi_shift_softmax`); a subclass that changes :meth:`forward` gets
        the softmax of its own logits."""
        if type(self).forward is not SemiShiftKernels.forward:
            return self(en, de, scale).softmax(dim=1).contiguous()
        high, low = self._halves(en, de, scale)
        return semi_shift_softmax(high, low, scale)

    def _halves(self, en: Tensor, de: Tensor, scale: int) -> tuple[Tensor, Tensor]:
        """The content encoder at the encoder's resolution and at the decoder's (channels-last)."""
        check_en_de(en, de, self.en_channels, self.de_channels, scale, self)
        high = same_conv(self.content_encoder, pointwise(self.compress_en, en, channels_last=True))
        low = same_conv(self.content_encoder, pointwise(self.compress_de, de, channels_last=True))
        return high, low


class SemiShiftLiteKernels(SemiShiftKernels):
    """FADE-Lite's generator: compress straight to K*K channels, depthwise content encoder."""

    def __init__(
        self,
        en_channels: int,
        de_channels: int,
        kernel_size: int = 5,
        encoder_kernel_size: int = 3,
        device=None,
        dtype=None,
    ) -> None:
        nn.Module.__init__(self)
        check_ints(en_channels=en_channels, de_channels=de_channels)
        check_ints(odd=True, kernel_size=kernel_size, encoder_kernel_size=encoder_kernel_size)
        f = factory_kwargs(device, dtype)
        self.en_channels, self.de_channels = en_channels, de_channels
        k2 = kernel_size**2
        self.compress_en = _conv(en_channels, k2, 1, bias=True, **f)
        self.compress_de = _conv(de_channels, k2, 1, bias=False, **f)
        self.content_encoder = _conv(k2, k2, encoder_kernel_size, groups=k2, **f)
        xavier_init_(self)


class EncoderKernels(nn.Module):
    """Kernels from the encoder feature only (paper Table 4, B1): 1x1 compressor + content encoder.

    :meth:`features` picks what the compressor sees; :class:`NaiveKernels` overrides it.
    """

    def __init__(
        self,
        en_channels: int,
        de_channels: int,
        kernel_size: int = 5,
        compressed_channels: int = 64,
        encoder_kernel_size: int = 3,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        check_ints(en_channels=en_channels, de_channels=de_channels, compressed_channels=compressed_channels)
        check_ints(odd=True, kernel_size=kernel_size, encoder_kernel_size=encoder_kernel_size)
        f = factory_kwargs(device, dtype)
        self.en_channels, self.de_channels = en_channels, de_channels
        self.compress = _conv(self.feature_channels(en_channels, de_channels), compressed_channels, 1, **f)
        self.content_encoder = _conv(compressed_channels, kernel_size**2, encoder_kernel_size, **f)
        xavier_init_(self)

    @staticmethod
    def feature_channels(en_channels: int, de_channels: int) -> int:
        return en_channels

    def features(self, en: Tensor, de: Tensor, scale: int) -> Tensor:
        return en

    def forward(self, en: Tensor, de: Tensor, scale: int) -> Tensor:
        check_en_de(en, de, self.en_channels, self.de_channels, scale, self)
        compressed = pointwise(self.compress, self.features(en, de, scale), channels_last=True)
        return same_conv(self.content_encoder, compressed)


class NaiveKernels(EncoderKernels):
    """Kernels from ``cat(en, nearest_up(de))`` (paper Table 4, B3): the naive way to use both."""

    @staticmethod
    def feature_channels(en_channels: int, de_channels: int) -> int:
        return en_channels + de_channels

    def features(self, en: Tensor, de: Tensor, scale: int) -> Tensor:
        return torch.cat([en, nearest_upsample(de, en.shape[-2:], scale)], dim=1)


class DecoderKernels(nn.Module):
    """CARAFE's generator (kernels from the decoder only; paper Table 4, B2).

    1x1 compressor C_de -> d, content encoder d -> (s*K)^2, pixel shuffle by s. For encoder sizes
    that are not exact multiples, the kernel rows/columns follow the shared nearest mapping.
    The content encoder starts from normal(std=1e-3) as in CARAFE.
    """

    def __init__(
        self,
        en_channels: int,
        de_channels: int,
        kernel_size: int = 5,
        compressed_channels: int = 64,
        encoder_kernel_size: int = 3,
        scale: int = 2,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        check_ints(en_channels=en_channels, de_channels=de_channels, compressed_channels=compressed_channels)
        check_ints(odd=True, kernel_size=kernel_size, encoder_kernel_size=encoder_kernel_size)
        f = factory_kwargs(device, dtype)
        self.scale = check_scale(scale)
        self.en_channels, self.de_channels = en_channels, de_channels
        self.compress = _conv(de_channels, compressed_channels, 1, **f)
        self.content_encoder = _conv(
            compressed_channels, (scale * kernel_size) ** 2, encoder_kernel_size, **f
        )
        xavier_init_(self.compress)
        nn.init.normal_(self.content_encoder.weight, std=1e-3)
        nn.init.zeros_(self.content_encoder.bias)

    def forward(self, en: Tensor, de: Tensor, scale: int) -> Tensor:
        if scale != self.scale:
            raise ValueError(f"DecoderKernels was built for scale {self.scale}, got scale {scale}")
        check_en_de(en, de, self.en_channels, self.de_channels, scale, self)
        compressed = pointwise(self.compress, de, channels_last=True)
        logits = F.pixel_shuffle(same_conv(self.content_encoder, compressed), scale)
        (ho, wo), (h, w) = en.shape[-2:], logits.shape[-2:]
        if (ho, wo) != (h, w):
            logits = logits.index_select(-2, source_index(ho, h, 1, logits.device))
            logits = logits.index_select(-1, source_index(wo, w, 1, logits.device))
        return logits
