"""What every baseline upsampler shares: its declared channels and scale, and input validation."""

from __future__ import annotations

from torch import Tensor, nn

from ..ops.resize import check_scale
from .fade import check_en_de

__all__ = ["Upsampler"]


class Upsampler(nn.Module):
    """Base of the baseline upsamplers: ``forward(en, de)`` -> de at en's spatial size.

    Holds ``en_channels``, ``de_channels`` and ``scale`` and validates inputs against them, so
    every operator rejects bad input with the same messages as :class:`fade.FADE`.

    Args:
        en_channels: C_en, channels of the high-resolution guide ``en``.
        de_channels: C_de, channels of the low-resolution feature ``de``.
        scale: positive integer upsampling factor s.
    """

    def __init__(self, en_channels: int, de_channels: int, scale: int) -> None:
        super().__init__()
        for name, c in (("en_channels", en_channels), ("de_channels", de_channels)):
            if isinstance(c, bool) or not isinstance(c, int) or c < 1:
                raise ValueError(f"{name}: expected a positive integer, got {c!r}")
        self.en_channels, self.de_channels = en_channels, de_channels
        self.scale = check_scale(scale)

    def check_inputs(self, en: Tensor, de: Tensor) -> None:
        """Raise ValueError unless en (B, C_en, H_en, W_en) and de (B, C_de, H, W) fit this module."""
        check_en_de(en, de, self.en_channels, self.de_channels, self.scale)

    def extra_repr(self) -> str:
        return f"en_channels={self.en_channels}, de_channels={self.de_channels}, scale={self.scale}"
