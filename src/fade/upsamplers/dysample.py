"""DySample (Liu, Lu, Fu, Cao, ICCV 2023): upsampling by content-aware point sampling, 'lp' style.

A 1x1 conv on the decoder feature predicts, for each of the s x s sub-pixels of every low-resolution
point and each of G channel groups, a 2-D offset; ``offset = 0.25 * conv(de)`` (the static scope
factor) is added to the sub-pixel grid, the initial positions of bilinear upsampling. Each output
point samples its group's channels bilinearly at the resulting position (``grid_sample``,
align_corners=False, border padding). With zero offsets this IS bilinear upsampling.

Offset channel layout, as the authors': ``[coordinate (x, y), group g, sub-row i, sub-column j]``.
8,224 parameters at C = 256, s = 2, G = 4 (256 * 32 + 32).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ops.resize import check_scale, fit_to_size
from ._checks import check_ints, check_positive_real, check_tensors, conv2d, factory_kwargs
from .base import Upsampler
from .registry import options_of, register_upsampler

__all__ = ["DySample", "point_sample", "sampling_positions"]


def sampling_positions(offsets: Tensor, scale: int, groups: int, size: tuple[int, int]) -> Tensor:
    """Absolute sampling positions, in input pixel units, from per-point offsets.

    Output pixel (Y, X) of sub-pixel (i, j) = (Y mod s, X mod s) of input point (y, x) samples at
    ``(x + (j + 0.5)/s - 0.5 + dx, y + (i + 0.5)/s - 0.5 + dy)``; rows/columns past s*h, s*w repeat
    the last ones (the shared mapping), extra rows of ceil-mode sizes are cropped.

    Args:
        offsets: Tensor[B, 2*G*s*s, h, w], layout [coordinate (x, y), group, i, j].
        scale: s. groups: G. size: (H, W) within s - 1 of (s*h, s*w).

    Returns:
        Tensor[B*G, H, W, 2] of (x, y) positions.
    """
    check_tensors(4, offsets=offsets)
    s, g = check_scale(scale), groups
    check_ints(groups=groups)
    b, channels, h, w = offsets.shape
    if channels != 2 * g * s * s:
        raise ValueError(f"offsets: expected 2*G*s*s = {2 * g * s * s} channels (G={g}, s={s}), got {channels}")
    sub = (torch.arange(s, device=offsets.device, dtype=offsets.dtype) + 0.5) / s - 0.5
    grid_x = torch.arange(w, device=offsets.device, dtype=offsets.dtype).view(1, 1, w) + sub.view(s, 1, 1)
    grid_y = torch.arange(h, device=offsets.device, dtype=offsets.dtype).view(1, h, 1) + sub.view(s, 1, 1)
    base_x = grid_x.view(1, s, 1, w).expand(s, s, h, w)
    base_y = grid_y.view(s, 1, h, 1).expand(s, s, h, w)
    base = torch.stack([base_x, base_y]).view(2, 1, s * s, h, w)
    pos = offsets.view(b, 2, g, s * s, h, w) + base
    pos = F.pixel_shuffle(pos.reshape(b, 2 * g * s * s, h, w), s)
    pos = fit_to_size(pos, size, s)
    return pos.view(b, 2, g, *size).permute(0, 2, 3, 4, 1).reshape(b * g, *size, 2)


def point_sample(x: Tensor, positions: Tensor, groups: int) -> Tensor:
    """Bilinear sampling of each channel group at its positions (border padding).

    A NaN or infinite position gives NaN (grid_sample alone would clamp it to the border).

    Args:
        x: Tensor[B, C, h, w], C divisible by G.
        positions: Tensor[B*G, H, W, 2] of (x, y) in input pixel units (pixel centres at integers).
        groups: G.

    Returns:
        Tensor[B, C, H, W].
    """
    check_tensors(4, x=x, positions=positions)
    check_ints(groups=groups)
    b, c, h, w = x.shape
    if c % groups:
        raise ValueError(f"x: expected channels divisible by groups={groups}, got {c}")
    if positions.shape[0] != b * groups or positions.shape[-1] != 2:
        raise ValueError(
            f"positions: expected shape (B*G, H, W, 2) = ({b * groups}, H, W, 2), got {tuple(positions.shape)}"
        )
    size = positions.shape[1:3]
    scale = torch.tensor([w, h], dtype=positions.dtype, device=positions.device)
    grid = (2 * positions + 1) / scale - 1
    out = F.grid_sample(
        x.reshape(b * groups, c // groups, h, w), grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    # Border padding clamps a NaN or infinite position to a border pixel; 0 * position is NaN there
    # (0 elsewhere), so a non-finite position reads as NaN, as the bilinear formula gives.
    out = out + 0 * positions.sum(dim=-1).unsqueeze(1)
    return out.view(b, c, *size)


class DySample(Upsampler):
    """DySample, 'lp' style with a static scope factor.

    Args:
        en_channels: C_en (en gives only the output size). de_channels: C_de, divisible by ``groups``.
        scale: s. groups: G (authors: 4). scope: static scope factor (authors: 0.25).

    Shape:
        en: (B, C_en, H_en, W_en); de: (B, C_de, H, W) -> (B, C_de, H_en, W_en).
    """

    def __init__(
        self,
        en_channels: int,
        de_channels: int,
        scale: int = 2,
        groups: int = 4,
        scope: float = 0.25,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(en_channels, de_channels, scale)
        check_ints(groups=groups)
        if de_channels % groups:
            raise ValueError(
                f"groups: expected a positive integer dividing de_channels={de_channels}, got {groups!r}"
            )
        self.groups, self.scope = groups, check_positive_real("scope", scope)
        self.offset = conv2d(de_channels, 2 * groups * scale**2, 1, **factory_kwargs(device, dtype))
        nn.init.normal_(self.offset.weight, std=1e-3)
        nn.init.zeros_(self.offset.bias)

    def forward(self, en: Tensor, de: Tensor) -> Tensor:
        self.check_inputs(en, de)
        offsets = self.offset(de) * self.scope
        positions = sampling_positions(offsets, self.scale, self.groups, tuple(en.shape[-2:]))
        return point_sample(de, positions, self.groups)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, groups={self.groups}, scope={self.scope}"


@register_upsampler("dysample", options_of(DySample))
def _dysample(en_channels: int, de_channels: int, scale: int, **options) -> DySample:
    return DySample(en_channels, de_channels, scale, **options)
