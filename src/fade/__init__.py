"""fade: FADE (ECCV 2022) task-agnostic feature upsampling, its baselines and its experiments."""

from . import models, ops
from .upsamplers import FADE, FADELite, KernelUpsampler, create_pair, create_upsampler, list_upsamplers

__version__ = "0.1.0"
__all__ = ["FADE", "FADELite", "KernelUpsampler", "create_pair", "create_upsampler", "list_upsamplers", "models", "ops"]
