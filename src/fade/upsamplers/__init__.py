"""Every upsampler behind one interface: ``create_upsampler(name, en_channels, ...)(en, de)``."""

from . import fade as _fade  # noqa: F401  (registers the FADE family and CARAFE)
from .fade import FADE, FADELite, KernelUpsampler
from .registry import create_upsampler, list_upsamplers, register_upsampler

__all__ = ["FADE", "FADELite", "KernelUpsampler", "create_upsampler", "list_upsamplers", "register_upsampler"]
