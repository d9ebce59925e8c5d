"""FADE, FADE-Lite and the paper's ablation variants, all built from one module.

:class:`KernelUpsampler` = a kernel generator (``upsamplers.kernels``) + CARAFE reassembly of the
decoder feature + a fusion with the encoder feature:

- ``"none"``: the reassembled feature as it is;
- ``"skip"``: reassembled + en;
- ``"gate"``: ``en * G + reassembled * (1 - G)``, ``G = sigmoid(nearest_up(conv1x1(de)))`` (Eq. 4).

When C_en != C_de and the fusion uses en, a 1x1 "aligner" conv (no bias) maps en to C_de channels
first, as the authors advise; with C_en == C_de there is none and the layers are exactly the
authors'. With no kernel generator the decoder feature is upsampled by nearest neighbour (the
paper's "NN + Gate").
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from ..ops.carafe import carafe, carafe_lerp
from ..ops.resize import check_scale, nearest_upsample
from ._checks import check_choice, check_en_de, check_ints, check_module, conv2d, factory_kwargs
from .kernels import (
    DecoderKernels,
    EncoderKernels,
    NaiveKernels,
    SemiShiftKernels,
    SemiShiftLiteKernels,
    pointwise,
)
from .registry import options_of, register_upsampler

__all__ = ["FADE", "FADELite", "KernelUpsampler"]

Fusion = Literal["none", "skip", "gate"]


class KernelUpsampler(nn.Module):
    """Upsample ``de`` to ``en``'s size by content-aware reassembly, then fuse ``en`` in.

    Args:
        kernel_generator: module mapping (en, de, scale) to kernel logits (B, K*K, H_en, W_en);
            None upsamples ``de`` by nearest neighbour instead. A generator with a method
            ``softmax_kernels(en, de, scale)`` gives the normalised kernels through it (the
            semi-shift generators: their softmax in one pass with their sum).
        en_channels: C_en. de_channels: C_de.
        scale: integer upsampling factor s.
        fusion: ``"none"``, ``"skip"`` or ``"gate"``.

    Shape:
        en: (B, C_en, H_en, W_en) with |H_en - s*H| < s (likewise W); de: (B, C_de, H, W)
        -> (B, C_de, H_en, W_en).
    """

    def __init__(
        self,
        kernel_generator: nn.Module | None,
        en_channels: int,
        de_channels: int,
        scale: int = 2,
        fusion: Fusion = "gate",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if kernel_generator is not None:
            check_module("kernel_generator", kernel_generator, nn.Module)
        check_ints(en_channels=en_channels, de_channels=de_channels)
        check_choice("fusion", fusion, ("none", "skip", "gate"))
        f = factory_kwargs(device, dtype)
        self.en_channels, self.de_channels = en_channels, de_channels
        self.scale, self.fusion = check_scale(scale), fusion
        self.kernel_generator = kernel_generator
        self.aligner = None
        if fusion != "none" and en_channels != de_channels:
            self.aligner = conv2d(en_channels, de_channels, 1, bias=False, **f)
            nn.init.xavier_uniform_(self.aligner.weight)
        self.gate = None
        if fusion == "gate":
            self.gate = conv2d(de_channels, 1, 1, **f)
            nn.init.xavier_uniform_(self.gate.weight)
            nn.init.zeros_(self.gate.bias)

    def kernels(self, en: Tensor, de: Tensor) -> Tensor:
        """The normalised reassembly kernels, Tensor[B, K*K, H_en, W_en], for the inputs of :meth:`forward`.

        Without a kernel generator, the 1x1 kernel 1 (B, 1, H_en, W_en): reassembly with it is
        nearest-neighbour upsampling.

        Raises:
            TypeError / ValueError: as :meth:`forward`, for inputs it would refuse.
        """
        check_en_de(en, de, self.en_channels, self.de_channels, self.scale, self)
        return self._kernels(en, de)

    def _kernels(self, en: Tensor, de: Tensor) -> Tensor:
        if self.kernel_generator is None:
            return de.new_ones(de.shape[0], 1, *en.shape[-2:])
        softmax_kernels = getattr(self.kernel_generator, "softmax_kernels", None)
        if softmax_kernels is not None:
            return softmax_kernels(en, de, self.scale)
        return self.kernel_generator(en, de, self.scale).softmax(dim=1)

    def forward(self, en: Tensor, de: Tensor) -> Tensor:
        check_en_de(en, de, self.en_channels, self.de_channels, self.scale, self)
        kernels = self._kernels(en, de)
        if self.aligner is not None:
            en = pointwise(self.aligner, en)
        if self.fusion == "gate":
            gate = nearest_upsample(torch.sigmoid(pointwise(self.gate, de)), en.shape[-2:], self.scale)
            return carafe_lerp(de, kernels, en, gate, self.scale)  # blended as written: no second pass
        up = carafe(de, kernels, self.scale)
        return up.add_(en) if self.fusion == "skip" else up

    def extra_repr(self) -> str:
        return f"en_channels={self.en_channels}, de_channels={self.de_channels}, scale={self.scale}, fusion={self.fusion!r}"


class FADE(KernelUpsampler):
    """FADE: semi-shift kernels from encoder AND decoder, reassembly, decoder-conditioned gate.

    With C_en == C_de == 256 and the defaults it has exactly the authors' layers: 47,514 parameters.

    Args:
        en_channels: C_en, channels of the high-resolution encoder feature.
        de_channels: C_de, channels of the low-resolution decoder feature (default C_en).
        scale: integer upsampling factor s (paper: 2).
        kernel_size: reassembly kernel size K (odd; paper: 5).
        compressed_channels: d (paper: 64). encoder_kernel_size: content-encoder window h (paper: 3).
        fusion: ``"gate"`` (FADE), ``"skip"`` or ``"none"`` (paper Table 4, B5 and B4).

    Shape:
        en: (B, C_en, H_en, W_en); de: (B, C_de, H, W) -> (B, C_de, H_en, W_en).

    Example:
        >>> up = FADE(64, scale=2)
        >>> up(torch.randn(2, 64, 15, 11), torch.randn(2, 64, 7, 5)).shape
        torch.Size([2, 64, 15, 11])
    """

    def __init__(
        self,
        en_channels: int,
        de_channels: int | None = None,
        scale: int = 2,
        kernel_size: int = 5,
        compressed_channels: int = 64,
        encoder_kernel_size: int = 3,
        fusion: Fusion = "gate",
        device=None,
        dtype=None,
    ) -> None:
        de_channels = en_channels if de_channels is None else de_channels
        generator = SemiShiftKernels(
            en_channels, de_channels, kernel_size, compressed_channels, encoder_kernel_size, device, dtype
        )
        super().__init__(generator, en_channels, de_channels, scale, fusion, device, dtype)


class FADELite(KernelUpsampler):
    """FADE-Lite: FADE with 1x1 compressors straight to K*K and a depthwise content encoder.

    13,332 parameters at C_en == C_de == 256. Arguments and shapes as :class:`FADE`.
    """

    def __init__(
        self,
        en_channels: int,
        de_channels: int | None = None,
        scale: int = 2,
        kernel_size: int = 5,
        encoder_kernel_size: int = 3,
        fusion: Fusion = "gate",
        device=None,
        dtype=None,
    ) -> None:
        de_channels = en_channels if de_channels is None else de_channels
        generator = SemiShiftLiteKernels(en_channels, de_channels, kernel_size, encoder_kernel_size, device, dtype)
        super().__init__(generator, en_channels, de_channels, scale, fusion, device, dtype)


# The paper's variants (Tables 2 and 4), each from the same parts. B2 (decoder-only kernels) is
# "carafe" and B6 is "fade" itself.
@register_upsampler("fade", options_of(FADE))
def _fade(en_channels: int, de_channels: int, scale: int, **options) -> FADE:
    return FADE(en_channels, de_channels, scale, **options)


@register_upsampler("fade_lite", options_of(FADELite))
def _fade_lite(en_channels: int, de_channels: int, scale: int, **options) -> FADELite:
    return FADELite(en_channels, de_channels, scale, **options)


@register_upsampler("semi_shift", options_of(FADE, "fusion"))
def _semi_shift(en_channels: int, de_channels: int, scale: int, **options) -> FADE:
    """B4: semi-shift kernels, no gate."""
    return FADE(en_channels, de_channels, scale, fusion="none", **options)


@register_upsampler("semi_shift_skip", options_of(FADE, "fusion"))
def _semi_shift_skip(en_channels: int, de_channels: int, scale: int, **options) -> FADE:
    """B5: semi-shift kernels + a plain skip (en added)."""
    return FADE(en_channels, de_channels, scale, fusion="skip", **options)


@register_upsampler("encoder_kernels", options_of(EncoderKernels))
def _encoder_kernels(en_channels: int, de_channels: int, scale: int, **options) -> KernelUpsampler:
    """B1: kernels from the encoder feature only, no gate."""
    generator = EncoderKernels(en_channels, de_channels, **options)
    return KernelUpsampler(generator, en_channels, de_channels, scale, fusion="none")


@register_upsampler("naive_kernels", options_of(NaiveKernels))
def _naive_kernels(en_channels: int, de_channels: int, scale: int, **options) -> KernelUpsampler:
    """B3: kernels from cat(en, nearest_up(de)), no gate."""
    generator = NaiveKernels(en_channels, de_channels, **options)
    return KernelUpsampler(generator, en_channels, de_channels, scale, fusion="none")


@register_upsampler("carafe", options_of(DecoderKernels))
def _carafe(en_channels: int, de_channels: int, scale: int, **options) -> KernelUpsampler:
    """CARAFE (CARAFEPack; B2): kernels from the decoder only, 74,148 parameters at C=256."""
    generator = DecoderKernels(en_channels, de_channels, scale=scale, **options)
    return KernelUpsampler(generator, en_channels, de_channels, scale, fusion="none")


@register_upsampler("carafe_gate", options_of(DecoderKernels))
def _carafe_gate(en_channels: int, de_channels: int, scale: int, **options) -> KernelUpsampler:
    """Table 2's "CARAFE + Gate"."""
    generator = DecoderKernels(en_channels, de_channels, scale=scale, **options)
    return KernelUpsampler(generator, en_channels, de_channels, scale, fusion="gate")


@register_upsampler("nn_gate")
def _nn_gate(en_channels: int, de_channels: int, scale: int) -> KernelUpsampler:
    """Table 2's "NN + Gate": nearest-neighbour upsampling, then the gate."""
    return KernelUpsampler(None, en_channels, de_channels, scale, fusion="gate")
