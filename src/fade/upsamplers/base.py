"""What every baseline upsampler shares: its declared channels and scale, and input validation."""

from __future__ import annotations

from torch import Tensor, nn

from ..ops.resize import check_scale
from ._checks import check_en_de, check_ints

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
        check_ints(en_channels=en_channels, de_channels=de_channels)
        self.en_channels, self.de_channels = en_channels, de_channels
        self.scale = check_scale(scale)

    def check_inputs(self, en: Tensor, de: Tensor, owner: nn.Module | None = None) -> None:
        """Raise unless en (B, C_en, H_en, W_en) and de (B, C_de, H, W) fit this module.

        ``owner``: the module whose parameters fix the accepted dtype and device (default this one).
        """
        check_en_de(en, de, self.en_channels, self.de_channels, self.scale, self if owner is None else owner)

    def extra_repr(self) -> str:
        return f"en_channels={self.en_channels}, de_channels={self.de_channels}, scale={self.scale}"
