"""A2U (Dai, Lu, Shen, CVPR 2021, "Learning Affinity-Aware Upsampling for Deep Image Matting").

From the pre-pool encoder feature x (B, C, H, W), for the pooled size (h, w):

1. two k_e x k_e filters per sample and rank r = 1..d, ``U = conv1x1(adaptive_avg_pool_{k_e}(x))``
   and likewise V (shared by all channels), applied to every channel with stride s;
2. the affinity, a low-rank bilinear form over channels:
   ``a_r = sum_c LReLU(GN(U_r * x))_c * LReLU(GN(V_r * x))_c / sqrt(C)``, (B, d, h, w);
3. per-sample 1x1 weights from global average pooling, ``P = conv1x1(avg(x))``, mix the d affinity
   maps into kernel logits: upsampling logits (B, K*K*s*s, h, w) pixel-shuffled to (B, K*K, s*h,
   s*w) and normalised by ``softmax(sigmoid(.))``; downsampling logits (B, k_d*k_d, h, w),
   normalised by softmax.

The downsampling (A2D) reassembles x with the k_d x k_d kernels around each s x s window
(:func:`a2d`); the upsampling is CARAFE reassembly of the decoder feature with the K x K kernels.
Defaults follow the authors' matting configuration at s = 2: K = 3, k_e = k_d = 6, d = 1, shared
filters, GroupNorm with 32 groups (gcd(32, C) groups when C is not a multiple of 32). Other scales
keep two pixels of margin around each window (k_e = s + 4, k_d = s + 2(K - 1)).

As a pair (``create_pair("a2u", ...)``) it has 78C + 74 parameters at those defaults (20,042 at
C = 256); alone (``create_upsampler("a2u", ...)``, no A2D kernels) 42C + 38 (10,790).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ops.carafe import carafe
from ..ops.resize import check_scale, check_sizes, fit_to_size
from ._checks import (
    check_bool,
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

__all__ = ["A2UDown", "A2UKernels", "A2UUp", "a2d"]


def _window_margin(name: str, kernel: int, scale: int) -> int:
    """Margin (k - s) / 2 of a k x k window centred on an s x s cell; ValueError if not whole."""
    check_ints(**{name: kernel})
    if kernel < scale or (kernel - scale) % 2:
        raise ValueError(
            f"{name}: expected an integer >= scale ({scale}) with kernel - scale even, so that the window "
            f"is centred on each {scale}x{scale} cell, got {kernel!r}"
        )
    return (kernel - scale) // 2


def _strided_pad(size: int, low: int, scale: int, kernel: int) -> tuple[int, int]:
    """(before, after) padding so a kernel-wide, stride-s window grid gives ``low`` outputs over ``size``."""
    before = (kernel - scale) // 2
    return before, max(0, scale * (low - 1) + kernel - size - before)


def a2d(x: Tensor, kernels: Tensor, scale: int) -> Tensor:
    """Affinity-aware downsampling: reassemble x with a k x k kernel around each s x s cell.

    ``y[b, c, p, q] = sum_{i, j} x[b, c, s*p + i - m, s*q + j - m] * kernels[b, i*k + j, p, q]`` with
    margin ``m = (k - s) / 2`` and zeros outside x.

    Args:
        x: Tensor[B, C, H, W].
        kernels: Tensor[B, k*k, h, w], with |H - s*h| < s and |W - s*w| < s.
        scale: positive integer s.

    Returns:
        Tensor[B, C, h, w].
    """
    check_tensors(4, x=x, kernels=kernels)
    check_scale(scale)
    _, k2, h, w = kernels.shape
    k = math.isqrt(k2)
    if k * k != k2 or kernels.shape[0] != x.shape[0]:
        raise ValueError(f"kernels: expected (B, k*k, h, w) with B = {x.shape[0]}, got {tuple(kernels.shape)}")
    _window_margin("down kernel size", k, scale)
    check_sizes((h, w), tuple(x.shape[-2:]), scale, "x spatial size vs the kernels")
    top, bottom = _strided_pad(x.shape[-2], h, scale, k)
    left, right = _strided_pad(x.shape[-1], w, scale, k)
    padded = F.pad(x, (left, right, top, bottom))
    out = x.new_zeros((x.shape[0], x.shape[1], h, w))
    for i in range(k):
        for j in range(k):
            tap = padded[..., i : i + scale * (h - 1) + 1 : scale, j : j + scale * (w - 1) + 1 : scale]
            out = out + tap * kernels[:, i * k + j : i * k + j + 1]
    return out


class A2UKernels(nn.Module):
    """A2U's kernel generator: affinity maps, then the up- and downsampling kernels.

    Args:
        channels: C, channels of x.
        scale: s.
        kernel_size: K, the upsampling kernel (odd; authors: 3).
        encoder_kernel_size: k_e, the U/V filter window (default s + 4; 6 at s = 2).
        down_kernel_size: k_d, the A2D window (default s + 2(K - 1); 6 at s = 2, K = 3).
        rank: d, the rank of the bilinear form (authors: 1).
        downsample: also predict the A2D kernels (the pair); False for the upsampler alone, which
            then has no parameters it does not use.
    """

    def __init__(
        self,
        channels: int,
        scale: int = 2,
        kernel_size: int = 3,
        encoder_kernel_size: int | None = None,
        down_kernel_size: int | None = None,
        rank: int = 1,
        downsample: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        check_ints(channels=channels, rank=rank)
        check_ints(odd=True, kernel_size=kernel_size)
        check_bool("downsample", downsample)
        f = factory_kwargs(device, dtype)
        s = self.scale = check_scale(scale)
        self.channels, self.kernel_size, self.rank = channels, kernel_size, rank
        self.encoder_kernel_size = s + 4 if encoder_kernel_size is None else encoder_kernel_size
        self.down_kernel_size = s + 2 * (kernel_size - 1) if down_kernel_size is None else down_kernel_size
        _window_margin("encoder_kernel_size", self.encoder_kernel_size, s)
        _window_margin("down_kernel_size", self.down_kernel_size, s)
        groups = math.gcd(32, channels)
        self.norm_u = nn.GroupNorm(groups, channels, **f)
        self.norm_v = nn.GroupNorm(groups, channels, **f)
        self.filter_u = conv2d(channels, rank, 1, **f)
        self.filter_v = conv2d(channels, rank, 1, **f)
        self.up_weights = conv2d(channels, rank * kernel_size**2 * s**2, 1, **f)
        self.down_weights = conv2d(channels, rank * self.down_kernel_size**2, 1, **f) if downsample else None
        for m in (self.filter_u, self.filter_v, self.up_weights, self.down_weights):
            if m is not None:
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def _filtered(self, x: Tensor, filters: Tensor, norm: nn.GroupNorm, low_hw: tuple[int, int]) -> Tensor:
        """LReLU(GN(filters * x)): every channel convolved with each per-sample filter, (B, d, C, h, w)."""
        b, c, height, width = x.shape
        (h, w), k, s = low_hw, self.encoder_kernel_size, self.scale
        if b == 0:  # a grouped conv needs at least one group
            return x.new_zeros((0, self.rank, c, h, w))
        top, bottom = _strided_pad(height, h, s, k)
        left, right = _strided_pad(width, w, s, k)
        padded = F.pad(x, (left, right, top, bottom)).reshape(1, b * c, height + top + bottom, width + left + right)
        weight = filters.unsqueeze(1).expand(b, c, self.rank, k, k).reshape(b * c * self.rank, 1, k, k)
        out = F.conv2d(padded, weight, stride=s, groups=b * c).view(b, c, self.rank, h, w)
        out = out.transpose(1, 2).reshape(b * self.rank, c, h, w)
        return F.leaky_relu(norm(out)).view(b, self.rank, c, h, w)

    def check_pooled_size(self, name: str, low_hw: tuple[int, int]) -> None:
        """Raise ValueError (naming input ``name``) when the pooled size ``low_hw`` leaves GroupNorm a
        single value per group (C / groups channels of h*w pixels), which it cannot normalise."""
        groups = self.norm_u.num_groups
        if self.channels // groups * low_hw[0] * low_hw[1] < 2:
            raise ValueError(
                f"{name}: expected a pooled size of at least 2 pixels for A2U with {self.channels} channels "
                f"(its GroupNorm of {groups} groups would normalise a single value per group), got {tuple(low_hw)}"
            )

    def affinity(self, x: Tensor, low_hw: tuple[int, int]) -> Tensor:
        """The low-rank bilinear affinity of x for the pooled size ``low_hw``: Tensor[B, d, h, w]."""
        check_context_input(x, low_hw, self.scale, self, self.channels)
        k = self.encoder_kernel_size
        u = self.filter_u(F.adaptive_avg_pool2d(x, k))
        v = self.filter_v(F.adaptive_avg_pool2d(x, k))
        fu = self._filtered(x, u, self.norm_u, low_hw)
        fv = self._filtered(x, v, self.norm_v, low_hw)
        return (fu * fv).sum(dim=2) / math.sqrt(self.channels)

    def _mix(self, weights: nn.Conv2d, x: Tensor, affinity: Tensor) -> Tensor:
        """Per-sample 1x1 mixing of the d affinity maps: (B, O, h, w)."""
        check_tensors(4, x=x, affinity=affinity)
        if x.shape[1] != self.channels or affinity.shape[:2] != (x.shape[0], self.rank):
            raise ValueError(
                f"x, affinity: expected (B, {self.channels}, H, W) and (B, {self.rank}, h, w) (rank d = {self.rank}), "
                f"got {tuple(x.shape)} and {tuple(affinity.shape)}"
            )
        p = weights(x.mean(dim=(2, 3), keepdim=True)).view(x.shape[0], weights.out_channels // self.rank, self.rank)
        return torch.einsum("bor,brhw->bohw", p, affinity)

    def up_kernels(self, x: Tensor, affinity: Tensor) -> Tensor:
        """Normalised upsampling kernels, Tensor[B, K*K, s*h, s*w]."""
        logits = F.pixel_shuffle(self._mix(self.up_weights, x, affinity), self.scale)
        return torch.sigmoid(logits).softmax(dim=1)

    def down_kernels(self, x: Tensor, affinity: Tensor) -> Tensor:
        """Normalised downsampling kernels, Tensor[B, k_d*k_d, h, w]."""
        if self.down_weights is None:
            raise ValueError(
                "A2UKernels(downsample=False) predicts no downsampling kernels: the stand-alone upsampler "
                "cannot pool; build the pair with create_pair('a2u', ...)"
            )
        return self._mix(self.down_weights, x, affinity).softmax(dim=1)


class A2UDown(nn.Module):
    """Down half of A2U: ``forward(x) -> (A2D(x), upsampling kernels)`` (floor mode)."""

    def __init__(self, kernels: A2UKernels) -> None:
        super().__init__()
        check_module("kernels", kernels, A2UKernels)
        self.kernels = kernels

    def context(self, x: Tensor, low_hw: tuple[int, int]) -> Tensor:
        """The upsampling kernels for the pooled size ``low_hw`` (de's): Tensor[B, K*K, s*h, s*w]."""
        check_context_input(x, low_hw, self.kernels.scale, self, self.kernels.channels)
        self.kernels.check_pooled_size("de", low_hw)
        return self.kernels.up_kernels(x, self.kernels.affinity(x, low_hw))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        check_pool_input(x, self.kernels.scale, self, self.kernels.channels)
        low_hw = pooled_size(x, self.kernels.scale)
        self.kernels.check_pooled_size("x", low_hw)
        a = self.kernels.affinity(x, low_hw)
        y = a2d(x, self.kernels.down_kernels(x, a), self.kernels.scale)
        return y, self.kernels.up_kernels(x, a)


class A2UUp(Upsampler):
    """Up half of A2U: CARAFE reassembly of ``de`` with the paired kernels; no parameters.

    Shape:
        en: (B, C_en, H_en, W_en); de: (B, C_de, H, W); kernels: (B, K*K, s*H, s*W)
        -> (B, C_de, H_en, W_en).
    """

    def forward(self, en: Tensor, de: Tensor, context: Tensor | None) -> Tensor:
        self.check_inputs(en, de)
        check_context("context", context, de, "the upsampling kernels returned by the paired A2UDown")
        b, _, h, w = de.shape
        if context.dim() != 4 or context.shape[0] != b or tuple(context.shape[-2:]) != (self.scale * h, self.scale * w):
            raise ValueError(
                f"context: expected kernels of shape (B, K*K, s*H, s*W) = ({b}, K*K, {self.scale * h}, "
                f"{self.scale * w}), got {tuple(context.shape)}"
            )
        return carafe(de, fit_to_size(context, tuple(en.shape[-2:]), self.scale), self.scale)


@register_pair("a2u", options_of(A2UKernels, "downsample"))
def _a2u_pair(en_channels: int, de_channels: int, scale: int, **options) -> tuple[A2UDown, A2UUp]:
    up = A2UUp(en_channels, de_channels, scale)
    return A2UDown(A2UKernels(en_channels, scale, **options)), up


@register_upsampler("a2u", options_of(A2UKernels, "downsample"))
def _a2u(en_channels: int, de_channels: int, scale: int, **options) -> PairedUpsampler:
    """A2U alone: the upsampling kernels come from en (the pre-pool feature); no A2D kernels."""
    return PairedUpsampler(*_a2u_pair(en_channels, de_channels, scale, downsample=False, **options))
