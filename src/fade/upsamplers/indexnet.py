"""IndexNet (Lu, Dai, Shen, Xu, ICCV 2019, "Indices Matter"): learned indices for pooling and upsampling.

An index block looks at the pre-pool encoder feature x and predicts, for every s x s window, one
logit per window position: ``z`` (B, G, s*s, h, w), G = C for the depthwise block (DIN, one index
map per channel) or G = 1 for the holistic block (HIN, one map shared by all channels). Then

- encoder index ``idx_en = softmax_{s*s}(sigmoid(z))``, pixel-shuffled to (B, G, s*h, s*w); the
  index-guided pooling is ``y = s^2 * avg_pool_s(x * idx_en)`` (a weighted sum over each window);
- decoder index ``idx_de = sigmoid(z)``, pixel-shuffled; the indexed upsampling is
  ``nearest_up(de) * idx_de``.

The block (as in the authors' code): conv with kernel s (stride s), or s + 2 with one pixel of
padding when ``context`` is on (4x4 at s = 2, the paper's "context" variant); with ``nonlinear`` a
BN + ReLU6 + 1x1 conv follows. The depthwise block is the "many-to-one" (M2O) DIN: s*s sub-blocks
(here as one conv with s*s*C outputs and grouped 1x1 convs), each seeing all channels. The paper's
best matting model is M2O DIN + nonlinear + context: the ``"indexnet"`` default. The hidden width of
the nonlinear block is ``expansion * C`` (1 for DIN, 2 for HIN in the authors' code).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ops.resize import check_scale, fit_to_size, nearest_upsample
from ._checks import (
    check_bool,
    check_choice,
    check_context,
    check_context_input,
    check_ints,
    check_module,
    check_pool_input,
    check_tensors,
    conv2d,
    factory_kwargs,
)
from .base import Upsampler
from .pairs import PairedUpsampler, pooled_size, register_pair
from .registry import options_of, register_upsampler

__all__ = ["IndexBlock", "IndexedPool", "IndexedUpsample", "index_maps", "indexed_pool", "indexed_upsample"]

BlockKind = Literal["depthwise", "holistic"]


def index_maps(logits: Tensor) -> tuple[Tensor, Tensor]:
    """Encoder and decoder index maps from index logits.

    Args:
        logits: Tensor[B, G, s*s, h, w], window position p = i*s + j of row i, column j.

    Returns:
        (idx_en, idx_de), each Tensor[B, G, s*h, s*w]: ``softmax_{s*s}(sigmoid(z))`` and ``sigmoid(z)``
        placed at pixel (s*y + i, s*x + j).
    """
    check_tensors(5, logits=logits)
    b, g, s2, h, w = logits.shape
    s = math.isqrt(s2)
    if s * s != s2:
        raise ValueError(f"logits: expected s*s window positions in dim 2, got {s2}")
    y = torch.sigmoid(logits)
    z = y.softmax(dim=2)
    return tuple(F.pixel_shuffle(t.reshape(b, g * s2, h, w), s) for t in (z, y))


def indexed_pool(x: Tensor, idx_en: Tensor, scale: int) -> Tensor:
    """Index-guided pooling ``s^2 * avg_pool_s(x * idx_en)`` over the windows idx_en covers.

    Args:
        x: Tensor[B, C, H, W].
        idx_en: Tensor[B, G, s*h, s*w] with G = C or 1 and (h, w) = (H // s, W // s) (floor mode;
            rows and columns past s*h, s*w are not pooled).
        scale: positive integer s.

    Returns:
        Tensor[B, C, h, w].
    """
    check_tensors(4, x=x, idx_en=idx_en)
    scale = check_scale(scale)
    b, c, height, width = x.shape
    if min(height, width) < scale:
        raise ValueError(f"x: expected a spatial size of at least {scale} (the scale), got {(height, width)}")
    expected = (scale * (height // scale), scale * (width // scale))
    if idx_en.shape[0] != b or idx_en.shape[1] not in (1, c) or tuple(idx_en.shape[-2:]) != expected:
        raise ValueError(
            f"idx_en: expected a (B, 1 or C, s*h, s*w) = ({b}, 1 or {c}, {expected[0]}, {expected[1]}) tensor "
            f"(floor-mode windows of x at s={scale}), got shape {tuple(idx_en.shape)}"
        )
    hh, ww = expected
    return F.avg_pool2d(x[..., :hh, :ww] * idx_en, scale) * scale**2


def indexed_upsample(de: Tensor, idx_de: Tensor, size: tuple[int, int], scale: int) -> Tensor:
    """Indexed upsampling ``nearest_up(de) * idx_de`` on ``size`` (shared mapping for both factors).

    Args:
        de: Tensor[B, C, h, w].
        idx_de: Tensor[B, G, s*h, s*w] with G = C or 1.
        size: (H, W) within s - 1 of (s*h, s*w).
        scale: positive integer s.

    Returns:
        Tensor[B, C, H, W].
    """
    check_tensors(4, de=de, idx_de=idx_de)
    scale = check_scale(scale)
    b, c, h, w = de.shape
    if idx_de.shape[0] != b or idx_de.shape[1] not in (1, c):
        raise ValueError(
            f"idx_de: expected a (B, 1 or C, s*h, s*w) = ({b}, 1 or {c}, {scale * h}, {scale * w}) tensor, "
            f"got shape {tuple(idx_de.shape)}"
        )
    if tuple(idx_de.shape[-2:]) != (scale * h, scale * w):
        raise ValueError(f"idx_de: expected spatial size {(scale * h, scale * w)}, got {tuple(idx_de.shape[-2:])}")
    return nearest_upsample(de, size, scale) * fit_to_size(idx_de, size, scale)


class IndexBlock(nn.Module):
    """Predicts index logits (B, G, s*s, h, w) from the pre-pool feature x (B, C, H, W).

    Args:
        channels: C, channels of x.
        scale: s, the pooling window and stride.
        kind: ``"depthwise"`` (M2O DIN: G = C) or ``"holistic"`` (HIN: G = 1).
        nonlinear: add BN + ReLU6 + 1x1 conv after the first conv.
        context: kernel s + 2 with padding 1 instead of kernel s.
        expansion: hidden width of the nonlinear block, in multiples of C (per window position for DIN).
    """

    def __init__(
        self,
        channels: int,
        scale: int = 2,
        kind: BlockKind = "depthwise",
        nonlinear: bool = True,
        context: bool = True,
        expansion: int = 1,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        check_ints(channels=channels, expansion=expansion)
        check_choice("kind", kind, ("depthwise", "holistic"))
        check_bool("nonlinear", nonlinear)
        check_bool("context", context)
        f = factory_kwargs(device, dtype)
        self.channels, self.scale, self.kind = channels, check_scale(scale), kind
        self.padding = 1 if context else 0
        s2 = scale**2
        self.maps = channels if kind == "depthwise" else 1
        out = s2 * self.maps
        kernel = scale + 2 * self.padding
        if not nonlinear:
            self.layers = nn.Sequential(conv2d(channels, out, kernel, stride=scale, bias=False, **f))
        else:
            hidden = s2 * expansion * channels if kind == "depthwise" else expansion * channels
            self.layers = nn.Sequential(
                conv2d(channels, hidden, kernel, stride=scale, bias=False, **f),
                nn.BatchNorm2d(hidden, **f),
                nn.ReLU6(),
                conv2d(hidden, out, 1, groups=s2 if kind == "depthwise" else 1, bias=False, **f),
            )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def check_batch_statistics(self, name: str, batch: int, low_hw: tuple[int, int]) -> None:
        """Raise ValueError (naming input ``name``) when, training, the BatchNorm would see a single
        value per channel (batch 1 at a 1x1 pooled size), which it cannot normalise."""
        if self.training and len(self.layers) > 1 and batch * low_hw[0] * low_hw[1] == 1:
            raise ValueError(
                f"{name}: expected more than one value per channel for IndexNet's BatchNorm in training mode, "
                f"got batch {batch} at pooled size {tuple(low_hw)}; use a batch of at least 2, a larger input "
                "or eval()"
            )

    def forward(self, x: Tensor, low_hw: tuple[int, int]) -> Tensor:
        """Index logits for the pooled size ``low_hw`` (floor- or ceil-mode relative to x)."""
        check_context_input(x, low_hw, self.scale, self, self.channels)
        (height, width), (h, w), s, p = x.shape[-2:], low_hw, self.scale, self.padding
        x = F.pad(x, (p, p + max(0, s * w - width), p, p + max(0, s * h - height)))
        z = self.layers(x)
        s2 = s * s
        if self.kind == "depthwise":
            return z.view(z.shape[0], s2, self.maps, h, w).transpose(1, 2)
        return z.view(z.shape[0], 1, s2, h, w)


class IndexedPool(nn.Module):
    """Down half of IndexNet: ``forward(x) -> (index-guided pooled x, idx_de)`` (floor mode)."""

    def __init__(self, index_block: IndexBlock) -> None:
        super().__init__()
        check_module("index_block", index_block, IndexBlock)
        self.index_block = index_block

    def context(self, x: Tensor, low_hw: tuple[int, int]) -> Tensor:
        """The decoder index map for the pooled size ``low_hw`` (de's): Tensor[B, G, s*h, s*w]."""
        check_context_input(x, low_hw, self.index_block.scale, self, self.index_block.channels)
        self.index_block.check_batch_statistics("de", x.shape[0], low_hw)
        return index_maps(self.index_block(x, low_hw))[1]

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        s = self.index_block.scale
        check_pool_input(x, s, self, self.index_block.channels)
        low_hw = pooled_size(x, s)
        self.index_block.check_batch_statistics("x", x.shape[0], low_hw)
        idx_en, idx_de = index_maps(self.index_block(x, low_hw))
        return indexed_pool(x, idx_en, s), idx_de


class IndexedUpsample(Upsampler):
    """Up half of IndexNet: ``forward(en, de, idx_de) = nearest_up(de) * idx_de``; no parameters.

    Shape:
        en: (B, C_en, H_en, W_en); de: (B, C_de, H, W); idx_de: (B, G, s*H, s*W), G = C_de or 1
        -> (B, C_de, H_en, W_en).
    """

    def forward(self, en: Tensor, de: Tensor, context: Tensor | None) -> Tensor:
        self.check_inputs(en, de)
        check_context("context", context, de, "the decoder index map returned by the paired IndexedPool")
        return indexed_upsample(de, context, tuple(en.shape[-2:]), self.scale)


def _indexnet_pair(
    en_channels: int, de_channels: int, scale: int, kind: BlockKind, **options
) -> tuple[IndexedPool, IndexedUpsample]:
    up = IndexedUpsample(en_channels, de_channels, scale)
    if kind == "depthwise" and en_channels != de_channels:
        raise ValueError(
            "depthwise IndexNet predicts one index map per encoder channel: expected de_channels == "
            f"en_channels, got en_channels={en_channels}, de_channels={de_channels}"
        )
    return IndexedPool(IndexBlock(en_channels, scale, kind, **options)), up


@register_pair("indexnet", options_of(IndexBlock, "kind"))
def _indexnet_m2o_pair(en_channels: int, de_channels: int, scale: int, **options) -> tuple[IndexedPool, IndexedUpsample]:
    """The paper's best: M2O depthwise index block, nonlinear, with context (C_de == C_en)."""
    return _indexnet_pair(en_channels, de_channels, scale, "depthwise", **options)


@register_pair("indexnet_holistic", options_of(IndexBlock, "kind"))
def _indexnet_holistic_pair(
    en_channels: int, de_channels: int, scale: int, **options
) -> tuple[IndexedPool, IndexedUpsample]:
    """Holistic index block, nonlinear (hidden 2C, as the authors' HIN), with context."""
    return _indexnet_pair(en_channels, de_channels, scale, "holistic", **{"expansion": 2, **options})


@register_upsampler("indexnet", options_of(IndexBlock, "kind"))
def _indexnet_m2o(en_channels: int, de_channels: int, scale: int, **options) -> PairedUpsampler:
    return PairedUpsampler(*_indexnet_m2o_pair(en_channels, de_channels, scale, **options))


@register_upsampler("indexnet_holistic", options_of(IndexBlock, "kind"))
def _indexnet_holistic(en_channels: int, de_channels: int, scale: int, **options) -> PairedUpsampler:
    return PairedUpsampler(*_indexnet_holistic_pair(en_channels, de_channels, scale, **options))
