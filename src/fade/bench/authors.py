"""The authors' pure-PyTorch FADE formulation, re-implemented as a benchmark baseline.

The public FADE code, without mmcv, reassembles by unfolding the decoder feature into its K*K
neighbourhoods, rearranging them to (B, K*K, C, H, W), repeating that to the high resolution by
nearest neighbour, and contracting it with the kernels by einsum: a B x K*K x C x sH x sW
intermediate. This module
does the same with the layers of a :class:`fade.FADE` (shared, not copied), so the two compute the
same function and differ only in how. It is a bench baseline (``"fade_authors"``), not a
registered upsampler: it only accepts what the authors' code accepts (exact multiples, C_en == C_de,
the gate fusion).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..upsamplers.fade import FADE
from ..upsamplers.kernels import SemiShiftKernels

__all__ = ["FADEAuthors", "authors_reassembly"]


def authors_reassembly(x: Tensor, kernels: Tensor, scale: int) -> Tensor:
    """CARAFE reassembly by unfold, nearest repeat to (B, K*K, C, sH, sW) and einsum (the authors' way).

    Args:
        x: Tensor[B, C, H, W].
        kernels: Tensor[B, K*K, scale*H, scale*W], K odd.
        scale: integer upsampling factor.

    Returns:
        Tensor[B, C, scale*H, scale*W].
    """
    b, c, h, w = x.shape
    k2 = kernels.shape[1]
    k = math.isqrt(k2)
    if kernels.shape[-2:] != (scale * h, scale * w):
        raise ValueError(
            f"kernels: expected spatial size {(scale * h, scale * w)} (exact multiple), got {tuple(kernels.shape[-2:])}"
        )
    columns = F.unfold(x, k, padding=k // 2).view(b, c, k2, h, w).transpose(1, 2).reshape(b, k2 * c, h, w)
    columns = F.interpolate(columns, scale_factor=scale, mode="nearest").view(b, k2, c, scale * h, scale * w)
    return torch.einsum("bkchw,bkhw->bchw", columns, kernels)


class FADEAuthors(nn.Module):
    """FADE computed the authors' way, with the parameters of ``fade_module`` (shared).

    Args:
        fade_module: a :class:`fade.FADE` with the gate fusion and C_en == C_de.

    Shape:
        en: (B, C, s*H, s*W); de: (B, C, H, W) -> (B, C, s*H, s*W).
    """

    def __init__(self, fade_module: FADE) -> None:
        super().__init__()
        if not isinstance(fade_module.kernel_generator, SemiShiftKernels) or fade_module.fusion != "gate":
            raise ValueError("FADEAuthors needs a FADE with semi-shift kernels and the gate fusion")
        if fade_module.aligner is not None:
            raise ValueError("FADEAuthors needs C_en == C_de, as the authors' code does")
        self.fade = fade_module

    def forward(self, en: Tensor, de: Tensor) -> Tensor:
        s = self.fade.scale
        gen = self.fade.kernel_generator
        if en.shape[-2:] != (s * de.shape[-2], s * de.shape[-1]):
            raise ValueError(f"en: expected spatial size {s} x {tuple(de.shape[-2:])}, got {tuple(en.shape[-2:])}")
        low = gen.content_encoder(gen.compress_de(de))
        logits = gen.content_encoder(gen.compress_en(en)) + F.interpolate(low, scale_factor=s, mode="nearest")
        up = authors_reassembly(de, logits.softmax(dim=1), s)
        gate = torch.sigmoid(F.interpolate(self.fade.gate(de), scale_factor=s, mode="nearest"))
        return en * gate + up * (1 - gate)
